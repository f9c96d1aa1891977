/**
 * What an operator sees of a running probe, tested on the real daemon (`sealflow run` on its
 * embedded defaults, flows from loopback):
 * - /metrics passes `promtool check metrics` (Debian's prometheus package) with no finding,
 *   and carries build info, certificate not-after (checked against `openssl x509 -enddate`)
 *   and loss by reason;
 * - every metric the shipped dashboard and alert rules (deploy/monitoring) query is exported;
 * - /stats has one spool section and readable times;
 * - the status page (`/`) renders in headless Chromium (Debian's chromium) with the live
 *   numbers, loads nothing from anywhere, shows no flow data; its screenshot is written to
 *   $SEALFLOW_ARTIFACTS_DIR (CI: .ci/artifacts) and its path printed.
 * One probe serves every check (the suite's time stays modest).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { devFiles } from '../../src/config/embedded-defaults.js';
import { DecodeService } from '../../src/decode/decode-service.js';
import { ipToString } from '../../src/flow/ip.js';
import { PACKET_LOSS_REASONS, RECORD_LOSS_REASONS } from '../../src/flow/loss.js';
import { devConfigFile } from '../support/dev-config.js';
import { httpGet, type Reply } from '../support/http-get.js';
import { freeTcpPort, startProbe, type RunningProbe } from '../support/probe.js';
import { queriedMetricNames } from '../support/monitoring-files.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { corpora, repoRoot, requireTool } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

const MESSAGES = ['logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat', 'logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat'].map((f) =>
  readFileSync(path.join(corpora, f)),
);

/** Every address in the capture's flow records: none may appear on the status page. */
function flowAddresses(): Set<string> {
  const service = new DecodeService();
  const out = new Set<string>();
  for (const payload of MESSAGES) {
    for (const r of service.decode({ payload, exporter: '127.0.0.1', exporterPort: 1, transport: 'udp', sessionKey: 'page', identity: null, receivedAtMs: Date.now() }).records) {
      for (const a of [r.srcAddr, r.dstAddr]) if (a !== null) out.add(ipToString(a));
    }
  }
  return out;
}

function haveChromium(): boolean {
  return spawnSync('chromium', ['--version'], { stdio: 'ignore' }).error === undefined;
}

/** Headless Debian Chromium as root on a machine without network (flags from the machine's notes). */
function chromium(args: readonly string[], profile: string): { status: number | null; stdout: string; stderr: string } {
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`];
  const r = spawnSync('chromium', [...flags, ...args], { encoding: 'utf8', timeout: 90_000, maxBuffer: 16 * 1024 * 1024 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function havePromtool(): boolean {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined;
}

let probe: RunningProbe;
let dataDir: string;

interface ListenerPorts {
  listeners: { udp: { listeners: { name: string; port: number }[] } };
}

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'sealflow-operator-'));
  const adminPort = await freeTcpPort();
  probe = await startProbe({ args: ['--config', await devConfigFile(dataDir, adminPort, 1)], adminPort });
  const ports = (await getJson('/stats')) as ListenerPorts;
  const ipfix = ports.listeners.udp.listeners.find((l) => l.name === 'ipfix')?.port ?? 0;
  const udp = createSocket('udp4');
  // The capture's two messages, and one whose header claims more bytes than it has (a decode error).
  const truncated = Buffer.from(MESSAGES[1]?.subarray(0, 20) ?? []);
  for (const m of [...MESSAGES, truncated]) await new Promise<void>((resolve, reject) => udp.send(m, ipfix, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  udp.close();
  await until(async () => {
    const s = (await getJson('/stats')) as { drain: { deliveredRecords: number } | null };
    return (s.drain?.deliveredRecords ?? 0) > 0;
  }, 'records delivered to the embedded stand-in', 60_000);
});

after(async () => {
  const code = await probe.stop('SIGTERM', 15_000);
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(code, 0, `probe exit status; output:\n${probe.output().slice(-3000)}`);
});

function get(pathname: string): Promise<Reply> {
  return httpGet(Number(new URL(probe.adminUrl).port), pathname);
}

async function getJson(pathname: string): Promise<unknown> {
  return JSON.parse((await get(pathname)).body);
}

async function scrape(): Promise<string> {
  const res = await get('/metrics');
  assert.equal(res.status, 200);
  return res.body;
}

describe('a live probe, as an operator sees it', { timeout: 180_000 }, () => {
  test('promtool check metrics finds nothing in /metrics', async (t) => {
    if (!requireTool(t, havePromtool(), 'promtool (Debian package prometheus)')) return;
    const text = await scrape();
    const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'promtool findings');
    assert.equal(r.status, 0);
  });

  test('build info, certificate not-after, loss by reason; no config values, no rates', async () => {
    const fams = parsePrometheusText(await scrape());
    const build = fams.get('sealflow_build_info')?.samples ?? [];
    assert.deepEqual(build.map((b) => [b.labels, b.value]), [[{ version: '0.1.0', node: process.versions.node, openssl: process.versions.openssl }, 1]]);

    const certFile = path.join(devFiles(dataDir).pkiDir, 'collector.crt.pem');
    const enddate = spawnSync('openssl', ['x509', '-noout', '-enddate', '-in', certFile], { encoding: 'utf8' });
    assert.equal(enddate.status, 0, enddate.stderr);
    const notAfter = Date.parse(enddate.stdout.replace(/^notAfter=/, '').trim()) / 1000;
    assert.equal(sampleValue(fams, 'sealflow_certificate_not_after_timestamp_seconds', { setting: 'listeners.tls.certFile' }), notAfter);

    for (const reason of RECORD_LOSS_REASONS) assert.equal(sampleValue(fams, 'sealflow_records_lost_total', { reason }), 0, `records lost: ${reason}`);
    // The one malformed datagram this test sent is the one packet lost.
    for (const reason of PACKET_LOSS_REASONS) assert.equal(sampleValue(fams, 'sealflow_packets_lost_total', { reason }), reason === 'decode_error' ? 1 : 0, `packets lost: ${reason}`);
    const exporter = { transport: 'udp', exporter: '127.0.0.1', identity: '' };
    assert.equal(sampleValue(fams, 'sealflow_exporter_records_total', exporter), 26);
    assert.equal(sampleValue(fams, 'sealflow_exporter_packets_total', exporter), 3);
    assert.equal(sampleValue(fams, 'sealflow_exporter_decode_errors_total', exporter), 1);
    assert.equal(fams.get('sealflow_decode_errors_total')?.samples.reduce((a, x) => a + x.value, 0), 1);
    assert.ok((sampleValue(fams, 'sealflow_drain_delivered_records_total') ?? 0) > 0);

    for (const name of fams.keys()) {
      assert.doesNotMatch(name, /_(port|quota_bytes|requested|per_sec(ond)?|eta)\b|_ms$/, `${name}: configuration values and rates are not metrics`);
      assert.doesNotMatch(name, /^sealflow_drain_spool_/, `${name}: the spool is exported once`);
      const f = fams.get(name);
      const help = f?.help ?? '';
      assert.ok(help.length > 0 && !help.startsWith('sealflow'), `${name} has real HELP text: ${help}`);
    }
  });

  test('every metric the shipped dashboard and alert rules query is on the live /metrics', async () => {
    const live = parsePrometheusText(await scrape());
    for (const name of queriedMetricNames()) assert.ok(live.has(name), `${name} (deploy/monitoring) is not exported by a running probe`);
  });

  test('the status page: same origin only, no script, live numbers, no flow data', async () => {
    const res = await get('/');
    assert.equal(res.status, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    const html = res.body;
    assert.doesNotMatch(html, /<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import/i, 'nothing is loaded from anywhere');
    assert.match(html, /<h2>Exporters<\/h2>/);
    const addresses = flowAddresses();
    assert.ok(addresses.size >= 2, `the capture has flow addresses: ${[...addresses].join(' ')}`);
    for (const a of addresses) if (a !== '127.0.0.1') assert.ok(!html.includes(a), `flow address ${a} is not shown`);
  });

  test('the status page renders in headless Chromium with the live numbers (screenshot kept)', async (t) => {
    if (!requireTool(t, haveChromium(), 'chromium (Debian package chromium)')) return;
    const profile = mkdtempSync(path.join(tmpdir(), 'sealflow-chromium-'));
    try {
      const stats = (await getJson('/stats')) as { exporters: { records: number }[]; spool: { records: number } };
      const dom = chromium(['--dump-dom', `${probe.adminUrl}/`], profile);
      assert.equal(dom.status, 0, dom.stderr.slice(-2000));
      assert.match(dom.stdout, /<h1>sealflow<\/h1>/);
      assert.match(dom.stdout, /1 active exporters/);
      // The exporter row as Chromium parsed it: transport, address, identity, last seen, rate, then the record count /stats reports.
      const row = /<tr><td>udp<\/td><td>127\.0\.0\.1<\/td><td>–<\/td><td><span class="ok">[^<]+ ago<\/span><\/td><td>[^<]+<\/td><td>([\d,]+)<\/td>/.exec(dom.stdout);
      assert.equal(row?.[1], String(stats.exporters[0]?.records), 'records of the exporter, as on /stats');
      assert.match(dom.stdout, /<svg [^>]*aria-label="records in"/);
      const dir = process.env.SEALFLOW_ARTIFACTS_DIR ?? path.join(repoRoot, 'test-output');
      mkdirSync(dir, { recursive: true });
      const png = path.join(dir, 'status-page.png');
      rmSync(png, { force: true });
      const shot = chromium(['--window-size=1280,1400', '--hide-scrollbars', `--screenshot=${png}`, `${probe.adminUrl}/`], profile);
      assert.equal(shot.status, 0, shot.stderr.slice(-2000));
      assert.ok(existsSync(png) && statSync(png).size > 20_000, 'a screenshot with content');
      assert.deepEqual([...readFileSync(png).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
      t.diagnostic(`status page screenshot: ${png}`);
      console.log(`status page screenshot: ${png}`);
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });

  test('/stats: one spool section, readable times', async () => {
    const body = (await get('/stats')).body;
    const s = JSON.parse(body) as { spool: { records: number; walCheckpointer: unknown }; drain: Record<string, unknown>; exporters: { lastSeen: string }[]; generatedAt: string };
    assert.equal(typeof s.spool.records, 'number');
    assert.ok(s.spool.walCheckpointer !== undefined);
    assert.ok(!('spool' in s.drain), 'the drain section does not repeat the spool');
    assert.match(s.exporters[0]?.lastSeen ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.match(s.generatedAt, /^\d{4}-/);
    assert.match(String(s.drain.lastSuccessAt), /^\d{4}-/);
    assert.doesNotMatch(body, /"\w+Ms":/, 'no epoch or duration milliseconds');
  });
});

/**
 * What an operator sees of a running probe, tested on the real daemon (`sealflow run` on its
 * embedded defaults, flows from loopback):
 * - /metrics passes `promtool check metrics` (Debian's prometheus package) with no finding,
 *   and carries build info, certificate not-after (checked against `openssl x509 -enddate`)
 *   and loss by reason;
 * - every metric the shipped dashboard and alert rules (deploy/monitoring) query is exported;
 * - /stats has one spool section and readable times.
 * One probe serves every check (the suite's time stays modest).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { devFiles, embeddedDefaults } from '../../src/config/embedded-defaults.js';
import { PACKET_LOSS_REASONS, RECORD_LOSS_REASONS } from '../../src/flow/loss.js';
import { freeTcpPort, freeUdpPort, startProbe, type RunningProbe } from '../support/probe.js';
import { queriedMetricNames } from '../support/monitoring-files.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';
import { corpora, requireTool } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

const MESSAGES = ['logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat', 'logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat'].map((f) =>
  readFileSync(path.join(corpora, f)),
);

function havePromtool(): boolean {
  return spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined;
}

let probe: RunningProbe;
let dataDir: string;

/**
 * The embedded development configuration (dev PKI, dev key, Fusion stand-in) with free ports,
 * so this file can run beside the `npm start` test, which owns the fixed ones.
 */
async function configFile(dir: string, adminPort: number): Promise<string> {
  const c = embeddedDefaults(dir) as { listeners: { udp: { port: number }[]; tls: { port: number }; dtls: { port: number } }; admin: Record<string, unknown>; stats: Record<string, unknown> };
  for (const u of c.listeners.udp) u.port = await freeUdpPort();
  c.listeners.tls.port = await freeTcpPort();
  c.listeners.dtls.port = await freeUdpPort();
  c.admin.port = adminPort;
  c.stats.intervalSeconds = 1;
  const file = path.join(dir, 'sealflow.yaml');
  writeFileSync(file, stringify(c));
  return file;
}

interface ListenerPorts {
  listeners: { udp: { listeners: { name: string; port: number }[] } };
}

before(async () => {
  dataDir = mkdtempSync(path.join(tmpdir(), 'sealflow-operator-'));
  const adminPort = await freeTcpPort();
  probe = await startProbe({ args: ['--config', await configFile(dataDir, adminPort)], adminPort });
  const ports = (await probe.getJson('/stats')) as ListenerPorts;
  const ipfix = ports.listeners.udp.listeners.find((l) => l.name === 'ipfix')?.port ?? 0;
  const udp = createSocket('udp4');
  // The capture's two messages, and one whose header claims more bytes than it has (a decode error).
  const truncated = Buffer.from(MESSAGES[1]?.subarray(0, 20) ?? []);
  for (const m of [...MESSAGES, truncated]) await new Promise<void>((resolve, reject) => udp.send(m, ipfix, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
  udp.close();
  await until(async () => {
    const s = (await probe.getJson('/stats')) as { drain: { deliveredRecords: number } | null };
    return (s.drain?.deliveredRecords ?? 0) > 0;
  }, 'records delivered to the embedded stand-in', 60_000);
});

after(async () => {
  const code = await probe.stop('SIGTERM', 15_000);
  rmSync(dataDir, { recursive: true, force: true });
  assert.equal(code, 0, `probe exit status; output:\n${probe.output().slice(-3000)}`);
});

async function scrape(): Promise<string> {
  const res = await fetch(`${probe.adminUrl}/metrics`);
  assert.equal(res.status, 200);
  return res.text();
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

  test('/stats: one spool section, readable times', async () => {
    const body = await (await fetch(`${probe.adminUrl}/stats`)).text();
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

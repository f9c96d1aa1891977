/**
 * Pseudonymisation at the edge, end to end with real sockets and the real daemon: IPFIX (the
 * fused path) and sFlow (the FlowRecord path) over UDP → `sealflow run` with
 * privacy.pseudonymize → encrypted spool; then `sealflow spool export`, `sealflow reidentify`,
 * and a second run that drains to the Fusion stand-in over HTTPS.
 *
 * Proves: client addresses arrive as pseudonyms inside their prefix in the export and at Fusion,
 * server and public addresses in clear; the flow filter decided on the real address; the real
 * client addresses are nowhere on disk (every file the probe wrote, as text and in binary),
 * nor in /stats, /metrics or the logs; `reidentify` returns each original (and is audited);
 * the pseudonymisation key is not on the spool's disk.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createSocket } from 'node:dgram';
import { stringify } from 'yaml';
import { createDevCertificate } from '../../src/fusion-sim/dev-certificate.js';
import { startFusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { parseIp } from '../../src/flow/ip.js';
import { prefixContains, parsePrefix } from '../../src/flow/cidr.js';
import { dataSet, ipfixMessage, ipfixTemplateSet, type FieldDef } from '../support/ipfix-builder.js';
import { datagram, flowSample, sampledIpv4Record, sampledIpv6Record } from '../support/sflow-builder.js';
import { freeTcpPort, freeUdpPort, startProbe } from '../support/probe.js';
import { repoRoot } from '../support/softflowd.js';
import { sendUdp, until } from '../support/udp-harness.js';

/** Client addresses (pseudonymised): none of these may be stored, uploaded, logged or shown. */
const CLIENTS = ['10.66.77.88', '10.66.77.99', '10.66.77.77', '2001:db8:100::beef', '2001:db8:100::cafe'];
const KEPT = ['10.20.0.5', '198.51.100.7', '198.51.100.8', '2001:db8:200::1', '2001:db8:200::2'];

const V4: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 }, { id: 1, length: 8 }, { id: 2, length: 8 }];
const V6: FieldDef[] = [{ id: 27, length: 16 }, { id: 28, length: 16 }, { id: 7, length: 2 }, { id: 11, length: 2 }, { id: 4, length: 1 }, { id: 1, length: 8 }, { id: 2, length: 8 }];

function packets(): Uint8Array[] {
  const ipfix = ipfixMessage({ sequence: 0, exportTime: Math.floor(Date.now() / 1000) }, [
    ipfixTemplateSet([{ id: 256, fields: V4 }, { id: 257, fields: V6 }]),
    dataSet(256, V4, [
      ['10.66.77.88', '198.51.100.7', 50000, 443, 6, 1500n, 3n], // client → public
      ['10.20.0.5', '10.66.77.99', 22, 50001, 6, 900n, 2n], // server → client
      ['10.66.77.88', '192.0.2.53', 50002, 53, 17, 80n, 1n], // dropped by the filter (real source, port 53)
    ]),
    dataSet(257, V6, [['2001:db8:100::beef', '2001:db8:200::1', 50003, 443, 6, 2000n, 4n]]),
  ]);
  const sflow = datagram({
    agent: '127.0.0.1',
    samples: [
      flowSample({ records: [sampledIpv4Record({ length: 600, protocol: 6, src: '10.66.77.77', dst: '198.51.100.8', srcPort: 50004, dstPort: 80, tcpFlags: 0x18, tos: 0 })] }),
      flowSample({ sequence: 2, records: [sampledIpv6Record({ length: 700, protocol: 6, src: '2001:db8:100::cafe', dst: '2001:db8:200::2', srcPort: 50005, dstPort: 443, tcpFlags: 0x18, priority: 0 })] }),
    ],
  });
  return [ipfix, sflow];
}
const EXPECTED_RECORDS = 5; // 3 + 1 IPFIX minus the filtered one, + 2 sFlow

interface FusionRecord {
  srcip: string;
  dstip: string;
  srcport: number;
  dstport: number;
  flowsrcip: string;
}

const within = (a: string, p: string): boolean => {
  const ip = parseIp(a);
  const pre = parsePrefix(p);
  return ip !== null && pre !== null && prefixContains(pre, ip);
};

/** Every byte pattern a real address could leave in a file: its text, and its binary forms (network and little-endian order). */
function canaryPatterns(text: string): Buffer[] {
  const a = parseIp(text);
  if (a === null) throw new Error(text);
  if (typeof a === 'number') {
    const be = Buffer.alloc(4);
    be.writeUInt32BE(a);
    const le = Buffer.alloc(4);
    le.writeUInt32LE(a);
    return [Buffer.from(text), be, le];
  }
  return [Buffer.from(text), Buffer.from(a)];
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(p);
  }
  return out;
}

function cli(args: readonly string[], env: NodeJS.ProcessEnv): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', ...args], { cwd: repoRoot, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('privacy.pseudonymize: pseudonyms in the spool export and at Fusion, real addresses nowhere on disk, filters on real addresses, reidentify returns the original', { timeout: 240_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-privacy-'));
  const keys = path.join(dir, 'keys');
  const dataDir = path.join(dir, 'data');
  mkdirSync(keys, { mode: 0o700 });
  const cert = await createDevCertificate();
  const sim = await startFusionSim({ host: '127.0.0.1', port: 0, certPem: cert.certPem, keyPem: cert.keyPem });
  const pzKey = randomBytes(32);
  try {
    writeFileSync(path.join(keys, 'ca.pem'), cert.certPem);
    writeFileSync(path.join(keys, 'kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
    writeFileSync(path.join(keys, 'pseudonymize.key'), `${pzKey.toString('base64')}\n`, { mode: 0o600 });
    writeFileSync(path.join(keys, 'netosecret'), sim.netosecret, { mode: 0o600 });
    const udpPort = await freeUdpPort();
    const adminPort = await freeTcpPort();
    const config = (drain: boolean): Record<string, unknown> => ({
      dataDir,
      log: { level: 'debug', format: 'json' },
      listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 1 << 20 }] },
      filters: { default: 'accept', rules: [{ name: 'client-dns', action: 'drop', srcnets: ['10.66.77.88/32'], dstports: [53] }] },
      spool: { kek: { file: path.join(keys, 'kek') }, batch: { maxAgeMs: 100 }, maxAgeSeconds: 86_400 },
      privacy: {
        pseudonymize: {
          key: { file: path.join(keys, 'pseudonymize.key') },
          rotation: 'daily',
          rules: [
            { name: 'servers', action: 'keep', prefixes: ['10.20.0.0/16'] },
            { name: 'clients', action: 'pseudonymize', prefixes: ['10.0.0.0/8', '2001:db8:100::/40'] },
          ],
        },
      },
      drain: drain
        ? { fusion: { uploadUrl: sim.uploadUrl, caFile: path.join(keys, 'ca.pem'), netosecret: { file: path.join(keys, 'netosecret') } }, retry: { initialDelayMs: 100, maxDelayMs: 1000 } }
        : { enabled: false },
      admin: { port: adminPort },
      stats: { intervalSeconds: 0 },
    });
    const configPath = path.join(keys, 'sealflow.yaml');

    // Phase 1: spool only.
    writeFileSync(configPath, stringify(config(false)));
    let probe = await startProbe({ args: ['--config', configPath], adminPort });
    let logs = '';
    let shown = '';
    try {
      const sock = createSocket('udp4');
      await new Promise<void>((r) => sock.bind(0, '127.0.0.1', r));
      for (const p of packets()) await sendUdp(sock, p, udpPort);
      sock.close();
      await until(async () => ((await probe.getJson('/stats')) as { spool: { records: number } | null }).spool?.records === EXPECTED_RECORDS, `${EXPECTED_RECORDS} records spooled; output:\n${probe.output().slice(-3000)}`, 30_000);
      const stats = (await probe.getJson('/stats')) as { filter: { dropped: number }; pseudonymize: { pseudonymized: number; kept: number; keyFingerprint: string; periodLengthS: number } };
      assert.equal(stats.filter.dropped, 1, 'the filter dropped the record of the real 10.66.77.88 to port 53');
      assert.ok(stats.pseudonymize.pseudonymized >= 5, `pseudonymised ${stats.pseudonymize.pseudonymized}`);
      assert.equal(stats.pseudonymize.periodLengthS, 86_400);
      shown = JSON.stringify(stats) + (await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text());
      assert.match(shown, /sealflow_pseudonymize_addresses_total\{result="pseudonymized"\} [1-9]/);
    } finally {
      assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-3000));
      logs += probe.output();
    }

    const env = { SEALFLOW_SPOOL_KEK_FILE: path.join(keys, 'kek') };
    const exported = cli(['spool', 'export', '--format', 'ndjson', '--data-dir', dataDir], env);
    assert.equal(exported.status, 0, exported.stderr);
    const records = exported.stdout.trim().split('\n').map((l) => JSON.parse(l) as FusionRecord);
    assert.equal(records.length, EXPECTED_RECORDS);
    assert.match(exported.stderr, /addresses pseudonymised with key [0-9a-f]{16}, period \d{4}-\d\d-\d\dT00:00:00\.000Z \+ 86400 s/);
    const byPort = new Map(records.map((r) => [r.srcport, r]));
    const pseudonyms = new Map<string, string>(); // pseudonym → real
    const expectPseudonym = (pseudonym: string | undefined, real: string, prefix: string): void => {
      assert.ok(pseudonym !== undefined && pseudonym !== real && within(pseudonym, prefix) && !within(pseudonym, '10.20.0.0/16'), `${real} → ${String(pseudonym)}`);
      pseudonyms.set(pseudonym, real);
    };
    expectPseudonym(byPort.get(50000)?.srcip, '10.66.77.88', '10.0.0.0/8');
    assert.equal(byPort.get(50000)?.dstip, '198.51.100.7');
    assert.equal(byPort.get(22)?.srcip, '10.20.0.5', 'the server subnet stays in clear');
    expectPseudonym(byPort.get(22)?.dstip, '10.66.77.99', '10.0.0.0/8');
    assert.equal(byPort.get(50002), undefined, 'the filtered record is not stored');
    expectPseudonym(byPort.get(50003)?.srcip, '2001:db8:100::beef', '2001:db8:100::/40');
    assert.equal(byPort.get(50003)?.dstip, '2001:db8:200::1');
    expectPseudonym(byPort.get(50004)?.srcip, '10.66.77.77', '10.0.0.0/8');
    expectPseudonym(byPort.get(50005)?.srcip, '2001:db8:100::cafe', '2001:db8:100::/40');
    for (const r of records) assert.equal(r.flowsrcip, '127.0.0.1', 'the exporter address is not pseudonymised');
    for (const c of CLIENTS) assert.ok(!exported.stdout.includes(`"${c}"`) && !exported.stderr.includes(c), `${c} in the export`);

    // Re-identification on site, with the key and the configuration (audited, without the real address in the log).
    for (const [pseudonym, real] of pseudonyms) {
      const r = cli(['reidentify', pseudonym, '--config', configPath], {});
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout.trim(), real);
      assert.match(r.stderr, /"event":"pseudonym_key\.reidentification"/);
      assert.ok(r.stderr.includes(pseudonym) && !r.stderr.includes(real), r.stderr);
    }
    const notOne = cli(['reidentify', '198.51.100.7', '--config', configPath], {});
    assert.equal(notOne.status, 1, 'a kept address is not a pseudonym');
    const yesterday = cli(['reidentify', [...pseudonyms.keys()][0] ?? '', '--at', String(Math.floor(Date.now() / 1000) - 2 * 86_400), '--config', configPath], {});
    assert.notEqual(yesterday.stdout.trim(), [...pseudonyms.values()][0], "another day's key does not re-identify today's pseudonym");

    // Phase 2: the same spool drains to the Fusion stand-in.
    writeFileSync(configPath, stringify(config(true)));
    probe = await startProbe({ args: ['--config', configPath], adminPort });
    try {
      await until(() => sim.records.length >= EXPECTED_RECORDS, `records at the stand-in; output:\n${probe.output().slice(-3000)}`, 60_000);
      const got = sim.records as unknown as FusionRecord[];
      assert.deepEqual(got.map((r) => `${r.srcip} ${r.dstip} ${r.srcport}`).sort(), records.map((r) => `${r.srcip} ${r.dstip} ${r.srcport}`).sort());
      const uploaded = JSON.stringify(got);
      for (const c of CLIENTS) assert.ok(!uploaded.includes(`"${c}"`), `${c} uploaded`);
      for (const k of KEPT) assert.ok(uploaded.includes(`"${k}"`), `${k} kept in clear`);
    } finally {
      assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-3000));
      logs += probe.output();
    }

    // Nothing the probe wrote, showed or logged holds a real client address or the key.
    const files = filesUnder(dataDir);
    assert.ok(files.some((f) => f.endsWith('spool.db')), files.join(', '));
    for (const f of files) {
      const bytes = readFileSync(f);
      for (const c of CLIENTS) for (const pattern of canaryPatterns(c)) assert.equal(bytes.indexOf(pattern), -1, `${c} found in ${f}`);
      assert.equal(bytes.indexOf(pzKey), -1, `the pseudonymisation key in ${f}`);
      assert.equal(bytes.indexOf(Buffer.from(pzKey.toString('base64'))), -1, `the pseudonymisation key (base64) in ${f}`);
    }
    for (const c of CLIENTS) {
      assert.ok(!logs.includes(c), `${c} in the logs`);
      assert.ok(!shown.includes(c), `${c} in /stats or /metrics`);
    }
    assert.match(logs, /"event":"pseudonym_key\.in_force"/);
  } finally {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

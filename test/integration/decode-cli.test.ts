/**
 * `sealflow decode` as a user runs it: the real CLI in a child process on the corpora
 * (template file then data file, glued v5, sFlow, RFC 5655, malformed files, usage errors),
 * and on pcaps of what softflowd really exported (IPFIX, v9, v5) for
 * test/fixtures/corpora/synthetic/traffic.pcap, compared with traffic_truth.json and with
 * Wireshark's decoding of the same pcap.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FusionFlowRecord } from '../../src/flow/fusion-record.js';
import { buildPcap } from '../support/pcap-builder.js';
import type { PcapDatagram } from '../support/pcap-builder.js';
import { haveTshark, tsharkFields } from '../support/tshark-fields.js';
import { loadTrafficTruth } from '../support/traffic-truth.js';
import { corpora } from '../support/corpora.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
const C = (rel: string): string => path.join(corpora, rel);

interface CliResult {
  status: number | null;
  records: FusionFlowRecord[];
  stderr: string;
  stdout: string;
}

function cli(...args: string[]): CliResult {
  return cliWithInput(undefined, ...args);
}

/** Runs `sealflow decode ARGS` with `input` on its standard input. */
function cliWithInput(input: Uint8Array | undefined, ...args: string[]): CliResult {
  const res = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'decode', ...args], { cwd: repoRoot, encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024, ...(input === undefined ? {} : { input }) });
  const lines = res.stdout.split('\n').filter((l) => l.length > 0);
  const records = res.status === 64 || args.includes('--help') ? [] : lines.map((l) => JSON.parse(l) as FusionFlowRecord);
  return { status: res.status, records, stderr: res.stderr, stdout: res.stdout };
}

describe('sealflow decode on the corpora', () => {
  test('a reader that stops early (| head -n 1): exit 0, no stack trace', async () => {
    // Many records, so that the pipe closes while the decoder is still writing.
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'decode', C('ipfixcol2/example_flows.ipfix')], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  test('a template file then a data file decode as one session', () => {
    const r = cli(C('logstash-codec-netflow/netflow9_test_cisco_asa_1_tpl.dat'), C('logstash-codec-netflow/netflow9_test_cisco_asa_1_data.dat'));
    assert.equal(r.status, 0, r.stderr);
    assert.ok(r.records.length > 0);
    assert.ok(r.records.every((x) => x.flowtype === 'netflow' && x.flowversion === 9 && x.flowsrcip === '0.0.0.0'));
  });

  test('the data file alone: held for its template, then reported with file and offset, exit 1', () => {
    const r = cli(C('logstash-codec-netflow/netflow9_test_cisco_asa_1_data.dat'));
    assert.equal(r.status, 1);
    assert.equal(r.records.length, 0);
    assert.match(r.stderr, /netflow9_test_cisco_asa_1_data\.dat: offset \d+: ERR_DECODE_PENDING_EXPIRED/);
  });

  test('netflow5.dat: all 12 glued v5 datagrams (30 records); --exporter sets flowsrcip', () => {
    const r = cli(C('logstash-codec-netflow/netflow5.dat'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.records.length, 30);
    assert.ok(r.records.every((x) => x.flowversion === 5 && x.flowtype === 'netflow'));
    const o = cli('--exporter', '192.0.2.99', C('logstash-codec-netflow/netflow5.dat'));
    assert.ok(o.records.length === 30 && o.records.every((x) => x.flowsrcip === '192.0.2.99'));
  });

  test('NetFlow v5 with a count that does not fit: BAD_COUNT with file and offset, exit 1', () => {
    const r = cli(C('logstash-codec-netflow/netflow5_test_invalid01.dat'));
    assert.equal(r.status, 1);
    assert.match(r.stderr, /netflow5_test_invalid01\.dat: offset 2: ERR_DECODE_BAD_COUNT/);
  });

  test('sFlow datagrams: flowtype sflow, flowsrcip = the agent, samplerate from the sample', () => {
    const r = cli(C('goflow2/sflow_TestExpandedSFlowDecode_0.bin'), C('logstash-codec-sflow/sflow_counters_sample.dat'));
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.records.length, 5);
    assert.ok(r.records.every((x) => x.flowtype === 'sflow' && x.flowversion === 5 && x.flowsrcip === '1.2.3.4' && x.samplerate === 16383 && x.packets === 1));
  });

  test('"-" reads standard input, recognised by content: a pcap, or the data after a template file', () => {
    const v5 = new Uint8Array(readFileSync(C('goflow2/nfv5_TestDecodeNetFlowV5_0.bin')));
    const pcap = buildPcap([0, 1].map((i) => ({ payload: v5, src: '192.0.2.7', dst: '192.0.2.8', srcPort: 999, dstPort: 2055, timestampMs: 1_700_000_000_000 + i })));
    const r = cliWithInput(pcap, '-');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.records.length, 12);
    assert.ok(r.records.every((x) => x.flowsrcip === '192.0.2.7' && x.flowversion === 5));
    const data = new Uint8Array(readFileSync(C('logstash-codec-netflow/netflow9_test_cisco_asa_1_data.dat')));
    const fromFiles = cli(C('logstash-codec-netflow/netflow9_test_cisco_asa_1_tpl.dat'), C('logstash-codec-netflow/netflow9_test_cisco_asa_1_data.dat'));
    const mixed = cliWithInput(data, C('logstash-codec-netflow/netflow9_test_cisco_asa_1_tpl.dat'), '-');
    assert.equal(mixed.status, 0, mixed.stderr);
    assert.deepEqual(mixed.records, fromFiles.records);
    const twice = cliWithInput(data, '-', '-');
    assert.equal(twice.status, 64);
    assert.match(twice.stderr, /standard input\) can be given once/);
  });

  test('an RFC 5655 .ipfix file decodes', () => {
    const r = cli(C('ipfixcol2/example_flows.ipfix'));
    assert.ok(r.records.length > 0, r.stderr);
    assert.ok(r.records.every((x) => x.flowversion === 10));
  });

  test('a truncated pcap: the packets before the cut decode, the cut is reported with its offset', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-cli-'));
    try {
      const v5 = new Uint8Array(readFileSync(C('goflow2/nfv5_TestDecodeNetFlowV5_0.bin')));
      const pcap = buildPcap([0, 1].map((i) => ({ payload: v5, src: '192.0.2.7', dst: '192.0.2.8', srcPort: 999, dstPort: 2055, timestampMs: 1_700_000_000_000 + i })));
      const file = path.join(dir, 'cut.pcap');
      writeFileSync(file, pcap.subarray(0, pcap.length - 10));
      const r = cli(file);
      assert.equal(r.status, 1);
      assert.equal(r.records.length, 6);
      assert.ok(r.records.every((x) => x.flowsrcip === '192.0.2.7'));
      const recordStart = 24 + 16 + (14 + 20 + 8 + v5.length);
      assert.match(r.stderr, new RegExp(`cut\\.pcap: offset ${recordStart}: ERR_DECODE_TRUNCATED`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a capture of non-flow UDP: every datagram is a counted problem, the listing is capped, non-UDP frames are not problems', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-cli-'));
    try {
      const junk = Array.from({ length: 250 }, (_, i) => ({ payload: Uint8Array.from([0x12, 0x34, i & 0xff, 0]), src: '192.0.2.7', dst: '192.0.2.8', srcPort: 53, dstPort: 53, timestampMs: 1_700_000_000_000 + i }));
      const file = path.join(dir, 'dns.pcap');
      writeFileSync(file, buildPcap(junk));
      const r = cli(file);
      assert.equal(r.status, 1);
      assert.equal((r.stderr.match(/ERR_DECODE_BAD_VERSION/g) ?? []).length, 200);
      assert.match(r.stderr, /dns\.pcap: 50 more problems not listed/);
      assert.match(r.stderr, /0 records from 250 packets, 250 problems/);
      const traffic = cli(C('synthetic/traffic.pcap'));
      assert.match(traffic.stderr, /\(27 non-UDP frames skipped\)/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('usage: no file → 64, --help → 0, bad --exporter → 64, unknown option → 64, unreadable file → 66', () => {
    assert.equal(cli().status, 64);
    const help = cli('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /usage: sealflow decode/);
    assert.equal(cli('--exporter', 'not-an-ip', C('goflow2/nfv5_TestDecodeNetFlowV5_0.bin')).status, 64);
    assert.equal(cli('--nope', C('goflow2/nfv5_TestDecodeNetFlowV5_0.bin')).status, 64);
    const missing = cli(path.join(repoRoot, 'no-such-file.dat'), C('goflow2/nfv5_TestDecodeNetFlowV5_0.bin'));
    assert.equal(missing.status, 66);
    assert.equal(missing.records.length, 6, 'the readable file is still decoded');
    assert.match(missing.stderr, /no-such-file\.dat: cannot read \(ENOENT\)/);
  });
});

// ---- softflowd exporting traffic.pcap ----

const truth = loadTrafficTruth(corpora);

function haveTool(cmd: string, arg: string): boolean {
  return spawnSync(cmd, [arg], { stdio: 'ignore' }).error === undefined;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Runs softflowd over traffic.pcap exporting to a UDP socket of ours and returns what it
 * sent. softflowd 1.1.0 ignores `-r` paths longer than ~15 characters, so the pcap is copied
 * into the temp dir and read by a relative path; with `-r` it sometimes waits for
 * `softflowctl shutdown` after EOF (then it flushes its flows), so that is sent if it lingers.
 */
async function softflowdExport(dir: string, version: number): Promise<{ datagrams: PcapDatagram[]; port: number }> {
  copyFileSync(C('synthetic/traffic.pcap'), path.join(dir, 't.pcap'));
  const sock = dgram.createSocket('udp4');
  const datagrams: PcapDatagram[] = [];
  let port = 0;
  sock.on('message', (m, rinfo) => {
    datagrams.push({ payload: new Uint8Array(m), src: rinfo.address, dst: '127.0.0.1', srcPort: rinfo.port, dstPort: port, timestampMs: Date.now() });
  });
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  port = sock.address().port;
  try {
    const child = spawn('softflowd', ['-r', 't.pcap', '-n', `127.0.0.1:${port}`, '-v', String(version), '-c', 'ctl', '-d'], { cwd: dir, stdio: 'ignore' });
    const state = { exited: false };
    const exit = new Promise<void>((resolve) => child.on('exit', () => {
      state.exited = true;
      resolve();
    }));
    const started = Date.now();
    while (!state.exited && Date.now() - started < 15_000) {
      if (Date.now() - started > 500 && existsSync(path.join(dir, 'ctl'))) spawnSync('softflowctl', ['-c', path.join(dir, 'ctl'), 'shutdown'], { stdio: 'ignore' });
      await sleep(100);
    }
    if (!state.exited) child.kill();
    await exit;
    // Datagrams sent just before exit are still in our socket's queue.
    for (let i = 0; i < 20 && datagrams.length === 0; i++) await sleep(50);
    await sleep(100);
  } finally {
    sock.close();
  }
  return { datagrams, port };
}

/** What sealflow printed, per (src, dst, protocol, ports or ICMP type/code). */
function keyOf(src: string, dst: string, proto: number, sport: number, dport: number, icmp: number | undefined): string {
  return proto === 1 || proto === 58 ? `${src}>${dst}/${proto}/icmp${icmp ?? -1}` : `${src}>${dst}/${proto}/${sport}>${dport}`;
}

const softflowdSkip = !haveTool('softflowd', '-h') && process.env.CI === undefined ? 'softflowd not installed (apt-get install softflowd)' : false;

describe('sealflow decode on pcaps of softflowd exporting traffic.pcap', { skip: softflowdSkip }, () => {
  for (const version of [10, 9, 5]) {
    test(`NetFlow/IPFIX version ${version}: records match traffic_truth.json and tshark`, async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-'));
      try {
        const { datagrams, port } = await softflowdExport(dir, version);
        assert.ok(datagrams.length > 0, 'softflowd exported something');
        const pcapFile = path.join(dir, 'export.pcap');
        writeFileSync(pcapFile, buildPcap(datagrams));
        const r = cli(pcapFile);
        assert.equal(r.status, 0, r.stderr);
        assert.ok(r.records.every((x) => x.flowversion === version && x.flowsrcip === '127.0.0.1'));

        // v5 carries only IPv4 flows.
        const expected = truth.flows.filter((f) => version !== 5 || !f.src.includes(':'));
        const got = new Map<string, FusionFlowRecord>();
        for (const x of r.records) {
          const icmp = x.icmptype === null ? undefined : x.icmptype * 256 + (x.icmpcode ?? 0);
          const k = keyOf(x.srcip ?? '', x.dstip ?? '', x.protocolint ?? -1, x.srcport ?? 0, x.dstport ?? 0, icmp);
          assert.ok(!got.has(k), `one record per flow: ${k}`);
          got.set(k, x);
        }
        assert.equal(got.size, expected.length);
        for (const f of expected) {
          const k = keyOf(f.src, f.dst, f.proto, f.sport, f.dport, f.icmp_type_code);
          const x = got.get(k);
          assert.ok(x !== undefined, `flow ${k} missing`);
          assert.equal(x.packets, f.packets, k);
          assert.equal(x.bits, f.bytes * 8, k);
          assert.equal(x.ipversion, f.src.includes(':') ? 6 : 4, k);
          if (f.proto === 6) assert.equal(x.tcpflagsint, f.tcp_flags, k);
          // softflowd keeps one bidirectional flow per TCP/UDP conversation and exports both
          // directions with its start/end: the span of the two truth flows. ICMP echo and
          // reply differ in type, so they are separate flows.
          const icmp = f.proto === 1 || f.proto === 58;
          const back = icmp ? undefined : truth.flows.find((b) => b.src === f.dst && b.dst === f.src && b.proto === f.proto && b.sport === f.dport && b.dport === f.sport);
          const first = Math.min(f.first_ts, back?.first_ts ?? Infinity);
          const last = Math.max(f.last_ts, back?.last_ts ?? -Infinity);
          assert.equal(x.duration, Math.round((last - first) * 1000), k);
          assert.equal(x.samplerate, 1);
        }

        // The same pcap through Wireshark: same records in the same order.
        if (haveTshark() || process.env.CI !== undefined) {
          const rows = tsharkFields(pcapFile, [`udp.port==${port},cflow`], ['cflow.octets', 'cflow.packets', 'cflow.srcaddr', 'cflow.srcaddrv6']);
          const all = (f: string): string[] => rows.flatMap((row) => row[f] ?? []);
          assert.deepEqual(r.records.map((x) => x.bits), all('cflow.octets').map((o) => Number(o) * 8));
          assert.deepEqual(r.records.map((x) => x.packets), all('cflow.packets').map(Number));
          assert.deepEqual(r.records.filter((x) => x.ipversion === 4).map((x) => x.srcip), all('cflow.srcaddr'));
          assert.deepEqual(r.records.filter((x) => x.ipversion === 6).map((x) => x.srcip), all('cflow.srcaddrv6'));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

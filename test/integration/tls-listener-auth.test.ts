/**
 * IPFIX over TLS with mutual authentication, driven by real clients (openssl s_client, socat,
 * node:tls) on 127.0.0.1: a verified exporter's messages reach the sink (and decode to the
 * corpus's expected values); every kind of unverified exporter is rejected with its counted
 * reason and none of its bytes reach the sink (RFC 7011 §11.3, §11.6).
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import tls from 'node:tls';
import { DecodeService } from '../../src/decode/decode-service.js';
import { parseIpv4 } from '../../src/flow/ip.js';
import type { AuthFailureReason } from '../../src/ingest/trust/auth-failure.js';
import { createTestPki, type TestCertificate, type TestPki } from '../support/test-pki.js';
import { closed, haveTool, nodeClient, sClient, socatClient, startListener, tcpConnect, write, type Harness } from '../support/tls-harness.js';
import { until } from '../support/udp-harness.js';
import { corpora } from '../support/corpora.js';

const TPL = readFileSync(resolve(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat'));
const DATA = readFileSync(resolve(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat'));
const STREAM = Buffer.concat([TPL, DATA]);

interface Expected {
  captures: Record<string, { feed_in_order: string[]; expected_event_count: number; records: Record<string, unknown>[] }>;
}

function toolOrSkip(t: { skip: (msg: string) => void }, tool: string): boolean {
  if (haveTool(tool)) return true;
  if (process.env.CI !== undefined) assert.fail(`${tool} is required in CI (.ci/install-deps)`);
  t.skip(`${tool} not installed`);
  return false;
}

describe('TLS listener: mutual authentication with real clients', () => {
  let pki: TestPki;
  let h: Harness;
  before(async () => {
    pki = await createTestPki();
    h = await startListener(pki);
  });
  after(async () => {
    await h.close();
    await pki.cleanup();
  });

  test('s_client with a valid certificate: messages delivered intact with identity, then decoded', async (t) => {
    if (!toolOrSkip(t, 'openssl')) return;
    const before = h.sink.packets.length;
    const r = await sClient(h.port, pki, pki.exporters.valid, STREAM);
    assert.equal(r.code, 0, r.stderr);
    await until(() => h.sink.packets.length >= before + 2, 'two messages');
    const got = h.sink.packets.slice(before);
    assert.equal(got.length, 2);
    assert.deepEqual(Buffer.from(got[0]!.payload), TPL);
    assert.deepEqual(Buffer.from(got[1]!.payload), DATA);
    for (const p of got) {
      assert.equal(p.identity, 'exporter1.test');
      assert.equal(p.transport, 'tls');
      assert.equal(p.exporter, '127.0.0.1');
      assert.match(p.sessionKey, /^tls\|127\.0\.0\.1\|\d+\|\d+$/);
    }
    assert.equal(got[0]!.sessionKey, got[1]!.sessionKey);
    await until(() => h.sink.ended.includes(got[0]!.sessionKey), 'session end on close');

    // Decode what the listener delivered and compare with the corpus's expected values.
    const expected = (JSON.parse(readFileSync(resolve(corpora, 'expected.json'), 'utf8')) as Expected).captures['logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat']!;
    const decoder = new DecodeService();
    const records = got.flatMap((p) => decoder.decode(p).records);
    assert.equal(records.length, expected.expected_event_count);
    for (const want of expected.records) {
      const rec = records[want._index as number]!;
      assert.equal(rec.exporterIdentity, 'exporter1.test');
      assert.equal(rec.transport, 'tls');
      assert.equal(rec.srcAddr, parseIpv4(want.sourceIPv4Address as string));
      assert.equal(rec.dstAddr, parseIpv4(want.destinationIPv4Address as string));
      assert.equal(rec.srcPort, want.sourceTransportPort);
      assert.equal(rec.dstPort, want.destinationTransportPort);
      assert.equal(rec.protocol, want.protocolIdentifier);
      assert.equal(Number(rec.octets), want.octetDeltaCount);
      assert.equal(Number(rec.packets), want.packetDeltaCount);
      assert.equal(rec.inputIf, want.ingressInterface);
      assert.equal(rec.outputIf, want.egressInterface);
      assert.equal(rec.tos, want.ipClassOfService);
      assert.equal(rec.startMs, Date.parse(want.flowStartMilliseconds as string));
      assert.equal(rec.endMs, Date.parse(want.flowEndMilliseconds as string));
    }
  });

  test('socat OPENSSL: with a valid certificate delivers the same messages', async (t) => {
    if (!toolOrSkip(t, 'socat')) return;
    const before = h.sink.packets.length;
    const r = await socatClient(h.port, pki, pki.exporters.valid2, STREAM);
    assert.equal(r.code, 0, r.stderr);
    await until(() => h.sink.packets.length >= before + 2, 'two messages');
    const got = h.sink.packets.slice(before);
    assert.deepEqual(got.map((p) => Buffer.from(p.payload)), [TPL, DATA]);
    assert.ok(got.every((p) => p.identity === 'exporter2.test'));
  });

  test('node:tls client presenting an intermediate-issued chain is accepted', async () => {
    const before = h.sink.packets.length;
    const s = await nodeClient(h.port, pki, pki.exporters.viaIntermediate, { chain: true });
    await write(s, STREAM);
    await until(() => h.sink.packets.length >= before + 2, 'two messages');
    assert.ok(h.sink.packets.slice(before).every((p) => p.identity === 'exporter3.test'));
    s.end();
    await closed(s);
  });

  /** Runs a rejected client and checks the reason was counted and nothing reached the sink. */
  async function expectRejected(reason: AuthFailureReason, run: () => Promise<unknown>, source = '127.0.0.1'): Promise<void> {
    const packetsBefore = h.sink.packets.length;
    const bytesBefore = h.listener.stats().bytes;
    const countBefore = h.listener.stats().authFailures[reason];
    const linesBefore = h.lines.length;
    await run();
    await until(() => h.listener.stats().authFailures[reason] === countBefore + 1, `auth failure ${reason}`);
    // Give any wrongly accepted bytes time to arrive before asserting none did.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(h.sink.packets.length, packetsBefore, 'no message from an unverified exporter reaches the sink');
    assert.equal(h.listener.stats().bytes, bytesBefore, 'not a byte read from an unverified exporter');
    const logged = h.lines.slice(linesBefore).find((l) => l.event === 'tls.auth_failed' && l.reason === reason);
    assert.ok(logged !== undefined, `a log line for ${reason}`);
    assert.equal(logged.source, source, 'the log names the real source address');
    await until(() => h.listener.stats().connectionsOpen === 0, 'rejected connection closed');
  }

  const sClientCases: [string, AuthFailureReason, (p: TestPki) => TestCertificate | null, string[]][] = [
    ['no client certificate', 'no_certificate', () => null, []],
    ['certificate from another CA', 'unknown_ca', (p) => p.exporters.otherCa, []],
    ['expired certificate', 'expired', (p) => p.exporters.expired, []],
    ['certificate not yet valid', 'not_yet_valid', (p) => p.exporters.notYetValid, []],
    ['certificate revoked via CRL', 'revoked', (p) => p.exporters.revoked, []],
    ['valid chain, name not on the allowlist', 'name_not_allowed', (p) => p.exporters.wrongName, []],
    ['valid chain, serverAuth-only certificate', 'bad_certificate', (p) => p.exporters.serverOnly, []],
    ['TLS 1.1 client', 'protocol_version', (p) => p.exporters.valid, ['-tls1_1', '-cipher', 'DEFAULT@SECLEVEL=0']],
    ['TLS 1.0 client', 'protocol_version', (p) => p.exporters.valid, ['-tls1', '-cipher', 'DEFAULT@SECLEVEL=0']],
    // Weak suites are never negotiated: static-RSA CBC, NULL encryption, anonymous DH.
    ['TLS 1.2 client offering only AES128-SHA (static RSA, CBC)', 'handshake_failed', (p) => p.exporters.valid, ['-tls1_2', '-cipher', 'AES128-SHA']],
    ['TLS 1.2 client offering only NULL ciphers', 'handshake_failed', (p) => p.exporters.valid, ['-tls1_2', '-cipher', 'eNULL:@SECLEVEL=0']],
    ['TLS 1.2 client offering only anonymous suites', 'handshake_failed', (p) => p.exporters.valid, ['-tls1_2', '-cipher', 'aNULL:@SECLEVEL=0']],
  ];
  for (const [label, reason, certOf, extra] of sClientCases) {
    test(`s_client rejected: ${label} → ${reason}`, async (t) => {
      if (!toolOrSkip(t, 'openssl')) return;
      await expectRejected(reason, () => sClient(h.port, pki, certOf(pki), STREAM, extra));
    });
  }

  test('allowed name from a source address outside its bound prefix → source_not_bound', async () => {
    // exporter1.test is bound to 127.0.0.1/32; connect from 127.0.0.2.
    await expectRejected('source_not_bound', async () => {
      const s = await nodeClient(h.port, pki, pki.exporters.valid, { localAddress: '127.0.0.2' });
      s.write(STREAM);
      await closed(s);
    }, '127.0.0.2');
  });

  test('the same exporter from its bound address is accepted (control for the binding test)', async () => {
    const before = h.sink.packets.length;
    const s = await nodeClient(h.port, pki, pki.exporters.valid, { localAddress: '127.0.0.1' });
    await write(s, STREAM);
    await until(() => h.sink.packets.length === before + 2, 'two messages');
    s.end();
    await closed(s);
  });

  test('plain TCP bytes on the TLS port → handshake_failed, nothing delivered', async () => {
    await expectRejected('handshake_failed', async () => {
      const s = await tcpConnect(h.port);
      s.write(STREAM);
      await closed(s);
    });
  });

  test('a message claiming an observation domain not bound to the identity closes the session', async () => {
    const other = Buffer.from(DATA);
    other.writeUInt32BE(99, 12);
    const before = h.sink.packets.length;
    const failures = h.listener.stats().authFailures.domain_not_bound;
    const s = await nodeClient(h.port, pki, pki.exporters.valid);
    s.write(Buffer.concat([TPL, other, DATA]));
    assert.equal(await closed(s), true);
    assert.equal(h.listener.stats().authFailures.domain_not_bound, failures + 1);
    // The template (ODID 42) got through; nothing from the forged message on.
    assert.deepEqual(h.sink.packets.slice(before).map((p) => p.payload.length), [TPL.length]);
    assert.ok(h.lines.some((l) => l.reason === 'domain_not_bound' && l.observationDomainId === 99));
  });

  test('no session resumption: every connection gets a full, verified handshake', async () => {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const connect = (session?: Buffer): tls.TLSSocket =>
        tls.connect({
          host: '127.0.0.1', port: h.port, servername: 'localhost', maxVersion, ca: readFileSync(pki.caFile),
          cert: readFileSync(pki.exporters.valid.certFile), key: readFileSync(pki.exporters.valid.keyFile), ...(session === undefined ? {} : { session }),
        });
      const first = connect();
      let session: Buffer | undefined;
      first.on('session', (s: Buffer) => (session = s));
      await new Promise((r) => first.once('secureConnect', r));
      await write(first, TPL);
      first.end();
      await closed(first);
      assert.ok(session !== undefined, `${maxVersion}: the client got a session to offer`);
      const authenticated = h.listener.stats().sessionsAuthenticated;
      const second = connect(session);
      await new Promise((r) => second.once('secureConnect', r));
      assert.equal(second.isSessionReused(), false, `${maxVersion}: resumption refused`);
      await until(() => h.listener.stats().sessionsAuthenticated === authenticated + 1, 'second session verified');
      second.end();
      await closed(second);
    }
  });

  test('client-initiated renegotiation (TLS 1.2, s_client "R") is refused: the client aborts and nothing sent after it is delivered', async (t) => {
    if (!toolOrSkip(t, 'openssl')) return;
    const before = h.sink.packets.length;
    const child = spawn('openssl', [
      's_client', '-connect', `127.0.0.1:${h.port}`, '-servername', 'localhost', '-CAfile', pki.caFile, '-verify_return_error',
      '-tls1_2', '-no_ign_eof', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile,
    ], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.stdin.on('error', () => {
      // s_client may be gone by the time the last write arrives (that is the point).
    });
    const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)));
    const guard = setTimeout(() => child.kill('SIGKILL'), 15_000);
    try {
      // Each stdin read is one s_client command or record: wait for delivery between writes.
      child.stdin.write(TPL);
      await until(() => h.sink.packets.length >= before + 1, 'the template before the renegotiation');
      child.stdin.write('R\n');
      await until(() => output.includes('RENEGOTIATING'), 's_client started a renegotiation');
      // A renegotiation the server accepted would finish within this; the refusal ends s_client.
      await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
      if (child.exitCode === null) child.stdin.write(DATA);
      child.stdin.end();
      const code = await exited;
      assert.notEqual(code, 0, output);
      assert.match(output, /no renegotiation/i);
      await until(() => h.sink.ended.length > 0 && h.listener.stats().sessionsOpen === 0, 'the session ended');
      assert.deepEqual(h.sink.packets.slice(before).map((p) => Buffer.from(p.payload)), [TPL], 'only the message sent before the renegotiation attempt');
    } finally {
      clearTimeout(guard);
      child.kill('SIGKILL');
    }
  });

  test('a bad IPFIX header closes the session with a logged reason', async () => {
    const bad = Buffer.from(TPL);
    bad.writeUInt16BE(9, 0);
    const s = await nodeClient(h.port, pki, pki.exporters.valid2);
    s.write(bad);
    assert.equal(await closed(s), true);
    assert.equal(h.listener.stats().framingErrors.bad_version, 1);
    assert.ok(h.lines.some((l) => l.event === 'tls.framing_error' && l.reason === 'bad_version'));
  });
});

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { PacketSink } from '../../src/flow/pipeline.js';
import { parseIpv4 } from '../../src/flow/ip.js';
import { DecodeService } from '../../src/decode/decode-service.js';
import { DtlsListener, type DtlsListenerOptions } from '../../src/ingest/dtls/dtls-listener.js';
import type { AuthFailureReason } from '../../src/ingest/trust/auth-failure.js';
import { ExporterTrust, type ExporterTrustSettings } from '../../src/ingest/trust/exporter-trust.js';
import { loadDtlsAddon } from '../../src/ingest/dtls/native-binding.js';
import { IngestError } from '../../src/flow/errors.js';
import { DtlsHandshakeError, DtlsTestClient } from '../support/dtls-client.js';
import { createTestPki, type TestCertificate, type TestPki } from '../support/test-pki.js';
import { bindUdp, sendUdp, testLogger, until, type LogLine } from '../support/udp-harness.js';
import { corpora } from '../support/corpora.js';

/*
 * The DTLS listener against real clients on loopback: `openssl s_client -dtls1_2` (an
 * independent DTLS implementation) and the addon's own client role. The PKI is made fresh
 * in a temp dir by test/support/test-pki.ts.
 */

const TPL = readFileSync(resolve(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_tpl.dat'));
const DATA = readFileSync(resolve(corpora, 'logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat'));
const PFLOW_DOMAIN = TPL.readUInt32BE(12);

const haveOpenssl = spawnSync('openssl', ['version']).status === 0;
if (!haveOpenssl && process.env.CI !== undefined) throw new Error('openssl CLI missing in CI (.ci/install-deps installs it)');
const skipOpenssl = haveOpenssl ? false : 'openssl CLI not installed (apt-get install openssl)';
const haveSocat = spawnSync('socat', ['-V']).status === 0;
if (!haveSocat && process.env.CI !== undefined) throw new Error('socat missing in CI (.ci/install-deps installs it)');
const skipSocat = haveSocat ? false : 'socat not installed (apt-get install socat)';

/** Records packets and ended sessions. */
class SessionSink implements PacketSink {
  readonly packets: ExporterPacket[] = [];
  readonly ended: string[] = [];
  submit(p: ExporterPacket): boolean {
    this.packets.push(p);
    return true;
  }
  endSession(key: string): void {
    this.ended.push(key);
  }
  onDrain(): void {
    // never above a high-water mark
  }
}

let pki: TestPki;
let reloadCert: TestCertificate;

before(async () => {
  pki = await createTestPki();
  reloadCert = await pki.issueExporter('reload.test');
});
after(async () => {
  await pki.cleanup();
});

function trustSettings(extra: Partial<ExporterTrustSettings> = {}): ExporterTrustSettings {
  return {
    caFile: pki.caFile,
    crlFiles: pki.crlFiles,
    certFile: pki.collector.certFile,
    keyFile: pki.collector.keyFile,
    exporters: [
      { name: 'exporter1.test', observationDomainIds: [PFLOW_DOMAIN] },
      // Allowed name, but only from a prefix the test never connects from.
      { name: 'exporter2.test', sources: ['192.0.2.0/24'] },
      { name: 'reload.test' },
      { name: 'expired.test' },
      { name: 'revoked.test' },
    ],
    ...extra,
  };
}

async function startListener(opts: Partial<DtlsListenerOptions> = {}): Promise<{ listener: DtlsListener; sink: SessionSink; port: number; lines: LogLine[] }> {
  const sink = new SessionSink();
  const { logger, lines } = testLogger();
  const listener = new DtlsListener({
    address: '127.0.0.1',
    port: 0,
    trust: ExporterTrust.load(trustSettings(), 'listeners.dtls'),
    sink,
    logger,
    ...opts,
  });
  const { port } = await listener.start();
  return { listener, sink, port, lines };
}

function sClient(port: number, args: readonly string[]): ChildProcess {
  return spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-quiet', ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
}

/** Kills a client; SIGKILL after a grace period (socat ignores SIGTERM in the middle of a handshake). */
async function stopChild(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  c.kill();
  const force = setTimeout(() => c.kill('SIGKILL'), 1_000);
  await exited;
  clearTimeout(force);
}

describe('DTLS listener with openssl s_client', { skip: skipOpenssl }, () => {
  test('IPFIX template + data over DTLS 1.2 reach the sink as exactly those messages with the identity, and decode to the expected record', async () => {
    const { listener, sink, port } = await startListener();
    const c = sClient(port, ['-dtls1_2', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile, '-CAfile', pki.caFile]);
    try {
      await until(() => listener.stats().sessionsActive === 1, 'the s_client association', 10_000);
      // s_client turns each stdin read into one DTLS record; waiting for the first message to
      // arrive before writing the second keeps one IPFIX message per read, hence per record.
      c.stdin?.write(TPL);
      await until(() => sink.packets.length === 1, 'the template message');
      c.stdin?.write(DATA);
      await until(() => sink.packets.length === 2, 'the data message');
    } finally {
      await stopChild(c);
    }
    const [p1, p2] = sink.packets;
    assert.ok(p1 !== undefined && p2 !== undefined);
    assert.deepEqual(Buffer.from(p1.payload), TPL);
    assert.deepEqual(Buffer.from(p2.payload), DATA);
    for (const p of [p1, p2]) {
      assert.equal(p.transport, 'dtls');
      assert.equal(p.identity, 'exporter1.test');
      assert.equal(p.exporter, '127.0.0.1');
      assert.ok(p.exporterPort > 0);
    }
    assert.equal(p1.sessionKey, p2.sessionKey);
    assert.match(p1.sessionKey, /^dtls\|127\.0\.0\.1\|\d+\|\d+\|\d+$/);

    // Decoded like any UDP packet (one exporter session): the record logstash's spec asserts.
    const decoder = new DecodeService();
    decoder.decode(p1);
    const out = decoder.decode(p2);
    assert.equal(out.errorCount, 0);
    const expected = (JSON.parse(readFileSync(resolve(corpora, 'expected.json'), 'utf8')) as {
      captures: Record<string, { records: { _index: number; sourceIPv4Address: string; destinationIPv4Address: string; octetDeltaCount: number; packetDeltaCount: number; sourceTransportPort: number; destinationTransportPort: number; protocolIdentifier: number; flowStartMilliseconds: string }[] }>;
    }).captures['logstash-codec-netflow/ipfix_test_openbsd_pflow_data.dat']?.records[0];
    assert.ok(expected !== undefined);
    const r = out.records[expected._index];
    assert.ok(r !== undefined, `record #${expected._index} decoded`);
    assert.equal(r.transport, 'dtls');
    assert.equal(r.exporterIdentity, 'exporter1.test');
    assert.equal(r.srcAddr, parseIpv4(expected.sourceIPv4Address));
    assert.equal(r.dstAddr, parseIpv4(expected.destinationIPv4Address));
    assert.equal(Number(r.octets), expected.octetDeltaCount);
    assert.equal(Number(r.packets), expected.packetDeltaCount);
    assert.equal(r.srcPort, expected.sourceTransportPort);
    assert.equal(r.dstPort, expected.destinationTransportPort);
    assert.equal(r.protocol, expected.protocolIdentifier);
    assert.equal(r.startMs, Date.parse(expected.flowStartMilliseconds));

    await listener.close();
    assert.deepEqual(sink.ended, [p1.sessionKey], 'stopping ends the transport session');
  });

  const rejections: { name: string; reason: AuthFailureReason; args: () => string[] }[] = [
    { name: 'no client certificate', reason: 'no_certificate', args: () => ['-dtls1_2'] },
    { name: 'certificate from another CA', reason: 'unknown_ca', args: () => ['-dtls1_2', '-cert', pki.exporters.otherCa.certFile, '-key', pki.exporters.otherCa.keyFile] },
    { name: 'expired certificate', reason: 'expired', args: () => ['-dtls1_2', '-cert', pki.exporters.expired.certFile, '-key', pki.exporters.expired.keyFile] },
    { name: 'revoked certificate (CRL)', reason: 'revoked', args: () => ['-dtls1_2', '-cert', pki.exporters.revoked.certFile, '-key', pki.exporters.revoked.keyFile] },
    { name: 'valid chain, name not on the allowlist', reason: 'name_not_allowed', args: () => ['-dtls1_2', '-cert', pki.exporters.wrongName.certFile, '-key', pki.exporters.wrongName.keyFile] },
    { name: 'allowed name from a source outside its bound prefixes', reason: 'source_not_bound', args: () => ['-dtls1_2', '-cert', pki.exporters.valid2.certFile, '-key', pki.exporters.valid2.keyFile] },
    { name: 'DTLS 1.0 client', reason: 'protocol_version', args: () => ['-dtls1', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile] },
    // Weak suites are never negotiated (offered at SECLEVEL 0 so that the refusal is the listener's).
    { name: 'DTLS 1.2 client offering only NULL ciphers', reason: 'handshake_failed', args: () => ['-dtls1_2', '-cipher', 'eNULL:@SECLEVEL=0', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile] },
    { name: 'DTLS 1.2 client offering only anonymous suites', reason: 'handshake_failed', args: () => ['-dtls1_2', '-cipher', 'aNULL:@SECLEVEL=0', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile] },
    { name: 'DTLS 1.2 client offering only ECDHE CBC suites with a SHA-1 MAC', reason: 'handshake_failed', args: () => ['-dtls1_2', '-cipher', 'ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA:@SECLEVEL=0', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile] },
  ];
  for (const r of rejections) {
    test(`rejected and counted: ${r.name} → ${r.reason}`, async () => {
      const { listener, sink, port, lines } = await startListener();
      const c = sClient(port, r.args());
      try {
        await until(() => listener.stats().rejected[r.reason] === 1, `rejection counted as ${r.reason}`, 10_000);
        c.stdin?.write(TPL);
        await new Promise((res) => setTimeout(res, 100));
      } finally {
        await stopChild(c);
      }
      const stats = listener.stats();
      const others = Object.entries(stats.rejected).filter(([k, v]) => k !== r.reason && v !== 0);
      assert.deepEqual(others, [], 'no other reason counted');
      assert.equal(sink.packets.length, 0, 'nothing reaches the sink');
      assert.equal(stats.counters.handshakesCompleted, 0);
      assert.ok(lines.some((l) => l.event === 'dtls_auth_failed' && l.reason === r.reason && l.source === '127.0.0.1'), 'logged with source and reason');
      await listener.close();
      assert.equal(listener.stats().sessionsOpen + listener.stats().sessionsHandshaking, 0);
    });
  }

  test('client-initiated renegotiation (s_client "R") is refused: the client aborts and nothing sent after it is delivered', async () => {
    const { listener, sink, port } = await startListener();
    const c = sClient(port, ['-no_ign_eof', '-dtls1_2', '-cert', pki.exporters.valid.certFile, '-key', pki.exporters.valid.keyFile, '-CAfile', pki.caFile]);
    let stderr = '';
    c.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    c.stdin?.on('error', () => {
      // s_client may be gone by the time the last write arrives (that is the point).
    });
    const exited = new Promise<number | null>((r) => c.once('close', (code) => r(code)));
    try {
      await until(() => listener.stats().sessionsActive === 1, 'the s_client association', 10_000);
      c.stdin?.write(TPL);
      await until(() => sink.packets.length === 1, 'the template message');
      c.stdin?.write('R\n');
      await until(() => stderr.includes('RENEGOTIATING'), 's_client started a renegotiation');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 1000))]);
      if (c.exitCode === null) c.stdin?.write(DATA);
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
      assert.notEqual(c.exitCode, 0, stderr);
      assert.match(stderr, /no renegotiation/i);
      assert.deepEqual(sink.packets.map((p) => Buffer.from(p.payload)), [TPL], 'only the message sent before the renegotiation attempt');
    } finally {
      await stopChild(c);
      await listener.close();
    }
  });
});

describe('DTLS listener with socat', { skip: skipSocat }, () => {
  test('socat OPENSSL-DTLS-CLIENT with a valid certificate delivers IPFIX messages with the identity', async () => {
    const { listener, sink, port } = await startListener();
    const e = pki.exporters.valid;
    // socat turns each read of its stdin pipe into one DTLS record; one message per write,
    // each written only after the previous one arrived, keeps one IPFIX message per record.
    const c = spawn('socat', ['-b', '65535', 'STDIN', `OPENSSL-DTLS-CLIENT:127.0.0.1:${port},cert=${e.certFile},key=${e.keyFile},cafile=${pki.caFile},verify=1`], { stdio: ['pipe', 'ignore', 'pipe'] });
    try {
      c.stdin.write(TPL);
      await until(() => sink.packets.length === 1, 'the template message over socat', 10_000);
      c.stdin.write(DATA);
      await until(() => sink.packets.length === 2, 'the data message over socat');
    } finally {
      await stopChild(c);
    }
    assert.deepEqual(sink.packets.map((p) => Buffer.from(p.payload)), [TPL, DATA]);
    assert.ok(sink.packets.every((p) => p.identity === 'exporter1.test' && p.transport === 'dtls'));
    await listener.close();
  });
});

describe('DTLS listener with the addon client', () => {
  test('messages in order, close_notify ends the transport session, observation domain binding enforced', async () => {
    const { listener, sink, port, lines } = await startListener();
    try {
      const client = await DtlsTestClient.connect({ host: '127.0.0.1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile });
      client.send(TPL);
      client.send(DATA);
      const foreign = Buffer.from(DATA);
      foreign.writeUInt32BE((PFLOW_DOMAIN + 1) >>> 0, 12);
      client.send(foreign);
      await until(() => sink.packets.length === 2 && listener.stats().messagesDomainRejected === 1, 'two messages and one domain rejection');
      assert.deepEqual(sink.packets.map((p) => Buffer.from(p.payload)), [TPL, DATA]);
      assert.equal(listener.stats().rejected.domain_not_bound, 1);
      assert.ok(lines.some((l) => l.event === 'dtls_domain_not_bound' && l.observationDomainId === PFLOW_DOMAIN + 1));
      await client.close();
      await until(() => sink.ended.length === 1, 'endSession after close_notify');
      assert.equal(sink.ended[0], sink.packets[0]?.sessionKey);
      assert.equal(listener.stats().sessionsActive, 0);
      assert.equal(listener.stats().counters.sessionsClosed, 1);
    } finally {
      await listener.close();
    }
  });

  test('each association gets its own session key; an exporter restarting on the same port replaces its stale association, even at its per-source limit', async () => {
    const { listener, sink, port } = await startListener({ maxSessionsPerSource: 1 });
    try {
      const opts = { host: '127.0.0.1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile };
      const first = await DtlsTestClient.connect(opts);
      const localPort = first.localPort;
      first.send(TPL);
      await until(() => sink.packets.length === 1, 'first message');
      first.destroy(); // crash: no close_notify, the server still holds the association
      assert.equal(listener.stats().sessionsActive, 1);
      const second = await DtlsTestClient.connect({ ...opts, localPort });
      second.send(DATA);
      await until(() => sink.packets.length === 2, 'message on the new association');
      await until(() => sink.ended.length === 1, 'old association ended');
      const [a, b] = sink.packets;
      assert.ok(a !== undefined && b !== undefined);
      assert.notEqual(a.sessionKey, b.sessionKey, 'a new association is a new transport session');
      assert.equal(sink.ended[0], a.sessionKey);
      assert.equal(a.exporterPort, b.exporterPort);
      assert.equal(listener.stats().counters.sessionsReplaced, 1);
      assert.equal(listener.stats().sessionsActive, 1);
      await second.close();
    } finally {
      await listener.close();
    }
  });

  test('small MTUs: fragmented ClientHello and fragmented server flights still complete', async () => {
    const { listener, sink, port } = await startListener({ mtu: 300 });
    try {
      const client = await DtlsTestClient.connect({ host: '127.0.0.1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile, mtu: 256, ciphers: 'ALL:@SECLEVEL=0', timeoutMs: 5_000 });
      client.send(TPL);
      await until(() => sink.packets.length === 1, 'message after a fragmented handshake');
      assert.equal(listener.stats().counters.handshakesCompleted, 1);
      await client.close();
    } finally {
      await listener.close();
    }
  });

  test('IPv6: a listener on ::1 serves an exporter over IPv6', async () => {
    const { listener, sink, port } = await startListener({ address: '::1' });
    try {
      const client = await DtlsTestClient.connect({ host: '::1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile });
      client.send(TPL);
      await until(() => sink.packets.length === 1, 'message over IPv6');
      const p = sink.packets[0];
      assert.ok(p !== undefined);
      assert.equal(p.exporter, '::1');
      assert.match(p.sessionKey, /^dtls\|::1\|/);
      await client.close();
    } finally {
      await listener.close();
    }
  });

  test('idle associations are closed (counted) and their transport session ended', async () => {
    const { listener, sink, port } = await startListener({ idleTimeoutMs: 300 });
    try {
      const client = await DtlsTestClient.connect({ host: '127.0.0.1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile });
      client.send(TPL);
      await until(() => sink.packets.length === 1, 'message');
      await until(() => sink.ended.length === 1, 'idle close', 5_000);
      assert.equal(listener.stats().counters.idleTimeouts, 1);
      await until(() => client.peerClosed, 'close_notify to the client');
      client.destroy();
    } finally {
      await listener.close();
    }
  });

  test('reload: new CRL rejects new handshakes of a revoked exporter, the established association keeps working', async () => {
    const { listener, sink, port } = await startListener();
    try {
      const opts = { host: '127.0.0.1', port, certFile: reloadCert.certFile, keyFile: reloadCert.keyFile, caFile: pki.caFile };
      const live = await DtlsTestClient.connect(opts);
      await pki.revoke(reloadCert);
      listener.reload(ExporterTrust.load(trustSettings(), 'listeners.dtls'));
      await assert.rejects(DtlsTestClient.connect({ ...opts, timeoutMs: 3_000 }), DtlsHandshakeError);
      assert.equal(listener.stats().rejected.revoked, 1);
      live.send(TPL);
      await until(() => sink.packets.length === 1, 'message on the pre-reload association');
      assert.equal(sink.packets[0]?.identity, 'reload.test');
      await live.close();
    } finally {
      await listener.close();
    }
  });

  const limits: { name: string; opts: () => Partial<DtlsListenerOptions>; counter: 'limitSessionsPerSource' | 'limitHandshakeRate' }[] = [
    { name: 'sessions per source (1)', opts: () => ({ maxSessionsPerSource: 1 }), counter: 'limitSessionsPerSource' },
    // Frozen clock: the token bucket never refills, so a retransmitted hello cannot sneak in.
    { name: 'handshakes per second (1)', opts: () => { const frozen = Date.now(); return { handshakesPerSecond: 1, now: () => frozen }; }, counter: 'limitHandshakeRate' },
  ];
  for (const l of limits) {
    test(`limit ${l.name}: a cookie-verified hello beyond it creates no session, is counted, and the client never completes`, async () => {
      const { listener, port } = await startListener(l.opts());
      try {
        const opts = { host: '127.0.0.1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile };
        const first = await DtlsTestClient.connect(opts);
        await assert.rejects(DtlsTestClient.connect({ ...opts, timeoutMs: 1_500 }), DtlsHandshakeError);
        assert.ok(listener.stats().counters[l.counter] >= 1);
        assert.equal(listener.stats().sessionsActive, 1);
        await first.close();
      } finally {
        await listener.close();
      }
    });
  }

  test('a peer that passes the cookie check and goes silent is dropped at the handshake timeout (counted)', async () => {
    const { listener, port, lines } = await startListener({ handshakeTimeoutMs: 200 });
    const addon = loadDtlsAddon();
    const ctx = new addon.Context({ server: false });
    const client = new addon.Session(ctx, 'x', 1400);
    const s = await bindUdp('127.0.0.1');
    try {
      const hvr = new Promise<Buffer>((res) => s.once('message', (m) => res(m)));
      for (const d of client.advance().out) await sendUdp(s, d, port);
      for (const d of client.feed(await hvr).out) await sendUdp(s, d, port);
      await until(() => listener.stats().sessionsHandshaking === 1, 'the half-open association');
      await until(() => listener.stats().rejected.handshake_timeout === 1, 'handshake timeout', 5_000);
      assert.equal(listener.stats().sessionsHandshaking, 0);
      assert.equal(listener.stats().counters.handshakeTimeouts, 1);
      assert.ok(lines.some((l) => l.event === 'dtls_auth_failed' && l.reason === 'handshake_timeout'));
    } finally {
      client.destroy();
      ctx.destroy();
      s.close();
      await listener.close();
    }
  });

  test('a port already in use is an IngestError ERR_INGEST_BIND naming the setting', async () => {
    const taken = await bindUdp('127.0.0.1');
    const sink = new SessionSink();
    const listener = new DtlsListener({ address: '127.0.0.1', port: taken.address().port, trust: ExporterTrust.load(trustSettings(), 'listeners.dtls'), sink, logger: testLogger().logger });
    try {
      await assert.rejects(listener.start(), (err: unknown) => err instanceof IngestError && err.code === 'ERR_INGEST_BIND' && err.message.includes('listeners.dtls.port'));
    } finally {
      taken.close();
      await listener.close();
    }
  });
});

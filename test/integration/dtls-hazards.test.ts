import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { DtlsServer, type DtlsServerOptions, type DtlsSession } from '../../src/ingest/dtls/dtls-server.js';
import { loadDtlsAddon } from '../../src/ingest/dtls/native-binding.js';
import { ExporterTrust } from '../../src/ingest/trust/exporter-trust.js';
import { clientHelloDatagram, DtlsHandshakeError, DtlsTestClient } from '../support/dtls-client.js';
import { prng } from '../support/spool-fixtures.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { bindUdp, sendUdp, until } from '../support/udp-harness.js';

/*
 * The hazards issue 6 lists, against real sockets on loopback. Where a test needs a datagram
 * with a forged source (address:port of a live exporter), it is injected at the server's
 * demultiplexer entry point (DtlsServer.handleDatagram) with that source: that is exactly
 * what the kernel would hand the socket for a spoofed datagram, and spoofing itself needs
 * raw sockets. Many distinct sources are real sockets on 127.0.0.0/8 addresses.
 */

let pki: TestPki;
let trust: ExporterTrust;
before(async () => {
  pki = await createTestPki();
  trust = ExporterTrust.load({
    caFile: pki.caFile, crlFiles: pki.crlFiles, certFile: pki.collector.certFile, keyFile: pki.collector.keyFile,
    exporters: [{ name: 'exporter1.test' }],
  }, 'listeners.dtls');
});
after(async () => {
  await pki.cleanup();
});

async function startServer(opts: Partial<DtlsServerOptions> = {}): Promise<{ server: DtlsServer; port: number; sessions: DtlsSession[]; messages: Buffer[] }> {
  const m = trust.material;
  const server = new DtlsServer({
    cert: m.certPem, key: m.keyPem, ca: m.caPem, crl: m.crlPems,
    authorize: (s) => trust.checkExporter(s.getPeerX509Certificate(), s.remoteAddress),
    ...opts,
  });
  const sessions: DtlsSession[] = [];
  const messages: Buffer[] = [];
  server.on('session', (s) => {
    sessions.push(s);
    s.on('message', (m2) => messages.push(m2));
  });
  const { port } = await server.listen(0, '127.0.0.1');
  return { server, port, sessions, messages };
}

function clientOpts(port: number): { host: string; port: number; certFile: string; keyFile: string; caFile: string } {
  return { host: '127.0.0.1', port, certFile: pki.exporters.valid.certFile, keyFile: pki.exporters.valid.keyFile, caFile: pki.caFile };
}

async function rssAfterGc(): Promise<number> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await new Promise((r) => setTimeout(r, 20));
  }
  return process.memoryUsage().rss;
}

const MB = 1024 * 1024;

describe('stateless cookie exchange', () => {
  test('5,000 ClientHellos from 5,000 source address:ports get HelloVerifyRequests and create no per-client state; memory stays flat', async () => {
    const { server, port } = await startServer({ maxHandshakesPerSecond: 1_000_000 });
    const hello = clientHelloDatagram();
    let sent = 0;
    const flood = async (round: number): Promise<void> => {
      const BATCH = 250;
      for (let b = 0; b < 5_000 / BATCH; b++) {
        // 20 source addresses × 250 ports per round, all distinct sources.
        const address = `127.0.${round + 1}.${b + 1}`;
        const socks: Socket[] = await Promise.all(Array.from({ length: BATCH }, () => bindUdp(address)));
        await Promise.all(socks.map((s) => sendUdp(s, hello, port)));
        sent += BATCH;
        await until(() => server.stats().counters.datagrams === sent, 'the batch to be processed');
        for (const s of socks) s.close();
      }
    };
    try {
      await flood(0);
      const rss1 = await rssAfterGc();
      await flood(1);
      const rss2 = await rssAfterGc();
      const s = server.stats();
      assert.equal(s.counters.datagrams, 10_000);
      assert.equal(s.counters.helloVerifyRequests, 10_000, 'every ClientHello answered statelessly');
      assert.equal(s.counters.cookiesAccepted, 0);
      assert.equal(server.sessionTotal(), 0, 'no per-client state');
      assert.ok(rss2 - rss1 < 16 * MB, `RSS flat across a second flood of 5,000 (+${((rss2 - rss1) / MB).toFixed(1)} MB)`);
    } finally {
      await server.close();
    }
  });

  test('a valid cookie replayed from another port earns only a new HelloVerifyRequest (RFC 6347 §4.2.1); from its own port it starts exactly one handshake', async () => {
    const { server, port } = await startServer();
    const addon = loadDtlsAddon();
    const ctx = new addon.Context({ server: false });
    const client = new addon.Session(ctx, 'x', 1400);
    const a = await bindUdp('127.0.0.1');
    const b = await bindUdp('127.0.0.1');
    try {
      const hvr = new Promise<Buffer>((resolve) => a.once('message', (m) => resolve(m)));
      for (const d of client.advance().out) await sendUdp(a, d, port);
      const withCookie = client.feed(await hvr).out;
      assert.ok(withCookie.length > 0, 'client answered the HelloVerifyRequest');
      for (const d of withCookie) await sendUdp(b, d, port);
      await until(() => server.stats().counters.helloVerifyRequests === 2, 'replayed cookie answered with a fresh HelloVerifyRequest');
      assert.equal(server.stats().counters.cookiesAccepted, 0);
      assert.equal(server.sessionTotal(), 0);
      const flight = new Promise<Buffer>((resolve) => a.once('message', (m) => resolve(m)));
      for (const d of withCookie) await sendUdp(a, d, port);
      await flight;
      assert.equal(server.stats().counters.cookiesAccepted, 1);
      assert.equal(server.stats().sessionsHandshaking, 1);
      for (const d of withCookie) await sendUdp(a, d, port); // retransmission: same pending slot
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(server.sessionTotal(), 1);
    } finally {
      client.destroy();
      ctx.destroy();
      a.close();
      b.close();
      await server.close();
    }
    assert.equal(server.sessionTotal(), 0);
  });
});

describe('exporter restarts', () => {
  test('a restart in the middle of a handshake supersedes the stale attempt at once (no wait for its timeout)', async () => {
    const { server, port, sessions } = await startServer({ handshakeTimeoutMs: 60_000, maxSessionsPerSource: 1 });
    const addon = loadDtlsAddon();
    const ctx = new addon.Context({ server: false });
    const stale = new addon.Session(ctx, 'x', 1400);
    const s = await bindUdp('127.0.0.1');
    const localPort = s.address().port;
    try {
      const hvr = new Promise<Buffer>((resolve) => s.once('message', (m) => resolve(m)));
      for (const d of stale.advance().out) await sendUdp(s, d, port);
      for (const d of stale.feed(await hvr).out) await sendUdp(s, d, port);
      await until(() => server.stats().sessionsHandshaking === 1, 'the stale half-open handshake');
      s.close(); // the exporter "crashes" mid-handshake and comes back on the same port
      const t0 = Date.now();
      const client = await DtlsTestClient.connect({ ...clientOpts(port), localPort, timeoutMs: 5_000 });
      assert.ok(Date.now() - t0 < 3_000, 'completed without waiting for the stale handshake to time out');
      await until(() => sessions.length === 1, 'the new association');
      assert.equal(server.stats().counters.handshakesSuperseded, 1);
      assert.equal(server.sessionTotal(), 1);
      assert.equal(server.stats().sessionsHandshaking, 0);
      await client.close();
    } finally {
      stale.destroy();
      ctx.destroy();
      await server.close();
    }
  });
});

describe('forged datagrams against a live association', () => {
  test('forged ClientHellos, alerts and malformed records neither end nor stall the live association', async () => {
    const { server, port, messages, sessions } = await startServer();
    const client = await DtlsTestClient.connect(clientOpts(port));
    const src = { address: '127.0.0.1', port: client.localPort };
    try {
      await until(() => sessions.length === 1, 'session');
      const hello = clientHelloDatagram();
      const rec = (type: number, epoch: number, seq: number, body: Buffer): Buffer => {
        const h = Buffer.alloc(13);
        h.writeUInt8(type, 0);
        h.writeUInt16BE(0xfefd, 1);
        h.writeUInt16BE(epoch, 3);
        h.writeUIntBE(seq, 5, 6);
        h.writeUInt16BE(body.length, 11);
        return Buffer.concat([h, body]);
      };
      const forged: Buffer[] = [
        hello, // fresh ClientHello from the live peer's address:port
        rec(22, 0, 1, Buffer.from(hello.subarray(13))), // same hello, other sequence number
        rec(21, 0, 9, Buffer.from([2, 40])), // plaintext fatal handshake_failure alert
        rec(21, 1, 9, Buffer.alloc(26, 0x41)), // "protected" alert that cannot authenticate
        rec(23, 1, 2, Buffer.alloc(64, 0x42)), // application data with a bad tag
        rec(23, 1, 0xffffffffffff, Buffer.alloc(40)), // sequence number at the top of the window
        rec(20, 1, 3, Buffer.alloc(24)), // protected CCS
        rec(22, 0, 0, Buffer.alloc(4)), // the 17-byte datagram
        rec(22, 1, 1, Buffer.alloc(4)), // short protected handshake record
        // Epoch-1 records shorter than the cipher's nonce + tag: OpenSSL 3.0 fails the whole
        // association on these (see the next test), so they must never reach it.
        ...[20, 21, 22, 23].flatMap((type) => [16, 20, 23, 25].map((n) => rec(type, 1, 100 + n, Buffer.alloc(n, 0x5a)))),
      ];
      for (let round = 0; round < 20; round++) {
        for (const d of forged) server.handleDatagram(d, src);
        client.send(Buffer.from(`after-forgery-${round}`));
      }
      await until(() => messages.length === 20, 'all 20 records delivered after forgeries');
      assert.deepEqual(messages.map((m) => m.toString()), Array.from({ length: 20 }, (_, i) => `after-forgery-${i}`));
      assert.equal(sessions.length, 1, 'no second association');
      assert.equal(sessions[0]?.isOpen(), true);
      const st = server.stats();
      assert.ok(st.counters.helloVerifyRequests >= 20, 'forged hellos only earned stateless HelloVerifyRequests');
      assert.ok(st.counters.datagramsMalformed >= 40, 'impossible records dropped before OpenSSL');
      assert.equal(st.counters.sessionErrors, 0);
      assert.equal(server.sessionTotal(), 1);
    } finally {
      await client.close();
      await server.close();
    }
  });

  test('forged datagrams do not count as activity: a silent association still idles out', async () => {
    const { server, port, sessions } = await startServer({ idleTimeoutMs: 400, sweepIntervalMs: 50 });
    const client = await DtlsTestClient.connect(clientOpts(port));
    const src = { address: '127.0.0.1', port: client.localPort };
    let closedBy = null as string | null;
    try {
      await until(() => sessions.length === 1, 'session');
      sessions[0]?.on('close', (reason) => (closedBy = reason));
      const forged = Buffer.concat([Buffer.from('17fefd00010000000000ff0040', 'hex'), Buffer.alloc(64, 0x33)]);
      const deadline = Date.now() + 1_500;
      while (closedBy === null && Date.now() < deadline) {
        server.handleDatagram(forged, src);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(closedBy, 'idle_timeout');
    } finally {
      client.destroy();
      await server.close();
    }
  });

  test('why the record check exists: OpenSSL 3.0 itself fails an established association on one short protected record', async () => {
    const { server, port, sessions } = await startServer();
    const client = await DtlsTestClient.connect(clientOpts(port));
    try {
      await until(() => sessions.length === 1, 'session');
      const native = sessions[0]?.native;
      assert.ok(native !== undefined && native !== null);
      const forged = Buffer.from('17fefd0001000000000064000400000000', 'hex'); // 17 bytes: epoch 1, 4-byte body
      assert.equal(forged.length, 17);
      assert.equal(native.feed(forged).state, 3, 'raw OpenSSL: association failed');
    } finally {
      client.destroy();
      await server.close();
    }
  });

  test('fuzzed datagrams into an established and a half-open association: no crash, established survives, nothing leaks', async () => {
    const { server, port, messages } = await startServer({ handshakeTimeoutMs: 60_000 });
    const client = await DtlsTestClient.connect(clientOpts(port));
    // Half-open: a peer that passed the cookie check and then went silent.
    const addon = loadDtlsAddon();
    const ctx = new addon.Context({ server: false });
    const half = new addon.Session(ctx, 'x', 1400);
    const hs = await bindUdp('127.0.0.1');
    const hvr = new Promise<Buffer>((resolve) => hs.once('message', (m) => resolve(m)));
    for (const d of half.advance().out) await sendUdp(hs, d, port);
    for (const d of half.feed(await hvr).out) await sendUdp(hs, d, port);
    await until(() => server.stats().sessionsHandshaking === 1, 'half-open association');
    const live = { address: '127.0.0.1', port: client.localPort };
    const halfSrc = { address: '127.0.0.1', port: hs.address().port };
    const record = fc.record({
      type: fc.integer({ min: 20, max: 23 }),
      version: fc.constantFrom(0xfefd, 0xfeff),
      epoch: fc.integer({ min: 0, max: 1 }),
      seq: fc.integer({ min: 0, max: 2 ** 32 }),
      body: fc.uint8Array({ minLength: 1, maxLength: 300 }),
    }).map((r) => {
      const h = Buffer.alloc(13);
      h.writeUInt8(r.type, 0);
      h.writeUInt16BE(r.version, 1);
      h.writeUInt16BE(r.epoch, 3);
      h.writeUIntBE(r.seq, 5, 6);
      h.writeUInt16BE(r.body.length, 11);
      return Buffer.concat([h, r.body]);
    });
    const datagram = fc.oneof(
      fc.uint8Array({ maxLength: 400 }).map((b) => Buffer.from(b)),
      fc.array(record, { minLength: 1, maxLength: 4 }).map((rs) => Buffer.concat(rs)),
    );
    try {
      const samples = fc.sample(datagram, { numRuns: 4_000, seed: 0x5ea1f10 });
      const rss0 = await rssAfterGc();
      for (const [i, d] of samples.entries()) {
        server.handleDatagram(d, i % 2 === 0 ? live : halfSrc);
        if (i % 400 === 0) client.send(Buffer.from(`live-${i / 400}`));
      }
      await until(() => messages.length === 10, 'the established association still delivers');
      const rss1 = await rssAfterGc();
      assert.ok(rss1 - rss0 < 16 * MB, `no growth from fuzzing (+${((rss1 - rss0) / MB).toFixed(1)} MB)`);
      assert.equal(server.stats().counters.sessionErrors, 0, 'the established association never failed');
      assert.ok(server.sessionTotal() <= 2);
    } finally {
      half.destroy();
      ctx.destroy();
      hs.close();
      await client.close();
      await server.close();
    }
    assert.equal(server.sessionTotal(), 0);
    assert.equal(server.stats().sessionsHandshaking, 0);
  });
});

describe('lossy network and churn', () => {
  test('handshakes through a relay that drops 25% and reorders datagrams complete or fail cleanly', async (t) => {
    const { server, port, sessions } = await startServer({ handshakeTimeoutMs: 8_000, idleTimeoutMs: 2_000, sweepIntervalMs: 200 });
    const rand = prng(42);
    const relays: Socket[] = [];
    /** One relay per client: client ↔ relay socket ↔ server, dropping and swapping datagrams. */
    const relay = async (): Promise<number> => {
      const s = createSocket('udp4');
      relays.push(s);
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      let clientPort = 0;
      let held: { d: Buffer; to: number } | null = null;
      s.on('message', (d, rinfo) => {
        const toServer = rinfo.port !== port;
        if (toServer) clientPort = rinfo.port;
        const to = toServer ? port : clientPort;
        if (rand() < 0.25) return; // lost
        if (held === null && rand() < 0.2) {
          held = { d, to }; // overtaken by the next datagram
          return;
        }
        s.send(d, to, '127.0.0.1');
        if (held !== null) {
          s.send(held.d, held.to, '127.0.0.1');
          held = null;
        }
      });
      return s.address().port;
    };
    const N = 8;
    const outcomes = await Promise.all(Array.from({ length: N }, async () => {
      const viaPort = await relay();
      const t0 = Date.now();
      try {
        const c = await DtlsTestClient.connect({ ...clientOpts(port), viaPort, timeoutMs: 12_000 });
        return { ok: true as const, ms: Date.now() - t0, c };
      } catch (err) {
        assert.ok(err instanceof DtlsHandshakeError, String(err));
        return { ok: false as const, ms: Date.now() - t0, c: null };
      }
    }));
    try {
      const done = outcomes.filter((o) => o.ok).length;
      t.diagnostic(`${done}/${N} handshakes completed through the lossy relay`);
      assert.ok(done >= 1, `at least one handshake completed under loss (${done}/${N})`);
      for (const o of outcomes) assert.ok(o.ms <= 13_000, 'every handshake settled within its deadline');
      // Failed handshakes leave nothing behind once the server's handshake timeout passes.
      await until(() => server.stats().sessionsHandshaking === 0, 'no half-open association left', 10_000);
      // The server may finish a handshake whose last flight the relay then kept dropping until
      // the client gave up (inherent to DTLS 1.2): such an association is idle and times out.
      assert.ok(sessions.length >= done, `server completed ${sessions.length}, clients ${done}`);
      for (const o of outcomes) o.c?.destroy();
      await until(() => server.sessionTotal() === 0, 'every association gone after the idle timeout', 10_000);
    } finally {
      for (const o of outcomes) o.c?.destroy();
      for (const r of relays) r.close();
      await server.close();
    }
  });

  test('many short associations: all state freed, RSS bounded', async () => {
    const { server, port, sessions } = await startServer({ maxHandshakesPerSecond: 100_000 });
    let closed = 0;
    server.on('session', (s) => s.on('close', () => closed++));
    const TPL = Buffer.alloc(100, 1);
    const cycle = async (): Promise<void> => {
      const c = await DtlsTestClient.connect(clientOpts(port));
      c.send(TPL);
      await c.close();
    };
    try {
      for (let i = 0; i < 30; i++) await cycle();
      await until(() => closed === 30, 'warm-up sessions closed');
      const rss0 = await rssAfterGc();
      for (let i = 0; i < 300; i++) await cycle();
      await until(() => closed === 330, 'all sessions closed');
      const rss1 = await rssAfterGc();
      assert.equal(sessions.length, 330);
      assert.equal(server.sessionTotal(), 0);
      assert.ok(rss1 - rss0 < 24 * MB, `RSS bounded over 300 sessions (+${((rss1 - rss0) / MB).toFixed(1)} MB)`);
    } finally {
      await server.close();
    }
  });
});

describe('addon load-time check', () => {
  test('the addon reports the OpenSSL it runs on, which is the node binary\'s', () => {
    const addon = loadDtlsAddon();
    assert.ok(addon.opensslVersion.includes(process.versions.openssl), `${addon.opensslVersion} vs node ${process.versions.openssl}`);
    assert.ok(readFileSync('/proc/self/maps', 'utf8').includes('sealflow_dtls.node'));
  });
});

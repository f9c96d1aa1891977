import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { PrefixSet } from '../../src/flow/cidr.js';
import { IngestError } from '../../src/flow/errors.js';
import { readFileSync, readdirSync } from 'node:fs';
import { loadUdpReceiverAddon } from '../../src/ingest/udp/native-receiver.js';
import { readKernelUdpDrops, UdpListener, type UdpListenerOptions } from '../../src/ingest/udp/udp-listener.js';
import { bindUdp, CollectingSink, sendUdp as send, testLogger, until, type LogLine } from '../support/udp-harness.js';

/*
 * Real sockets on loopback. Linux routes all of 127.0.0.0/8 to lo, so a sender bound to
 * 127.0.0.2 is a second, distinct source address for the allowlist.
 * The listener tests run once per receiver: node:dgram and the native recvmmsg thread (where
 * the addon is built, i.e. Linux); native-only behaviour is tested at the end.
 */

const addon = loadUdpReceiverAddon();
const RECEIVERS = ['node', 'native'] as const;
type Receiver = (typeof RECEIVERS)[number];
const skipNative = addon.addon === null ? `native receiver unavailable: ${addon.reason}` : false;

/** CAP_NET_ADMIN (bit 12 of CapEff): SO_RCVBUFFORCE then lifts the net.core.rmem_max cap. */
function hasNetAdmin(): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m !== null && (BigInt(`0x${m[1] ?? '0'}`) & (1n << 12n)) !== 0n;
}

/** Threads of this process with the receiver thread's name. */
function receiverThreads(): number {
  const name = addon.addon?.threadName ?? 'sealflow-udp';
  let n = 0;
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim() === name) n++;
    } catch {
      // the thread exited between readdir and read
    }
  }
  return n;
}

const sockets: Socket[] = [];
after(() => {
  for (const s of sockets) s.close();
});

async function sender(address: string, type: 'udp4' | 'udp6' = 'udp4'): Promise<Socket> {
  const s = await bindUdp(address, type);
  sockets.push(s);
  return s;
}

async function startListener(opts: Partial<UdpListenerOptions> & { allow: string[]; receiver: Receiver }): Promise<{ listener: UdpListener; sink: CollectingSink; port: number; lines: LogLine[] }> {
  const sink = new CollectingSink();
  const { logger, lines } = testLogger();
  const listener = new UdpListener({
    endpoints: [{ address: '127.0.0.1', port: 0, name: 'test' }],
    allowlist: PrefixSet.parse(opts.allow),
    sink,
    logger,
    receiveBufferBytes: 1024 * 1024,
    ...opts,
  });
  await listener.start();
  const port = listener.addresses()[0]?.port ?? 0;
  assert.ok(port > 0);
  assert.equal(lines.find((l) => l.msg === 'UDP listener ready')?.receiver, opts.receiver, 'the listener uses the requested receiver');
  return { listener, sink, port, lines };
}

for (const receiver of RECEIVERS) {
  describe(`UDP exporter allowlist (${receiver} receiver)`, { skip: receiver === 'native' && skipNative }, () => {
    test('non-allowlisted source is dropped, counted per source and logged rate-limited; allowlisted passes', async () => {
      let clock = 1_700_000_000_000;
      const { listener, sink, port, lines } = await startListener({
        receiver,
        allow: ['127.0.0.1'],
        now: () => clock,
        rejectLog: { windowMs: 60_000, burst: 3, maxKeys: 100, now: () => clock },
      });
      try {
        const good = await sender('127.0.0.1');
        const bad = await sender('127.0.0.2');
        const goodPayloads = Array.from({ length: 5 }, () => randomBytes(40 + Math.floor(Math.random() * 100)));
        for (const p of goodPayloads) await send(good, p, port, '127.0.0.1');
        for (let i = 0; i < 10; i++) await send(bad, randomBytes(50), port, '127.0.0.1');
        await until(() => sink.packets.length === 5 && listener.stats().rejectedTotal === 10, '5 accepted and 10 rejected datagrams');

        const goodPort = good.address().port;
        for (const [i, p] of sink.packets.entries()) {
          assert.deepEqual(Buffer.from(p.payload), goodPayloads[i]);
          assert.equal(p.exporter, '127.0.0.1');
          assert.equal(p.exporterPort, goodPort);
          assert.equal(p.transport, 'udp');
          assert.equal(p.identity, null);
          assert.equal(p.sessionKey, `udp|127.0.0.1|${goodPort}|${port}`);
          assert.equal(p.receivedAtMs, clock);
        }
        const st = listener.stats();
        assert.deepEqual(st.rejectedSources.map((r) => [r.source, r.packets]), [['127.0.0.2', 10]]);
        assert.deepEqual(st.exporters.map((e) => [e.exporter, e.packets, e.bytes]), [['127.0.0.1', 5, goodPayloads.reduce((n, p) => n + p.length, 0)]]);
        assert.equal(st.listeners[0]?.rejected, 10);
        assert.equal(st.listeners[0].packets, 5);

        const rejectLines = () => lines.filter((l) => l.msg.includes('not in the exporter allowlist'));
        assert.equal(rejectLines().length, 3, 'burst of 3 lines, the other 7 suppressed');
        for (const l of rejectLines()) {
          assert.equal(l.source, '127.0.0.2');
          assert.equal(l.port, port);
          assert.equal(l.level, 40);
        }
        // After the window the next line reports how many were suppressed.
        clock += 60_001;
        await send(bad, randomBytes(10), port, '127.0.0.1');
        await until(() => rejectLines().length === 4, 'the post-window log line');
        assert.equal(rejectLines()[3]?.suppressed, 7);
        assert.equal(sink.packets.length, 5, 'rejected datagrams never reach the sink');
      } finally {
        await listener.close();
      }
    });

    test('CIDR prefixes, and reload() changes the decision for known sources', async () => {
      const { listener, sink, port } = await startListener({ receiver, allow: ['127.0.0.0/30'] });
      try {
        const s2 = await sender('127.0.0.2');
        const s5 = await sender('127.0.0.5');
        await send(s2, Buffer.from('a'), port, '127.0.0.1');
        await send(s5, Buffer.from('b'), port, '127.0.0.1');
        await until(() => sink.packets.length === 1 && listener.stats().rejectedTotal === 1, 'one accepted, one rejected');
        assert.equal(sink.packets[0]?.exporter, '127.0.0.2');
        listener.reload(PrefixSet.parse(['127.0.0.5']));
        await send(s2, Buffer.from('c'), port, '127.0.0.1');
        await send(s5, Buffer.from('d'), port, '127.0.0.1');
        await until(() => sink.packets.length === 2 && listener.stats().rejectedTotal === 2, 'reloaded decisions');
        assert.equal(sink.packets[1]?.exporter, '127.0.0.5');
        assert.deepEqual(listener.stats().rejectedSources.map((r) => r.source).sort(), ['127.0.0.2', '127.0.0.5']);
      } finally {
        await listener.close();
      }
    });

    test('an empty allowlist means nobody', async () => {
      const { listener, sink, port, lines } = await startListener({ receiver, allow: [] });
      try {
        assert.ok(lines.some((l) => l.level === 40 && l.msg.includes('allowlist is empty')), 'startup warns about the empty allowlist');
        const s = await sender('127.0.0.1');
        for (let i = 0; i < 3; i++) await send(s, Buffer.from([i]), port, '127.0.0.1');
        await until(() => listener.stats().rejectedTotal === 3, '3 rejections');
        assert.equal(sink.packets.length, 0);
      } finally {
        await listener.close();
      }
    });

    test('IPv6 loopback listener with an IPv6 allowlist', async () => {
      const { listener, sink, port } = await startListener({ receiver, allow: ['::1/128'], endpoints: [{ address: '::1', port: 0 }] });
      try {
        const s = await sender('::1', 'udp6');
        await send(s, Buffer.from('v6'), port, '::1');
        await until(() => sink.packets.length === 1, 'the IPv6 datagram');
        assert.equal(sink.packets[0]?.exporter, '::1');
        assert.equal(sink.packets[0].sessionKey, `udp|::1|${s.address().port}|${port}`);
        listener.reload(PrefixSet.parse(['127.0.0.1']));
        await send(s, Buffer.from('v6'), port, '::1');
        await until(() => listener.stats().rejectedTotal === 1, 'the rejection after reload');
        assert.equal(listener.stats().rejectedSources[0]?.source, '::1');
      } finally {
        await listener.close();
      }
    });

    test('dual-stack IPv6 socket reports IPv4 peers as plain dotted IPv4', async () => {
      // ::ffff:127.0.0.1 keeps the test on loopback while exercising the IPv4-mapped path.
      const { listener, sink, port } = await startListener({ receiver, allow: ['127.0.0.1'], endpoints: [{ address: '::ffff:127.0.0.1', port: 0 }] });
      try {
        const s = await sender('127.0.0.1');
        await send(s, Buffer.from('mapped'), port, '127.0.0.1');
        await until(() => sink.packets.length === 1, 'the mapped datagram');
        assert.equal(sink.packets[0]?.exporter, '127.0.0.1');
      } finally {
        await listener.close();
      }
    });

    test('rejected-source tracking is bounded; the overflow is counted as other', async () => {
      const { listener, port } = await startListener({ receiver, allow: ['127.0.0.1'], maxTrackedSources: 1 });
      try {
        for (const a of ['127.0.0.2', '127.0.0.3', '127.0.0.4']) await send(await sender(a), Buffer.from('x'), port, '127.0.0.1');
        await until(() => listener.stats().rejectedTotal === 3, '3 rejections');
        const st = listener.stats();
        assert.equal(st.rejectedSources.length, 1);
        assert.equal(st.otherRejected, 2);
      } finally {
        await listener.close();
      }
    });
  });

  describe(`UDP listener sockets (${receiver} receiver)`, { skip: receiver === 'native' && skipNative }, () => {
    test('receive buffer: requested size is granted, a capped one is reported with a warning', async () => {
      const small = await startListener({ receiver, allow: ['127.0.0.1'], receiveBufferBytes: 256 * 1024 });
      try {
        const l = small.listener.stats().listeners[0];
        assert.ok((l?.recvBufferGranted ?? 0) >= 256 * 1024, `granted ${l?.recvBufferGranted}`);
        assert.ok(!small.lines.some((x) => x.msg.includes('rmem_max')));
      } finally {
        await small.listener.close();
      }
      const huge = 1024 * 1024 * 1024; // beyond any default net.core.rmem_max
      const big = await startListener({ receiver, allow: ['127.0.0.1'], receiveBufferBytes: huge });
      try {
        const l = big.listener.stats().listeners[0];
        assert.equal(l?.recvBufferRequested, huge);
        const warn = big.lines.find((x) => x.msg.includes('net.core.rmem_max'));
        if (receiver === 'native' && hasNetAdmin()) {
          // SO_RCVBUFFORCE (socket(7)) lifts the cap for a process with CAP_NET_ADMIN.
          assert.ok(l.recvBufferGranted >= huge, `granted ${l.recvBufferGranted}`);
          assert.equal(warn, undefined);
        } else {
          assert.ok(l.recvBufferGranted < huge);
          assert.ok(warn, 'a warning names net.core.rmem_max');
          assert.equal(warn.grantedBytes, l.recvBufferGranted);
        }
      } finally {
        await big.listener.close();
      }
    });

    test('bind conflict: IngestError naming the listener setting; nothing left bound', async () => {
      const holder = await sender('127.0.0.1');
      const taken = holder.address().port;
      const { logger } = testLogger();
      const listener = new UdpListener({
        endpoints: [
          { address: '127.0.0.1', port: 0, setting: 'listeners.udp[0]' },
          { address: '127.0.0.1', port: taken, setting: 'listeners.udp[1]' },
        ],
        allowlist: PrefixSet.parse(['127.0.0.1']),
        sink: new CollectingSink(),
        logger,
        receiver,
      });
      await assert.rejects(listener.start(), (err: unknown) => {
        assert.ok(err instanceof IngestError);
        assert.equal(err.code, 'ERR_INGEST_BIND');
        assert.match(err.message, /listeners\.udp\[1\]/);
        assert.match(err.message, /already in use/);
        assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${taken}`));
        return true;
      });
      const first = listener.stats().listeners[0]?.port ?? 0;
      assert.ok(first > 0, 'the first listener had bound');
      if (process.platform === 'linux') assert.equal(readKernelUdpDrops(first), null, 'the socket bound before the failure was closed');
      await listener.close();
      await listener.close(); // idempotent
    });

    test('oversize datagrams are dropped and counted', async () => {
      const { listener, sink, port } = await startListener({ receiver, allow: ['127.0.0.1'], maxDatagramBytes: 100 });
      try {
        const s = await sender('127.0.0.1');
        await send(s, Buffer.alloc(101), port, '127.0.0.1');
        await send(s, Buffer.alloc(100), port, '127.0.0.1');
        await until(() => sink.packets.length === 1 && listener.stats().listeners[0]?.oversize === 1, 'one oversize, one accepted');
        assert.equal(sink.packets[0]?.payload.length, 100);
      } finally {
        await listener.close();
      }
    });

    test('session key per exporter source port', async () => {
      const { listener, sink, port } = await startListener({ receiver, allow: ['127.0.0.1'] });
      try {
        const a = await sender('127.0.0.1');
        const b = await sender('127.0.0.1');
        await send(a, Buffer.from('1'), port, '127.0.0.1');
        await send(b, Buffer.from('2'), port, '127.0.0.1');
        await send(a, Buffer.from('3'), port, '127.0.0.1');
        await until(() => sink.packets.length === 3, '3 datagrams');
        const keys = sink.packets.map((p) => p.sessionKey);
        assert.deepEqual(keys, [a, b, a].map((s) => `udp|127.0.0.1|${s.address().port}|${port}`));
        assert.equal(listener.stats().exporters[0]?.packets, 3, 'one exporter entry for both source ports');
      } finally {
        await listener.close();
      }
    });

    test('kernel receive-queue drops are read from /proc/net/udp', { skip: process.platform !== 'linux' && 'needs Linux /proc/net/udp' }, async () => {
      // A tiny receive buffer and a blocked event loop: the kernel must drop most of a burst.
      // (The native thread keeps reading until its bounded frame queue is full, 16 frames of
      // at most 64 datagrams, and then blocks too: a burst larger than that must overflow.)
      const { listener, sink, port } = await startListener({ receiver, allow: ['127.0.0.1'], receiveBufferBytes: 4096 });
      try {
        assert.equal(readKernelUdpDrops(port), 0);
        const s = await sender('127.0.0.1');
        const burst = 3000;
        const payload = Buffer.alloc(1000);
        for (let i = 0; i < burst; i++) s.send(payload, port, '127.0.0.1'); // synchronous while we hold the loop
        await until(() => (readKernelUdpDrops(port) ?? 0) + sink.packets.length === burst, 'all datagrams delivered or dropped');
        const drops = readKernelUdpDrops(port) ?? 0;
        assert.ok(drops > 0, 'the kernel dropped part of the burst');
        assert.equal(listener.stats().listeners[0]?.kernelDrops, drops);
      } finally {
        await listener.close();
      }
      assert.equal(readKernelUdpDrops(port), null, 'no socket on the port after close');
    });
  });
}

describe('native UDP receiver', { skip: skipNative }, () => {
  test('a burst of 20k datagrams arrives complete and in order', async () => {
    const { listener, sink, port } = await startListener({ receiver: 'native', allow: ['127.0.0.1'], receiveBufferBytes: 16 * 1024 * 1024 });
    try {
      const s = await sender('127.0.0.1');
      const total = 20_000;
      const chunk = 500;
      for (let i = 0; i < total; i += chunk) {
        // Bounded bursts: each chunk's last send completes before the next chunk starts.
        for (let k = i; k < i + chunk - 1; k++) s.send(sequenced(k), port, '127.0.0.1');
        await send(s, sequenced(i + chunk - 1), port, '127.0.0.1');
      }
      await until(() => sink.packets.length === total, `${total} datagrams (have ${sink.packets.length}, kernel drops ${readKernelUdpDrops(port)})`, 20_000);
      for (const [i, p] of sink.packets.entries()) {
        if (p.payload.length !== 64 || Buffer.from(p.payload).readUInt32BE(0) !== i) assert.fail(`datagram ${i} out of order or damaged`);
      }
      const st = listener.stats().listeners[0];
      assert.equal(st?.packets, total);
      assert.equal(st.bytes, total * 64);
      assert.equal(st.kernelDrops, 0);
    } finally {
      await listener.close();
    }
  });

  test('"::" listener: an IPv4 peer is reported as dotted IPv4, an IPv6 peer as IPv6', async () => {
    const { listener, sink, port } = await startListener({ receiver: 'native', allow: ['127.0.0.1', '::1'], endpoints: [{ address: '::', port: 0 }] });
    try {
      const v4 = await sender('127.0.0.1');
      const v6 = await sender('::1', 'udp6');
      await send(v4, Buffer.from('four'), port, '127.0.0.1');
      await until(() => sink.packets.length === 1, 'the IPv4 datagram');
      await send(v6, Buffer.from('six'), port, '::1');
      await until(() => sink.packets.length === 2, 'the IPv6 datagram');
      assert.equal(sink.packets[0]?.exporter, '127.0.0.1');
      assert.equal(sink.packets[0].sessionKey, `udp|127.0.0.1|${v4.address().port}|${port}`);
      assert.equal(sink.packets[1]?.exporter, '::1');
      assert.equal(sink.packets[1].exporterPort, v6.address().port);
      assert.deepEqual(listener.stats().exporters.map((e) => e.exporter).sort(), ['127.0.0.1', '::1']);
    } finally {
      await listener.close();
    }
  });

  test('an oversize datagram is counted and not delivered; the next one is', async () => {
    const { listener, sink, port } = await startListener({ receiver: 'native', allow: ['127.0.0.1'], maxDatagramBytes: 600 });
    try {
      const s = await sender('127.0.0.1');
      await send(s, Buffer.alloc(1000, 1), port, '127.0.0.1');
      await send(s, Buffer.alloc(600, 2), port, '127.0.0.1');
      await send(s, Buffer.alloc(601, 3), port, '127.0.0.1');
      await until(() => listener.stats().listeners[0]?.oversize === 2 && sink.packets.length === 1, 'two oversize, one accepted');
      assert.deepEqual(Buffer.from(sink.packets[0]?.payload ?? []), Buffer.alloc(600, 2));
      assert.equal(listener.stats().listeners[0]?.packets, 1);
    } finally {
      await listener.close();
    }
  });

  test('one named receiver thread per socket while open, none after close; close frees the port and is idempotent', async () => {
    const before = receiverThreads();
    const { listener, sink, port } = await startListener({
      receiver: 'native',
      allow: ['127.0.0.1'],
      endpoints: [
        { address: '127.0.0.1', port: 0 },
        { address: '::1', port: 0 },
      ],
    });
    assert.equal(receiverThreads(), before + 2);
    // Close with datagrams in flight: undelivered frames are dropped, nothing is delivered after close.
    const s = await sender('127.0.0.1');
    for (let i = 0; i < 2000; i++) s.send(sequenced(i), port, '127.0.0.1');
    await listener.close();
    const delivered = sink.packets.length;
    assert.equal(receiverThreads(), before);
    await listener.close();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(sink.packets.length, delivered, 'nothing arrives after close');
    const { listener: second } = await startListener({ receiver: 'native', allow: ['127.0.0.1'], endpoints: [{ address: '127.0.0.1', port }] });
    assert.equal(second.addresses()[0]?.port, port, 'the port was free again');
    await second.close();
  });

  test('"native" where it is required and the listener cannot use it fails start()', async () => {
    const listener = new UdpListener({
      endpoints: [{ address: 'localhost', port: 0 }],
      allowlist: PrefixSet.parse(['127.0.0.1']),
      sink: new CollectingSink(),
      logger: testLogger().logger,
      receiver: 'native',
    });
    await assert.rejects(listener.start(), /native UDP receiver is unavailable: a listener address is a host name/);
    await listener.close();
  });
});

function sequenced(i: number): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(i, 0);
  return b;
}

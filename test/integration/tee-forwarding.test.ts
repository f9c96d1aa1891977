import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { RemoteInfo, Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { PrefixSet } from '../../src/flow/cidr.js';
import { ConfigError } from '../../src/flow/errors.js';
import { UdpListener } from '../../src/ingest/udp/udp-listener.js';
import { UdpTee, type TeeConfig } from '../../src/ingest/udp/tee.js';
import { bindUdp, CollectingSink, sendUdp, testLogger, until } from '../support/udp-harness.js';

/* Tees on loopback: a plain UDP socket plays the downstream collector. */

const sockets: Socket[] = [];
after(() => {
  for (const s of sockets) s.close();
});

async function bound(address: string): Promise<Socket> {
  const s = await bindUdp(address);
  sockets.push(s);
  return s;
}

/** A collector that records every datagram it receives. */
async function collector(): Promise<{ port: number; got: { payload: Buffer; from: RemoteInfo }[] }> {
  const s = await bound('127.0.0.1');
  const got: { payload: Buffer; from: RemoteInfo }[] = [];
  s.on('message', (payload, from) => got.push({ payload, from }));
  return { port: s.address().port, got };
}

function send(s: Socket, payload: Uint8Array, port: number): Promise<void> {
  return sendUdp(s, payload, port);
}

async function setup(allow: string[], tees: TeeConfig[]) {
  const { logger, lines } = testLogger();
  const tee = new UdpTee({ tees, logger });
  await tee.start();
  const sink = new CollectingSink();
  const listener = new UdpListener({
    endpoints: [{ address: '127.0.0.1', port: 0 }],
    allowlist: PrefixSet.parse(allow),
    sink,
    logger,
    receiveBufferBytes: 1024 * 1024,
    tee,
  });
  await listener.start();
  const port = listener.addresses()[0]?.port ?? 0;
  const close = async (): Promise<void> => {
    await listener.close();
    await tee.close();
  };
  return { tee, listener, sink, port, lines, close };
}

describe('UDP tees', () => {
  test('a tee target receives exactly the allowlisted datagrams, byte for byte', async () => {
    const target = await collector();
    const { tee, listener, sink, port, lines, close } = await setup(['127.0.0.1'], [{ targets: [`127.0.0.1:${target.port}`] }]);
    try {
      assert.ok(lines.some((l) => l.msg.includes("probe's own address")), 'startup log says the source address is not preserved');
      const good = await bound('127.0.0.1');
      const bad = await bound('127.0.0.2');
      const accepted: Buffer[] = [];
      for (let i = 0; i < 30; i++) {
        const p = randomBytes(1 + Math.floor(Math.random() * 1400));
        if (i % 3 === 0) {
          await send(bad, p, port);
        } else {
          accepted.push(p);
          await send(good, p, port);
        }
      }
      await until(() => sink.packets.length === accepted.length && listener.stats().rejectedTotal === 10, 'listener to see all datagrams');
      await until(() => target.got.length >= accepted.length, 'tee target to receive the accepted datagrams');
      // Give stragglers (a wrongly forwarded rejected datagram) a moment to show up.
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(target.got.length, accepted.length);
      assert.deepEqual(
        target.got.map((g) => g.payload.toString('hex')),
        accepted.map((p) => p.toString('hex')),
      );
      assert.ok(target.got.every((g) => g.from.address === '127.0.0.1'));
      const st = tee.stats()[0];
      assert.equal(st?.sent, accepted.length);
      assert.equal(st.sentBytes, accepted.reduce((n, p) => n + p.length, 0));
      assert.equal(st.failed, 0);
    } finally {
      await close();
    }
  });

  test('per-target exporter filter', async () => {
    const onlyTwo = await collector();
    const everyone = await collector();
    const { sink, port, close } = await setup(
      ['127.0.0.0/29'],
      [
        { targets: [`127.0.0.1:${onlyTwo.port}`], exporters: ['127.0.0.2/32'] },
        { targets: [`127.0.0.1:${everyone.port}`] },
      ],
    );
    try {
      const one = await bound('127.0.0.1');
      const two = await bound('127.0.0.2');
      await send(one, Buffer.from('from-1'), port);
      await send(two, Buffer.from('from-2'), port);
      await send(one, Buffer.from('from-1b'), port);
      await until(() => sink.packets.length === 3 && everyone.got.length === 3 && onlyTwo.got.length >= 1, 'forwarding');
      await new Promise((r) => setTimeout(r, 50));
      assert.deepEqual(onlyTwo.got.map((g) => g.payload.toString()), ['from-2']);
      assert.deepEqual(everyone.got.map((g) => g.payload.toString()), ['from-1', 'from-2', 'from-1b']);
    } finally {
      await close();
    }
  });

  test('IPv6 tee target', async () => {
    const v6 = await bindUdp('::1', 'udp6');
    sockets.push(v6);
    const got: Buffer[] = [];
    v6.on('message', (m) => got.push(m));
    const { tee, sink, port, close } = await setup(['127.0.0.1'], [{ targets: [`[::1]:${v6.address().port}`] }]);
    try {
      await send(await bound('127.0.0.1'), Buffer.from('six'), port);
      await until(() => sink.packets.length === 1 && got.length === 1, 'forwarding over IPv6');
      assert.equal(got[0]?.toString(), 'six');
      assert.equal(tee.stats()[0]?.address, '::1');
    } finally {
      await close();
    }
  });

  test('listenerPort limits a tee to one listener', async () => {
    const target = await collector();
    const { sink, port, close } = await setup(['127.0.0.1'], [{ targets: [`127.0.0.1:${target.port}`], listenerPort: 1 }]);
    try {
      await send(await bound('127.0.0.1'), Buffer.from('x'), port);
      await until(() => sink.packets.length === 1, 'ingest');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(target.got.length, 0);
    } finally {
      await close();
    }
  });

  test('ingest keeps going when the tee target is unreachable; failures counted', async () => {
    // A port that nobody listens on: loopback answers with ICMP port unreachable.
    const gone = await bound('127.0.0.1');
    const deadPort = gone.address().port;
    await new Promise<void>((r) => gone.close(() => r()));
    sockets.splice(sockets.indexOf(gone), 1);
    const { tee, listener, sink, port, lines, close } = await setup(['127.0.0.1'], [{ targets: [`127.0.0.1:${deadPort}`] }]);
    try {
      const s = await bound('127.0.0.1');
      const n = 50;
      for (let i = 0; i < n; i++) {
        await send(s, Buffer.from(`packet ${i}`), port);
        if (i % 10 === 9) await new Promise((r) => setTimeout(r, 2)); // let ICMP errors arrive meanwhile
      }
      await until(() => sink.packets.length === n, 'every datagram ingested despite the dead tee');
      await until(() => (tee.stats()[0]?.failed ?? 0) > 0, 'counted tee failures');
      const st = tee.stats()[0];
      assert.equal(st?.lastError, 'ECONNREFUSED');
      const warned = lines.filter((l) => l.msg.startsWith('tee target send failed'));
      assert.ok(warned.length >= 1 && warned.length <= 5, `rate-limited failure warnings: ${warned.length}`);
      assert.equal(warned[0]?.target, `127.0.0.1:${deadPort}`);
      assert.equal(listener.stats().listeners[0]?.packets, n);
    } finally {
      await close();
    }
  });

  test('spoofSource is rejected with an explanation', () => {
    const { logger } = testLogger();
    assert.throws(
      () => new UdpTee({ tees: [{ targets: ['127.0.0.1:9995'] }], logger, spoofSource: true }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.setting, 'tees.spoofSource');
        assert.match(err.message, /CAP_NET_RAW/);
        assert.match(err.message, /nftables/);
        return true;
      },
    );
  });

  test('bad tee configuration names the setting', () => {
    const { logger } = testLogger();
    const bad: [TeeConfig[], string][] = [
      [[{ targets: ['127.0.0.1:0'] }], 'tees[0].targets[0]'],
      [[{ targets: ['127.0.0.1:9995'] }, { targets: ['127.0.0.1:9995', '::1:9995'] }], 'tees[1].targets[1]'],
      [[{ targets: ['127.0.0.1'] }], 'tees[0].targets[0]'],
      [[{ targets: [] }], 'tees[0].targets'],
      [[{ targets: ['127.0.0.1:9995'], exporters: ['10.0.0.0/8', '10.0.0.0/40'] }], 'tees[0].exporters[1]'],
      [[{ targets: ['127.0.0.1:9995'], exporters: [] }], 'tees[0].exporters'],
      [[{ targets: ['127.0.0.1:9995'], listenerPort: 70000 }], 'tees[0].listenerPort'],
    ];
    for (const [tees, setting] of bad) {
      assert.throws(
        () => new UdpTee({ tees, logger }),
        (err: unknown) => err instanceof ConfigError && err.setting === setting,
        setting,
      );
    }
  });
});

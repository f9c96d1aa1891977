/**
 * The HTTPS proxy option (branches often sit behind one): the drain tunnels through a real
 * HTTP CONNECT proxy on loopback, TLS is end to end (the proxy sees only the CONNECT target),
 * and the embedded stand-in setup delivers with its generated certificate.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Drain, resolveDrainSettings } from '../../src/drain/drain.js';
import { startEmbeddedFusionSim } from '../../src/fusion-sim/embedded-fusion-sim.js';
import { drainFor, fillSpool, openTempSpool, receivedSeq, startTestSim } from '../support/drain-fixtures.js';

test('uploads go through an HTTP CONNECT proxy when drain.fusion.proxyUrl is set', async () => {
  const targets: string[] = [];
  const sockets = new Set<Socket>();
  const proxy = createServer((_req, res) => res.writeHead(405).end());
  proxy.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    targets.push(req.url ?? '');
    const [host, port] = (req.url ?? '').split(':');
    const upstream = connect(Number(port), host, () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => sockets.delete(s));
    }
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  const addr = proxy.address();
  assert.ok(addr !== null && typeof addr === 'object');
  const env = await startTestSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 3, 100);
    const res = await drainFor(env, t.spool.reader, { tls: { proxyUrl: `http://127.0.0.1:${addr.port}` } }).drainOnce();
    assert.equal(res.complete, true);
    // Two uploads run at once (drain.concurrency 2), so their arrival order may differ from the spool's.
    assert.deepEqual(receivedSeq(env.sim).sort((a, b) => a - b), Array.from({ length: 300 }, (_, i) => i));
    assert.ok(targets.length >= 1, 'the proxy carried the connection');
    assert.ok(targets.every((x) => x === `127.0.0.1:${env.sim.port}`), targets.join(','));
  } finally {
    await t.cleanup();
    await env.cleanup();
    for (const s of sockets) s.destroy();
    await new Promise((r) => proxy.close(r));
  }
});

test('embedded stand-in: generated certificate and netosecret, the drain delivers to it', async () => {
  const emb = await startEmbeddedFusionSim();
  const t = await openTempSpool();
  try {
    fillSpool(t.spool, 2, 50);
    const drain = new Drain({
      source: t.spool.reader,
      credentials: emb.credentials,
      settings: resolveDrainSettings({ uploadUrl: emb.extras.uploadUrl ?? '', uploadWorkers: 0, tls: { caPem: emb.extras.caPem ?? null } }),
    });
    const res = await drain.drainOnce();
    assert.equal(res.complete, true);
    assert.equal(emb.sim.stats.recordsAccepted, 100);
    assert.equal(emb.sim.records.length, 0, 'counted, not kept');
  } finally {
    await t.cleanup();
    await emb.sim.close();
  }
});

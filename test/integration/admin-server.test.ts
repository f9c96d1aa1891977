import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import { after, describe, test } from 'node:test';
import { AdminServer, type Readiness } from '../../src/observability/admin-server.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';
import { family, Metrics } from '../../src/observability/metrics.js';
import { httpGet, type Reply } from '../support/http-get.js';
import { parsePrometheusText, sampleValue } from '../support/prometheus-text.js';

function get(port: number, path: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Reply> {
  return httpGet(port, path, headers, method);
}

function captureLogger(): { logger: Logger; lines: string[] } {
  const lines: string[] = [];
  const logger = createLogger({ level: 'trace', pretty: false }, { write: (s: string) => lines.push(s) });
  return { logger, lines };
}

const servers: AdminServer[] = [];
after(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function startServer(opts: { token?: Buffer; metrics?: Metrics; stats?: () => unknown; readiness?: () => Readiness; logger?: Logger; address?: string; statusPage?: () => string }): Promise<{ server: AdminServer; port: number; address: string }> {
  const server = new AdminServer({
    ...(opts.statusPage === undefined ? {} : { statusPage: opts.statusPage }),
    port: 0,
    ...(opts.address === undefined ? {} : { address: opts.address }),
    token: opts.token,
    metrics: opts.metrics ?? new Metrics({ processMetrics: false }),
    stats: opts.stats ?? (() => ({})),
    readiness: opts.readiness ?? (() => ({ ready: true, reasons: [] })),
    logger: opts.logger ?? captureLogger().logger,
  });
  servers.push(server);
  const { port, address } = await server.start();
  return { server, port, address };
}

function nonLoopbackAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (!a.internal && a.family === 'IPv4') return a.address;
  }
  return null;
}

describe('admin server', () => {
  test('binds to loopback by default and is not reachable on other interfaces', async (t) => {
    const { port, address } = await startServer({});
    assert.equal(address, '127.0.0.1');
    assert.equal((await get(port, '/healthz')).status, 200);
    const other = nonLoopbackAddress();
    if (other === null) {
      t.diagnostic('no non-loopback IPv4 interface here: the unreachable-elsewhere half is not checked');
      return;
    }
    const refused = await new Promise<string>((resolve) => {
      const s = connect({ host: other, port });
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    });
    assert.equal(refused, 'ECONNREFUSED');
  });

  test('healthz, readyz reasons, 404, 405, HEAD', async () => {
    let readiness: Readiness = { ready: false, reasons: ['listener udp-4739 not bound', 'spool not open'] };
    const { port } = await startServer({ readiness: () => readiness });
    const h = await get(port, '/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.body, 'ok\n');
    const r1 = await get(port, '/readyz');
    assert.equal(r1.status, 503);
    assert.deepEqual(JSON.parse(r1.body), { ready: false, reasons: ['listener udp-4739 not bound', 'spool not open'] });
    readiness = { ready: true, reasons: [] };
    const r2 = await get(port, '/readyz');
    assert.equal(r2.status, 200);
    assert.deepEqual(JSON.parse(r2.body), { ready: true, reasons: [] });
    assert.equal((await get(port, '/nope')).status, 404);
    const post = await get(port, '/stats', {}, 'POST');
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await get(port, '/healthz', {}, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  test('a readiness check that throws is reported as not ready', async () => {
    const { port } = await startServer({
      readiness: () => {
        throw new Error('spool closed');
      },
    });
    const r = await get(port, '/readyz');
    assert.equal(r.status, 503);
    assert.deepEqual(JSON.parse(r.body), { ready: false, reasons: ['readiness check failed: spool closed'] });
  });

  test('bearer token is enforced on every endpoint and never logged', async () => {
    const token = 'adm1n-T0KEN-zq93hv';
    const wrong = 'adm1n-T0KEN-zq93hX';
    const cap = captureLogger();
    const { port } = await startServer({ token: Buffer.from(token), logger: cap.logger });
    for (const path of ['/healthz', '/readyz', '/stats', '/metrics']) {
      const none = await get(port, path);
      assert.equal(none.status, 401, `${path} without token`);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="sealflow"');
      assert.equal((await get(port, path, { Authorization: `Bearer ${wrong}` })).status, 401, `${path} wrong token`);
      assert.equal((await get(port, path, { Authorization: `Basic ${token}` })).status, 401, `${path} wrong scheme`);
      assert.equal((await get(port, path, { Authorization: `Bearer ${token}x` })).status, 401, `${path} longer token`);
      assert.equal((await get(port, path, { Authorization: `Bearer ${token}` })).status, 200, `${path} right token`);
    }
    const log = cap.lines.join('');
    assert.ok(log.includes('admin request rejected'), 'rejections are logged');
    assert.ok(!log.includes(token.slice(0, 10)), 'token must not be logged');
    assert.ok(!log.includes(wrong), 'a wrong token must not be logged either');
  });

  test('the status page: behind the same token, which a browser sends as the Basic password; no external assets', async () => {
    const token = 'page-T0KEN-4711';
    const { port } = await startServer({ token: Buffer.from(token), statusPage: () => '<!doctype html><title>sealflow</title>' });
    const none = await get(port, '/');
    assert.equal(none.status, 401);
    assert.match(String(none.headers['www-authenticate']), /^Basic realm="sealflow"/, 'a browser asks for the password');
    const basic = (user: string, pass: string): string => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    assert.equal((await get(port, '/', { Authorization: basic('admin', `${token}x`) })).status, 401);
    assert.equal((await get(port, '/', { Authorization: basic(token, '') })).status, 401, 'the token is the password, not the user');
    const ok = await get(port, '/', { Authorization: basic('anyone', token) });
    assert.equal(ok.status, 200);
    assert.match(String(ok.headers['content-type']), /^text\/html/);
    assert.match(String(ok.headers['content-security-policy']), /default-src 'none'/);
    assert.equal((await get(port, '/', { Authorization: `Bearer ${token}` })).status, 200);
    assert.equal((await get(port, '/stats', { Authorization: basic('x', token) })).status, 200, 'the same credentials work for the API');
    const { port: bare } = await startServer({});
    assert.equal((await get(bare, '/')).status, 404, 'no page without a status page');
  });

  test('/stats serialises bigint counters exactly and Maps as objects', async () => {
    const { port } = await startServer({
      stats: () => ({ spool: { records: 12n, bytes: 2n ** 60n }, exporters: new Map([['192.0.2.1', { packets: 3 }]]) }),
    });
    const r = await get(port, '/stats');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.deepEqual(JSON.parse(r.body), { spool: { records: 12, bytes: '1152921504606846976' }, exporters: { '192.0.2.1': { packets: 3 } } });
  });
});

describe('/metrics', () => {
  test('parses as Prometheus text and matches what a real UDP listener counted', async () => {
    // A stand-in listener keeping its own stats() snapshot, as the real listeners do.
    const counts = new Map<string, { source: string; packets: number; bytes: number }>();
    const listener: Socket = createSocket('udp4');
    listener.on('message', (msg, rinfo) => {
      const key = `${rinfo.address}:${rinfo.port}`;
      const e = counts.get(key) ?? { source: key, packets: 0, bytes: 0 };
      e.packets++;
      e.bytes += msg.length;
      counts.set(key, e);
    });
    await new Promise<void>((resolve) => listener.bind(0, '127.0.0.1', resolve));
    const lport = listener.address().port;

    const metrics = new Metrics();
    const packets = family('test_exporter_packets_total', 'counter', 'Datagrams received from an exporter', ['exporter']);
    const bytes = family('test_exporter_received_bytes_total', 'counter', 'Bytes received from an exporter', ['exporter']);
    const exporters = family('test_exporters', 'gauge', 'Exporters seen so far');
    metrics.registerCollector('udp', (emit) => {
      for (const e of counts.values()) {
        emit(packets, e.packets, { exporter: e.source });
        emit(bytes, BigInt(e.bytes), { exporter: e.source });
      }
      emit(exporters, counts.size);
    });
    const { port } = await startServer({ metrics });

    const senders = [createSocket('udp4'), createSocket('udp4')];
    const plan = [7, 12];
    try {
      for (const [i, s] of senders.entries()) {
        await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
        for (let n = 0; n < (plan[i] ?? 0); n++) await new Promise<void>((resolve, reject) => s.send(Buffer.alloc(100 + i), lport, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      }
      const total = plan.reduce((a, b) => a + b, 0);
      for (let tries = 0; tries < 200; tries++) {
        if ([...counts.values()].reduce((a, e) => a + e.packets, 0) >= total) break;
        await new Promise((r) => setTimeout(r, 10));
      }

      const r = await get(port, '/metrics');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      const fams = parsePrometheusText(r.body);
      for (const [i, s] of senders.entries()) {
        const exporter = `127.0.0.1:${s.address().port}`;
        assert.equal(sampleValue(fams, 'sealflow_test_exporter_packets_total', { exporter }), plan[i], `packets from ${exporter}`);
        assert.equal(sampleValue(fams, 'sealflow_test_exporter_received_bytes_total', { exporter }), (plan[i] ?? 0) * (100 + i));
      }
      assert.equal(fams.get('sealflow_test_exporter_packets_total')?.type, 'counter');
      assert.equal(fams.get('sealflow_test_exporter_packets_total')?.help, 'Datagrams received from an exporter');
      assert.equal(sampleValue(fams, 'sealflow_test_exporters'), 2);
      assert.equal(fams.get('sealflow_test_exporters')?.type, 'gauge');
      assert.ok(fams.has('sealflow_process_cpu_user_seconds_total'), 'process metrics on the private registry');
      assert.ok(!fams.has('sealflow_nodejs_active_handles_total'), 'prom-client\'s gauges named _total are left out');
      assert.ok(fams.has('sealflow_nodejs_active_handles'), 'the same figure by type stays');
    } finally {
      for (const s of senders) s.close();
      listener.close();
    }
  });

  test('label cardinality is capped: excess values fold into "other" (summed, timestamps the latest), and the overflow is counted', async () => {
    const metrics = new Metrics({ maxLabelValues: 3, processMetrics: false });
    const records = family('test_records_total', 'counter', 'Records from an exporter', ['exporter']);
    const lastSeen = family('test_last_seen_timestamp_seconds', 'gauge', 'Last packet from an exporter', ['exporter'], 'max');
    const exporters = Array.from({ length: 10 }, (_, i) => ({ address: `198.51.100.${i}`, records: 10 * (i + 1), lastSeen: 1000 + i }));
    metrics.registerCollector('decode', (emit) => {
      for (const e of exporters) {
        emit(records, e.records, { exporter: e.address });
        emit(lastSeen, e.lastSeen, { exporter: e.address });
      }
    });
    const { port } = await startServer({ metrics });

    const first = parsePrometheusText((await get(port, '/metrics')).body);
    assert.equal(first.get('sealflow_test_records_total')?.samples.length, 4, 'three kept values plus "other"');
    assert.equal(sampleValue(first, 'sealflow_test_records_total', { exporter: '198.51.100.0' }), 10);
    assert.equal(sampleValue(first, 'sealflow_test_records_total', { exporter: 'other' }), [40, 50, 60, 70, 80, 90, 100].reduce((a, b) => a + b, 0));
    assert.equal(sampleValue(first, 'sealflow_test_last_seen_timestamp_seconds', { exporter: 'other' }), 1009);
    assert.equal(sampleValue(first, 'sealflow_metrics_label_overflow_total', { metric: 'sealflow_test_records_total' }), 7);

    // The kept set is stable across scrapes: the same three values, not whichever came first this time.
    exporters.reverse();
    const second = parsePrometheusText((await get(port, '/metrics')).body);
    assert.equal(sampleValue(second, 'sealflow_test_records_total', { exporter: '198.51.100.0' }), 10);
    assert.equal(sampleValue(second, 'sealflow_test_records_total', { exporter: '198.51.100.9' }), undefined);
  });

  test('naming conventions are enforced where a family is declared', () => {
    assert.throws(() => family('drain_delivered_records', 'counter', 'Records Fusion acknowledged'), /ends in _total/);
    assert.throws(() => family('handles_total', 'gauge', 'Active handles right now'), /only counters end in _total/);
    assert.throws(() => family('drain_eta_ms', 'gauge', 'Time until the spool is empty'), /base unit/);
    assert.throws(() => family('drain_records_per_sec', 'gauge', 'Delivery rate of the drain'), /base unit/);
    assert.throws(() => family('decode_records_total', 'counter', 'sealflow_decode_records_total'), /HELP/);
    assert.throws(() => family('x_total', 'counter', 'x'), /HELP/);
    assert.doesNotThrow(() => family('spool_oldest_record_age_seconds', 'gauge', 'Age of the oldest batch in the spool'));
  });

  test('a collector that throws or emits undeclared labels is left out and counted; the rest still renders', async () => {
    const metrics = new Metrics({ processMetrics: false });
    const depth = family('test_spool_records', 'gauge', 'Records waiting in the spool');
    const half = family('test_half_total', 'counter', 'Emitted before the collector failed');
    metrics.registerCollector('broken', (emit) => {
      emit(half, 1);
      throw new Error('boom');
    });
    metrics.registerCollector('mislabelled', (emit) => {
      emit(depth, 1, { exporter: 'x' });
    });
    metrics.registerCollector('spool', (emit) => {
      emit(depth, 42);
      emit(depth, null);
    });
    const { port } = await startServer({ metrics });
    const fams = parsePrometheusText((await get(port, '/metrics')).body);
    assert.equal(sampleValue(fams, 'sealflow_test_spool_records'), 42);
    assert.ok(!fams.has('sealflow_test_half_total'), 'nothing of a collector that failed half-way');
    const again = parsePrometheusText((await get(port, '/metrics')).body);
    assert.equal(sampleValue(again, 'sealflow_metrics_collector_errors_total', { collector: 'broken' }), 2);
    assert.equal(sampleValue(again, 'sealflow_metrics_collector_errors_total', { collector: 'mislabelled' }), 2);
  });

  test('close() is idempotent and frees the port', async () => {
    const { server, port } = await startServer({});
    await Promise.all([server.close(), server.close()]);
    await server.close();
    await assert.rejects(get(port, '/healthz'), /ECONNREFUSED/);
  });
});

describe('the strict Prometheus text parser used above', () => {
  test('rejects what Prometheus would reject', () => {
    assert.throws(() => parsePrometheusText('# TYPE a counter\na 1\na 2\n'), /duplicate series/);
    assert.throws(() => parsePrometheusText('# TYPE a gauge\na 1\n# TYPE b gauge\nb 1\na{x="1"} 2\n'), /outside its family block|appears twice/);
    assert.throws(() => parsePrometheusText('a{x="\\q"} 1\n'), /bad escape/);
    assert.throws(() => parsePrometheusText('a{1x="y"} 1\n'), /bad label name/);
    assert.throws(() => parsePrometheusText('a 1,5\n'), /bad value/);
    assert.throws(() => parsePrometheusText('a 1'), /newline/);
    assert.throws(() => parsePrometheusText('# TYPE a counter\na 1\n# TYPE a counter\n'), /TYPE after samples|appears twice/);
    const ok = parsePrometheusText('# HELP a x\\ny\n# TYPE a counter\na{l="q\\"\\\\\\n"} 3\n');
    assert.equal(ok.get('a')?.help, 'x\ny');
    assert.equal(sampleValue(ok, 'a', { l: 'q"\\\n' }), 3);
  });
});

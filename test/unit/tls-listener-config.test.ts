import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { ConfigError, IngestError } from '../../src/flow/errors.js';
import { TlsListener, TLS_CIPHERS, TLS_MIN_VERSION, type TlsListenerOptions } from '../../src/ingest/tls/tls-listener.js';
import { silentLogger } from '../../src/observability/logger.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';
import { SessionSink } from '../support/tls-harness.js';

describe('TlsListener configuration', () => {
  let pki: TestPki;
  before(async () => {
    pki = await createTestPki();
  });
  after(async () => {
    await pki.cleanup();
  });
  const options = (o: Partial<TlsListenerOptions> = {}): TlsListenerOptions => ({
    host: '127.0.0.1',
    port: 0,
    trust: { caFile: pki.caFile, crlFiles: pki.crlFiles, certFile: pki.collector.certFile, keyFile: pki.collector.keyFile, exporters: [{ name: 'exporter1.test' }] },
    watchFiles: false,
    ...o,
  });
  const deps = () => ({ sink: new SessionSink(), logger: silentLogger() });

  test('bad limits are ConfigErrors naming the setting', () => {
    for (const [limits, setting] of [
      [{ maxConnections: 0 }, 'listeners.tls.limits.maxConnections'],
      [{ handshakeTimeoutMs: 1.5 }, 'listeners.tls.limits.handshakeTimeoutMs'],
      [{ maxMessageBytes: 70_000 }, 'listeners.tls.limits.maxMessageBytes'],
      [{ maxMessageBytes: 8 }, 'listeners.tls.limits.maxMessageBytes'],
    ] as const) {
      assert.throws(() => new TlsListener(options({ limits }), deps()), (e: unknown) => e instanceof ConfigError && e.setting === setting, setting);
    }
  });

  test('bad trust files fail in the constructor with the setting named', () => {
    assert.throws(
      () => new TlsListener(options({ settingPrefix: 'listeners.tls', trust: { ...options().trust, keyFile: pki.exporters.valid.keyFile } }), deps()),
      (e: unknown) => e instanceof ConfigError && e.setting === 'listeners.tls.keyFile',
    );
  });

  test('a port in use is an IngestError naming the address', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    const l = new TlsListener(options({ port }), deps());
    await assert.rejects(l.start(), (e: unknown) => e instanceof IngestError && e.code === 'ERR_INGEST_BIND' && e.message.includes(String(port)));
    await l.close();
    await new Promise((r) => blocker.close(r));
  });

  test('only TLS 1.2+ with ECDHE AEAD suites', () => {
    assert.equal(TLS_MIN_VERSION, 'TLSv1.2');
    for (const c of TLS_CIPHERS.split(':')) assert.match(c, /^(TLS_(AES_(128|256)_GCM|CHACHA20_POLY1305)_SHA(256|384)|ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305))$/, c);
  });

  test('close() before start() resolves', async () => {
    const l = new TlsListener(options(), deps());
    await l.close();
    await l.close();
  });
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type SocketOptions } from 'node:dgram';
import { PrefixSet } from '../../src/flow/cidr.js';
import { IngestError } from '../../src/flow/errors.js';
import { UdpListener, type UdpEndpoint } from '../../src/ingest/udp/udp-listener.js';
import { parseHostPort } from '../../src/ingest/udp/tee.js';
import { CollectingSink, testLogger } from '../support/udp-harness.js';

function listener(endpoint: UdpEndpoint, factory?: (o: SocketOptions) => ReturnType<typeof createSocket>): UdpListener {
  return new UdpListener({
    endpoints: [endpoint],
    allowlist: PrefixSet.parse(['127.0.0.1']),
    sink: new CollectingSink(),
    logger: testLogger().logger,
    ...(factory === undefined ? {} : { createSocket: factory }),
  });
}

async function bindError(l: UdpListener): Promise<IngestError> {
  try {
    await l.start();
  } catch (err) {
    assert.ok(err instanceof IngestError);
    return err;
  }
  await l.close();
  assert.fail('start() should have failed');
}

test('an address not on this host: the message says to fix the address setting', async () => {
  // 192.0.2.1 is TEST-NET-1 (RFC 5737): never configured on a host.
  const err = await bindError(listener({ address: '192.0.2.1', port: 0, setting: 'listeners.udp[0]' }));
  assert.equal(err.code, 'ERR_INGEST_BIND');
  assert.equal(err.context.errno, 'EADDRNOTAVAIL');
  assert.match(err.message, /listeners\.udp\[0\]\.address/);
});

test('a privileged port without the capability: the message names CAP_NET_BIND_SERVICE and the port setting', async () => {
  // Tests run as root here, so the kernel would allow port 80: inject the EACCES it returns otherwise.
  const factory = (o: SocketOptions): ReturnType<typeof createSocket> => {
    const s = createSocket(o);
    s.bind = (() => {
      process.nextTick(() => s.emit('error', Object.assign(new Error('bind EACCES 0.0.0.0:80'), { code: 'EACCES' })));
      return s;
    });
    return s;
  };
  const err = await bindError(listener({ address: '0.0.0.0', port: 80, setting: 'listeners.udp[2]' }, factory));
  assert.match(err.message, /CAP_NET_BIND_SERVICE/);
  assert.match(err.message, /listeners\.udp\[2\]\.port/);
  assert.match(err.message, /0\.0\.0\.0:80/);
});

test('the default setting name is listeners.udp[index]', async () => {
  const err = await bindError(listener({ address: '192.0.2.1', port: 0 }));
  assert.equal(err.context.setting, 'listeners.udp[0]');
});

test('tee targets parse as host:port with bracketed IPv6', () => {
  assert.deepEqual(parseHostPort('127.0.0.1:2055'), { host: '127.0.0.1', port: 2055 });
  assert.deepEqual(parseHostPort('[2001:db8::1]:4739'), { host: '2001:db8::1', port: 4739 });
  assert.deepEqual(parseHostPort('collector.example:9995'), { host: 'collector.example', port: 9995 });
  for (const bad of ['2001:db8::1:4739', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', ':2055', 'a b:1', '[::1]']) {
    assert.equal(parseHostPort(bad), null, bad);
  }
});

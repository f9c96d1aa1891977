/**
 * sd_notify(3) from the probe: the addon sends one datagram per notification to
 * $NOTIFY_SOCKET, a path or an abstract name ("@..."), received here by socat as systemd would.
 * The whole flow under the unit (READY=1 after binding, STATUS=, STOPPING=1) is in
 * test/integration/systemd-unit.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { serviceNotifier } from '../../src/observability/service-notify.js';
import { requireTool } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

test('without NOTIFY_SOCKET every notification is a no-op', () => {
  const n = serviceNotifier({});
  assert.equal(n.socket, null);
  assert.equal(n.problem, null);
  n.ready('x');
  n.status('y');
  n.stopping();
});

test('READY=1 with a one-line STATUS=, then STATUS= and STOPPING=1, as datagrams on an abstract socket', async (t) => {
  if (!requireTool(t, spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0, 'socat')) return;
  const name = `sealflow-test-${randomBytes(6).toString('hex')}`;
  const socat = spawn('socat', ['-u', `ABSTRACT-RECV:${name}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'inherit'] });
  let got = '';
  socat.stdout.on('data', (b: Buffer) => (got += b.toString()));
  try {
    const errors: string[] = [];
    const n = serviceNotifier({ NOTIFY_SOCKET: `@${name}` }, (m) => errors.push(m));
    assert.equal(n.problem, null);
    // socat binds asynchronously: send until the first datagram arrives.
    await until(() => {
      n.ready('listening on\nudp 127.0.0.1:2055');
      return got.includes('READY=1');
    }, 'READY=1 at the receiver', 5000);
    n.status('12 exporters');
    n.stopping();
    await until(() => got.includes('STOPPING=1'), 'STOPPING=1', 5000);
    assert.match(got, /READY=1\nSTATUS=listening on udp 127\.0\.0\.1:2055/);
    assert.match(got, /STATUS=12 exporters/);
    assert.ok(errors.every((e) => /ECONNREFUSED|errno 111/.test(e)), errors.join('\n'));
  } finally {
    socat.kill();
  }
});

test('a socket that cannot be reached or named is reported, never thrown', () => {
  const errors: string[] = [];
  const n = serviceNotifier({ NOTIFY_SOCKET: `/nonexistent/${'x'.repeat(20)}` }, (m) => errors.push(m));
  n.ready('x');
  const long = serviceNotifier({ NOTIFY_SOCKET: `/${'x'.repeat(200)}` }, (m) => errors.push(m));
  long.status('x');
  const relative = serviceNotifier({ NOTIFY_SOCKET: 'relative/path' }, (m) => errors.push(m));
  relative.stopping();
  assert.equal(errors.length, 3, errors.join('\n'));
  assert.ok(errors.every((e) => e.startsWith('service notification to ')), errors.join('\n'));
});

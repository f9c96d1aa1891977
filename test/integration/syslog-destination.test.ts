import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { describe, test } from 'node:test';
import { SYSLOG_FACILITY_NAMES } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { MAX_SYSLOG_MESSAGE_BYTES, SYSLOG_FACILITIES, SyslogDestination, formatSyslogMessage } from '../../src/observability/syslog-destination.js';

/** RFC 5424 §6: <PRI>VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD SP MSG */
const RFC5424 = /^<(\d{1,3})>1 (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z) ([\x21-\x7e]{1,255}) ([\x21-\x7e]{1,48}) (\d+) ([\x21-\x7e]{1,32}) - (.*)$/s;

interface Parsed {
  readonly pri: number;
  readonly appName: string;
  readonly procId: number;
  readonly msgId: string;
  readonly msg: string;
}

function parse5424(text: string): Parsed {
  const m = RFC5424.exec(text);
  assert.ok(m !== null, `not RFC 5424: ${text.slice(0, 120)}`);
  return { pri: Number(m[1]), appName: m[4] ?? '', procId: Number(m[5]), msgId: m[6] ?? '', msg: m[7] ?? '' };
}

async function until(cond: () => boolean, what: string, maxMs = 5000): Promise<void> {
  for (let waited = 0; !cond(); waited += 20) {
    if (waited >= maxMs) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('syslog destination', () => {
  test('facility keywords in the config schema match the destination table', () => {
    assert.deepEqual([...SYSLOG_FACILITY_NAMES].sort(), Object.keys(SYSLOG_FACILITIES).sort());
  });

  test('UDP: one RFC 5424 datagram per line, severity from the level, component as MSGID, secrets redacted', async () => {
    const got: string[] = [];
    const rx = createSocket('udp4');
    rx.on('message', (m) => got.push(m.toString('utf8')));
    await new Promise<void>((r) => rx.bind(0, '127.0.0.1', r));
    const dest = new SyslogDestination({ host: '127.0.0.1', port: rx.address().port, protocol: 'udp', facility: 'local3', appName: 'sealflow' });
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false, syslog: dest }, { write: (s: string) => lines.push(s) });
    try {
      logger.child({ component: 'spool' }).info({ netosecret: 'NS-should-not-leave' }, 'spool opened');
      logger.error('drain failed');
      logger.debug('below the level: not sent');
      await until(() => got.length >= 2, 'two datagrams');
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(got.length, 2);
      const [a, b] = got.map(parse5424);
      assert.ok(a !== undefined && b !== undefined);
      assert.equal(a.pri, 19 * 8 + 6, 'local3.info');
      assert.equal(b.pri, 19 * 8 + 3, 'local3.err');
      assert.equal(a.msgId, 'spool');
      assert.equal(b.msgId, '-');
      assert.equal(a.procId, process.pid);
      assert.equal((JSON.parse(a.msg) as { msg: string }).msg, 'spool opened');
      assert.ok(!got.join('').includes('NS-should-not-leave'));
      assert.equal(lines.length, 2, 'the main destination still gets every line');
      assert.equal(dest.stats().sent, 2);
    } finally {
      await dest.close();
      await dest.close();
      rx.close();
    }
  });

  test('long lines are truncated to the receiver limit, not dropped', () => {
    const line = JSON.stringify({ level: 30, msg: 'x'.repeat(20_000) }) + '\n';
    const out = formatSyslogMessage(line, { facility: 'daemon', appName: 'sealflow', hostname: 'probe1' }, new Date(0), 42);
    assert.equal(out.length, MAX_SYSLOG_MESSAGE_BYTES);
    assert.match(out.toString('utf8'), /^<30>1 1970-01-01T00:00:00\.000Z probe1 sealflow 42 - - \{"level":30/);
  });

  test('TCP: octet-counted frames; lines written while the receiver is down are queued and delivered on reconnect', async () => {
    // Find a free port, then leave it closed so the first connection attempt is refused.
    const probe: Server = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));

    const dest = new SyslogDestination({ host: '127.0.0.1', port, protocol: 'tcp', facility: 'daemon', appName: 'sealflow' });
    const logger = createLogger({ level: 'info', pretty: false, syslog: dest }, { write: () => undefined });
    logger.warn('queued while down 1');
    logger.info('queued while down 2');
    await until(() => dest.stats().errors > 0, 'the refused first connection');

    let buf = Buffer.alloc(0);
    const server = createServer((sock) => {
      sock.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      const frames: string[] = [];
      const drainFrames = (): void => {
        for (;;) {
          const sp = buf.indexOf(0x20);
          if (sp < 0) return;
          const len = Number(buf.subarray(0, sp).toString('ascii'));
          assert.ok(Number.isInteger(len) && len > 0, 'octet count');
          if (buf.length < sp + 1 + len) return;
          frames.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
          buf = buf.subarray(sp + 1 + len);
        }
      };
      await until(() => {
        drainFrames();
        return frames.length >= 2;
      }, 'queued frames after reconnect', 8000);
      logger.info('live');
      await until(() => {
        drainFrames();
        return frames.length >= 3;
      }, 'the live frame');
      const parsed = frames.map(parse5424);
      assert.deepEqual(parsed.map((p) => (JSON.parse(p.msg) as { msg: string }).msg), ['queued while down 1', 'queued while down 2', 'live']);
      assert.deepEqual(parsed.map((p) => p.pri), [3 * 8 + 4, 3 * 8 + 6, 3 * 8 + 6]);
      assert.equal(dest.stats().dropped, 0);
    } finally {
      await dest.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

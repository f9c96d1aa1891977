/**
 * Log flooding with spoofed sources (RFC 7011 §11.6 says to log rejected sources; an attacker
 * must not turn that into unbounded log volume). Real datagrams from 3,000 loopback addresses
 * (127.0.x.y: the whole 127/8 is local on Linux, so each is a distinct kernel-reported source)
 * against a listener that allows only 127.0.0.1: the rejection warnings stay within the
 * per-kind budget and a summary accounts for every suppressed line.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { PrefixSet } from '../../src/flow/cidr.js';
import { UdpListener } from '../../src/ingest/udp/udp-listener.js';
import { DEFAULT_KIND_BURST } from '../../src/observability/rate-limited-log.js';
import { freeTcpPort, freeUdpPort, startProbe } from '../support/probe.js';
import { bindUdp, CollectingSink, sendUdp, testLogger, until, type LogLine } from '../support/udp-harness.js';

const SOURCES = 3000;
const PER_SOURCE = 2;
const REJECTED_MSG = 'dropped UDP datagram from a source not in the exporter allowlist';

/** Sends PER_SOURCE datagrams from each of `n` addresses 127.0.1.0 onwards (never 127.0.0.1). */
async function spoofedFlood(port: number, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const address = `127.0.${1 + (i >> 8)}.${i & 255}`;
    const s = await bindUdp(address);
    for (let k = 0; k < PER_SOURCE; k++) await sendUdp(s, randomBytes(64), port);
    s.close();
  }
}

function parseLines(text: string): LogLine[] {
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);
}

describe('log flood from spoofed sources', () => {
  test('a running UdpListener: 6,000 datagrams from 3,000 addresses give at most the kind budget of lines, and a periodic summary of the rest', async () => {
    const { logger, lines } = testLogger();
    const sink = new CollectingSink();
    const listener = new UdpListener({
      endpoints: [{ address: '127.0.0.1', port: 0, name: 'flows' }],
      allowlist: PrefixSet.parse(['127.0.0.1/32']),
      sink,
      logger,
      rejectLog: { windowMs: 2000, burst: 5, maxKeys: 10_000, kindBurst: DEFAULT_KIND_BURST },
    });
    await listener.start();
    try {
      await spoofedFlood(listener.addresses()[0]?.port ?? 0, SOURCES);
      await until(() => listener.stats().rejectedTotal === SOURCES * PER_SOURCE, 'every datagram rejected', 20_000);
      const warnings = (): LogLine[] => lines.filter((l) => l.msg === REJECTED_MSG);
      assert.ok(warnings().length <= DEFAULT_KIND_BURST, `${warnings().length} warning lines`);
      // The summary comes by itself, without another datagram, once the 2 s period is over.
      await until(() => lines.some((l) => l.event === 'log.suppressed'), 'the summary line', 10_000);
      const summaries = lines.filter((l) => l.event === 'log.suppressed');
      const suppressed = summaries.reduce((n, l) => n + (l.suppressed as number), 0);
      assert.equal(warnings().length + suppressed, SOURCES * PER_SOURCE, 'every rejection is either a line or counted in a summary');
      assert.ok(summaries.every((l) => l.kind === 'udp.source_rejected'));
      assert.ok((summaries[0]?.sources as number) >= SOURCES - DEFAULT_KIND_BURST);
      assert.equal(sink.packets.length, 0);
    } finally {
      await listener.close();
    }
  });

  test('`sealflow run`: the same flood writes at most the kind budget of warnings; SIGTERM writes the summary', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-logflood-'));
    try {
      writeFileSync(path.join(dir, 'kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
      const udpPort = await freeUdpPort();
      const adminPort = await freeTcpPort();
      writeFileSync(path.join(dir, 'sealflow.yaml'), stringify({
        dataDir: path.join(dir, 'data'),
        log: { level: 'info', format: 'json' },
        listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 4 * 1024 * 1024 }] },
        spool: { kek: { file: path.join(dir, 'kek') } },
        drain: { enabled: false },
        admin: { port: adminPort },
        stats: { intervalSeconds: 0 },
      }));
      const probe = await startProbe({ args: ['--config', path.join(dir, 'sealflow.yaml')], adminPort });
      let rejected = 0;
      try {
        await spoofedFlood(udpPort, SOURCES);
        const rejectedTotal = async (): Promise<number> => ((await probe.getJson('/stats')) as { listeners: { udp: { rejectedTotal: number } } }).listeners.udp.rejectedTotal;
        const deadline = Date.now() + 20_000;
        while ((rejected = await rejectedTotal()) < SOURCES * PER_SOURCE && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        assert.equal(rejected, SOURCES * PER_SOURCE, 'every datagram reached the listener and was rejected');
      } finally {
        assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-3000));
      }
      const lines = parseLines(probe.output());
      const warnings = lines.filter((l) => l.msg === REJECTED_MSG);
      assert.ok(warnings.length <= DEFAULT_KIND_BURST, `${warnings.length} warning lines for ${rejected} rejected datagrams`);
      const summaries = lines.filter((l) => l.event === 'log.suppressed' && l.kind === 'udp.source_rejected');
      const suppressed = summaries.reduce((n, l) => n + (l.suppressed as number), 0);
      assert.equal(warnings.length + suppressed, rejected, 'every rejection is either a line or counted in a summary');
      assert.match(summaries[0]?.msg ?? '', /log lines suppressed from \d+ sources/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

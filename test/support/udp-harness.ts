import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { PacketSink } from '../../src/flow/pipeline.js';
import { createLogger, type Logger } from '../../src/observability/logger.js';

/** Test helpers for real-socket UDP tests on loopback (listeners, tees, load generators). */

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

/** A pino logger writing parsed JSON lines into an array (pino's test-sink pattern). */
export function testLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger({ level: 'debug', pretty: false }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

/** A PacketSink that keeps every packet it is given. */
export class CollectingSink implements PacketSink {
  readonly packets: ExporterPacket[] = [];
  submit(p: ExporterPacket): boolean {
    this.packets.push(p);
    return true;
  }
  endSession(): void {
    // UDP has no sessions to end.
  }
  onDrain(): void {
    // Never above a high-water mark.
  }
}

/** Binds a UDP socket to `address` on a free port; the caller closes it. */
export async function bindUdp(address: string, type: 'udp4' | 'udp6' = 'udp4'): Promise<Socket> {
  const s = createSocket({ type });
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.bind({ address, port: 0 }, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

export function sendUdp(s: Socket, payload: Uint8Array, port: number, host = '127.0.0.1'): Promise<void> {
  return new Promise((resolve, reject) => s.send(payload, port, host, (err) => (err ? reject(err) : resolve())));
}

/** Polls until `cond` holds; fails the test after `timeoutMs` (bounded wait). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

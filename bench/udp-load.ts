/**
 * IPFIX-over-UDP load generator and the raw UDP listener receive benchmark.
 *
 * startUdpLoad() sends IPFIX messages (RFC 7011) with a typical 15-field IPv4 template from a
 * separate Node process, so the sender never shares the receiver's event loop, paced to a
 * target record rate: every tick it sends the packets that are due since the start (batches,
 * not one timer per packet), so the average rate stays exact even when ticks are late.
 * The template set goes first and then every TEMPLATE_REFRESH_MS (RFC 7011 §8.4: over UDP
 * templates are resent periodically).
 *
 * run() (npm run bench udp-load) measures what the UdpListener alone receives into a counting
 * sink: packets/s and records/s per offered rate, with loss including kernel receive-queue
 * drops (/proc/net/udp), and the highest rate with < 0.1% loss.
 */
import { createSocket } from 'node:dgram';
import { PrefixSet } from '../src/flow/cidr.js';
import type { ExporterPacket } from '../src/flow/exporter-packet.js';
import type { PacketSink } from '../src/flow/pipeline.js';
import { readKernelUdpDrops, UdpListener } from '../src/ingest/udp/udp-listener.js';
import { silentLogger } from '../src/observability/logger.js';
import { forkLoadChild, serveLoadChild } from './load-child.js';

export interface UdpLoadOptions {
  readonly host: string;
  readonly port: number;
  readonly recordsPerSecond: number;
  readonly durationMs: number;
  /** Data records per IPFIX message (default 20: 1,280-byte datagrams, under a 1,500 MTU). */
  readonly recordsPerPacket?: number;
  /** Source address to bind (e.g. another 127.x address); default any. */
  readonly localAddress?: string;
  readonly observationDomainId?: number;
}

export interface UdpLoadResult {
  /** Every datagram sent, template datagrams included. */
  readonly sentPackets: number;
  /** Data records sent. */
  readonly sentRecords: number;
  readonly templatePackets: number;
  readonly sendErrors: number;
  readonly elapsedMs: number;
  /** The sender's own CPU time (user + system, ms): it shares the machine's cores with the receiver. */
  readonly senderCpuMs: number;
}

// ---- IPFIX message construction --------------------------------------------------------

/** (Information Element ID, length) of the template: the usual IPv4 5-tuple + counters + times + ASes. */
export const TEMPLATE_FIELDS: readonly (readonly [number, number])[] = [
  [8, 4], // sourceIPv4Address
  [12, 4], // destinationIPv4Address
  [7, 2], // sourceTransportPort
  [11, 2], // destinationTransportPort
  [4, 1], // protocolIdentifier
  [6, 1], // tcpControlBits (reduced-size encoding, RFC 7011 §6.2)
  [5, 1], // ipClassOfService
  [10, 4], // ingressInterface
  [14, 4], // egressInterface
  [1, 8], // octetDeltaCount
  [2, 8], // packetDeltaCount
  [152, 8], // flowStartMilliseconds
  [153, 8], // flowEndMilliseconds
  [16, 4], // bgpSourceAsNumber
  [17, 4], // bgpDestinationAsNumber
];
export const TEMPLATE_ID = 256;
export const RECORD_BYTES = TEMPLATE_FIELDS.reduce((n, [, len]) => n + len, 0);
const IPFIX_VERSION = 10;
const MESSAGE_HEADER_BYTES = 16;
const SET_HEADER_BYTES = 4;
const TEMPLATE_SET_ID = 2;
/** Resend the template every second, so a receiver (re)started mid-run decodes within a second. */
const TEMPLATE_REFRESH_MS = 1000;
/** Prebuilt messages rotated through; each is patched (sequence, export time) right before sending. */
const MESSAGE_POOL = 512;
const DEFAULT_RECORDS_PER_PACKET = 20;
/** At most this many sends per tick, so send completions and IPC get a turn. */
const MAX_SENDS_PER_TICK = 512;

function writeHeader(b: Buffer, exportTime: number, sequence: number, domain: number): void {
  b.writeUInt16BE(IPFIX_VERSION, 0);
  b.writeUInt16BE(b.length, 2);
  b.writeUInt32BE(exportTime >>> 0, 4);
  b.writeUInt32BE(sequence >>> 0, 8);
  b.writeUInt32BE(domain >>> 0, 12);
}

export function buildTemplateMessage(exportTime: number, sequence: number, domain: number): Buffer {
  const setLen = SET_HEADER_BYTES + 4 + TEMPLATE_FIELDS.length * 4;
  const b = Buffer.alloc(MESSAGE_HEADER_BYTES + setLen);
  writeHeader(b, exportTime, sequence, domain);
  let o = MESSAGE_HEADER_BYTES;
  b.writeUInt16BE(TEMPLATE_SET_ID, o);
  b.writeUInt16BE(setLen, o + 2);
  b.writeUInt16BE(TEMPLATE_ID, o + 4);
  b.writeUInt16BE(TEMPLATE_FIELDS.length, o + 6);
  o += 8;
  for (const [id, len] of TEMPLATE_FIELDS) {
    b.writeUInt16BE(id, o);
    b.writeUInt16BE(len, o + 2);
    o += 4;
  }
  return b;
}

/** A data message with `records` varied records (xorshift PRNG seeded by `seed`); header patched later. */
export function buildDataMessage(records: number, seed: number, nowMs: number): Buffer {
  const setLen = SET_HEADER_BYTES + records * RECORD_BYTES;
  const b = Buffer.alloc(MESSAGE_HEADER_BYTES + setLen);
  writeHeader(b, Math.floor(nowMs / 1000), 0, 0);
  let x = seed | 1;
  const rnd = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  let o = MESSAGE_HEADER_BYTES;
  b.writeUInt16BE(TEMPLATE_ID, o);
  b.writeUInt16BE(setLen, o + 2);
  o += SET_HEADER_BYTES;
  for (let i = 0; i < records; i++) {
    const r = rnd();
    b.writeUInt32BE((0x0a000000 | (r & 0xffff)) >>> 0, o); // 10.0.x.y
    b.writeUInt32BE((0xc0000200 | (rnd() & 0xff)) >>> 0, o + 4); // 192.0.2.z
    b.writeUInt16BE(1024 + (rnd() % 60000), o + 8);
    b.writeUInt16BE([443, 80, 53, 22, 123][r % 5] ?? 443, o + 10);
    b.writeUInt8(r % 7 === 0 ? 17 : 6, o + 12);
    b.writeUInt8(0x18, o + 13);
    b.writeUInt8(0, o + 14);
    b.writeUInt32BE(1 + (r % 48), o + 15);
    b.writeUInt32BE(1 + (rnd() % 48), o + 19);
    const packets = 1 + (rnd() % 1000);
    b.writeBigUInt64BE(BigInt(packets * (40 + (r % 1400))), o + 23);
    b.writeBigUInt64BE(BigInt(packets), o + 31);
    b.writeBigUInt64BE(BigInt(nowMs - 30_000 - (r % 30_000)), o + 39);
    b.writeBigUInt64BE(BigInt(nowMs - (r % 1000)), o + 47);
    b.writeUInt32BE(64496 + (r % 16), o + 55);
    b.writeUInt32BE(64512 + (rnd() % 16), o + 59);
    o += RECORD_BYTES;
  }
  return b;
}

/** Records in one IPFIX message built here: 0 for a template message. */
export function dataRecordsIn(msg: Uint8Array): number {
  if (msg.length < MESSAGE_HEADER_BYTES + SET_HEADER_BYTES) return 0;
  const setId = ((msg[16] ?? 0) << 8) | (msg[17] ?? 0);
  if (setId !== TEMPLATE_ID) return 0;
  const setLen = ((msg[18] ?? 0) << 8) | (msg[19] ?? 0);
  return Math.floor((setLen - SET_HEADER_BYTES) / RECORD_BYTES);
}

// ---- the sender (runs in the child process) -------------------------------------------

async function sendLoad(o: UdpLoadOptions): Promise<UdpLoadResult> {
  const perPacket = o.recordsPerPacket ?? DEFAULT_RECORDS_PER_PACKET;
  const domain = o.observationDomainId ?? 1;
  const packetsPerSecond = o.recordsPerSecond / perPacket;
  const socket = createSocket({ type: o.host.includes(':') ? 'udp6' : 'udp4' });
  let sendErrors = 0;
  // ICMP errors on a connected socket arrive as 'error' events; count them, keep sending.
  socket.on('error', () => {
    sendErrors++;
  });
  await new Promise<void>((resolve) => socket.bind({ address: o.localAddress ?? (o.host.includes(':') ? '::' : '0.0.0.0'), port: 0 }, resolve));
  await new Promise<void>((resolve) => socket.connect(o.port, o.host, resolve));
  const onSent = (err: Error | null): void => {
    if (err !== null) sendErrors++;
  };

  const startWall = Date.now();
  const pool = Array.from({ length: MESSAGE_POOL }, (_, i) => buildDataMessage(perPacket, 0x9e3779b9 ^ (i * 2654435761), startWall));
  let sequence = 0;
  let sentPackets = 0;
  let dataPackets = 0;
  let templatePackets = 0;
  let lastTemplate = -Infinity;
  const cpuBefore = process.cpuUsage();
  const start = process.hrtime.bigint();
  const elapsedMs = (): number => Number(process.hrtime.bigint() - start) / 1e6;

  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const t = elapsedMs();
      const exportTime = Math.floor(Date.now() / 1000);
      if (t - lastTemplate >= TEMPLATE_REFRESH_MS && t < o.durationMs) {
        socket.send(buildTemplateMessage(exportTime, sequence, domain), onSent);
        templatePackets++;
        sentPackets++;
        lastTemplate = t;
      }
      const due = Math.min(Math.floor((Math.min(t, o.durationMs) * packetsPerSecond) / 1000), Math.ceil((o.durationMs * packetsPerSecond) / 1000));
      let budget = MAX_SENDS_PER_TICK;
      // Keep the in-flight queue shorter than the pool so a pooled buffer is never rewritten while queued.
      while (dataPackets < due && budget-- > 0 && socket.getSendQueueCount() < MESSAGE_POOL / 2) {
        const msg = pool[dataPackets % MESSAGE_POOL]!;
        msg.writeUInt32BE(exportTime >>> 0, 4);
        msg.writeUInt32BE(sequence >>> 0, 8); // RFC 7011 §3.1: records sent before this message
        msg.writeUInt32BE(domain >>> 0, 12);
        socket.send(msg, onSent);
        sequence = (sequence + perPacket) >>> 0;
        dataPackets++;
        sentPackets++;
      }
      if (t >= o.durationMs && dataPackets >= due) resolve();
      // Caught up: wait for the next millisecond's packets instead of spinning, which would
      // take CPU from the receiver on the shared cores. Behind: continue on the next turn.
      else if (dataPackets >= due) setTimeout(tick, 1);
      else setImmediate(tick);
    };
    tick();
  });
  const elapsed = elapsedMs();
  const cpu = process.cpuUsage(cpuBefore);
  await new Promise<void>((resolve) => socket.close(resolve));
  return { sentPackets, sentRecords: dataPackets * perPacket, templatePackets, sendErrors, elapsedMs: elapsed, senderCpuMs: (cpu.user + cpu.system) / 1000 };
}

const CHILD_ENV = 'SEALFLOW_UDP_LOAD_OPTIONS';

/**
 * Sends IPFIX load from a child process and resolves with what was sent once it is done.
 * The child runs this same file through tsx.
 */
export function startUdpLoad(options: UdpLoadOptions): Promise<UdpLoadResult> {
  return forkLoadChild<UdpLoadResult>(import.meta.url, CHILD_ENV, options);
}

serveLoadChild(CHILD_ENV, sendLoad);

// ---- the receive benchmark -------------------------------------------------------------

/** Counts packets and data records; touches nothing else (the listener alone is measured). */
export class CountingSink implements PacketSink {
  packets = 0;
  records = 0;
  submit(p: ExporterPacket): boolean {
    this.packets++;
    this.records += dataRecordsIn(p.payload);
    return true;
  }
  endSession(): void {
    // UDP: no sessions.
  }
  onDrain(): void {
    // Never above a high-water mark.
  }
}

/** A step passes when less than 0.1% of the records sent are lost (kernel drops included). */
const MAX_LOSS = 0.001;
const STEP_MS = 3000;
const RATES = [250_000, 500_000, 1_000_000, 2_000_000, 4_000_000, 6_000_000, 8_000_000];

export async function run(): Promise<void> {
  const sink = new CountingSink();
  const listener = new UdpListener({
    endpoints: [{ address: '127.0.0.1', port: 0, name: 'bench' }],
    allowlist: PrefixSet.parse(['127.0.0.1']),
    sink,
    logger: silentLogger(),
  });
  await listener.start();
  const port = listener.addresses()[0]?.port ?? 0;
  const granted = listener.stats().listeners[0]?.recvBufferGranted ?? 0;
  console.log(`UDP listener 127.0.0.1:${port}, SO_RCVBUF granted ${(granted / 2 ** 20).toFixed(1)} MiB (kernel reports 2x; net.core.rmem_max caps it)`);
  console.log(`IPFIX, ${TEMPLATE_FIELDS.length}-field IPv4 template (${RECORD_BYTES} B/record), ${DEFAULT_RECORDS_PER_PACKET} records/datagram, ${STEP_MS / 1000} s per step, sender in a child process`);
  console.log('offered rec/s | sent rec/s | received pkt/s | received rec/s | kernel drops | loss | receiver CPU/datagram');
  let minCpuUs = Infinity;
  let best = 0;
  try {
    for (const rate of RATES) {
      const before = { packets: sink.packets, records: sink.records, drops: readKernelUdpDrops(port) ?? 0, cpu: process.cpuUsage() };
      const sent = await startUdpLoad({ host: '127.0.0.1', port, recordsPerSecond: rate, durationMs: STEP_MS });
      // Let the receive queue drain (bounded wait).
      for (let i = 0; i < 100 && sink.records - before.records < sent.sentRecords; i++) await new Promise((r) => setTimeout(r, 10));
      const gotRecords = sink.records - before.records;
      const gotPackets = sink.packets - before.packets;
      const drops = (readKernelUdpDrops(port) ?? 0) - before.drops;
      const cpu = process.cpuUsage(before.cpu);
      // This process does nothing but receive: its CPU time per datagram bounds the rate one core sustains.
      const cpuUsPerPacket = gotPackets === 0 ? 0 : (cpu.user + cpu.system) / gotPackets;
      const loss = sent.sentRecords === 0 ? 0 : Math.max(0, sent.sentRecords - gotRecords) / sent.sentRecords;
      const secs = sent.elapsedMs / 1000;
      const sentRate = sent.sentRecords / secs;
      console.log(
        `${fmt(rate)} | ${fmt(sentRate)} | ${fmt(gotPackets / secs)} | ${fmt(gotRecords / secs)} | ${drops} | ${(loss * 100).toFixed(3)}% | ${cpuUsPerPacket.toFixed(2)} µs`,
      );
      if (loss < MAX_LOSS && sentRate >= rate * 0.95) best = Math.max(best, gotRecords / secs);
      if (gotPackets > 0) minCpuUs = Math.min(minCpuUs, cpuUsPerPacket);
      if (loss >= MAX_LOSS * 10) break; // far past the limit: higher rates only lose more
      if (sentRate < rate * 0.9) {
        console.log('(the sender cannot offer more on this machine; the sender and receiver share its cores)');
        break;
      }
    }
  } finally {
    await listener.close();
  }
  console.log(`highest receive rate with < ${MAX_LOSS * 100}% loss: ${fmt(best)} records/s (${fmt(best / DEFAULT_RECORDS_PER_PACKET)} datagrams/s)`);
  if (Number.isFinite(minCpuUs)) {
    console.log(`receiver cost ${minCpuUs.toFixed(2)} µs CPU per datagram ⇒ ~${fmt(1e6 / minCpuUs)} datagrams/s (${fmt((1e6 / minCpuUs) * DEFAULT_RECORDS_PER_PACKET)} records/s) per core for receive alone`);
  }
}

function fmt(n: number): string {
  return n >= 999_500 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}k` : n.toFixed(0);
}

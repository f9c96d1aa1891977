import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { Transport } from '../flow/flow-record.js';

/**
 * A "packet frame": many ExporterPackets packed into one transferable ArrayBuffer so the
 * receive loop can hand them to the ingest worker with one postMessage instead of one
 * structured clone per datagram (which costs more than decoding the datagram).
 *
 * Layout (little-endian, all offsets in bytes):
 *   payload area:  payloads back to back, starting at 0
 *   entries:       Float64Array-free fixed records kept in a separate Uint32Array `meta`
 *                  of ENTRY_WORDS words per packet:
 *                    [0] payload offset  [1] payload length  [2] exporter port
 *                    [3] string index of exporter  [4] string index of sessionKey
 *                    [5] string index of identity (NO_STRING = null)  [6] transport code
 *                    [7..8] receivedAtMs as two 32-bit halves (ms fits in 53 bits)
 *   strings:       a small per-frame table; exporters and session keys repeat across
 *                  packets of one frame, so each distinct string is sent once.
 */
export interface PacketFrame {
  readonly payloads: ArrayBuffer;
  readonly meta: Uint32Array;
  readonly strings: readonly string[];
  readonly count: number;
}

const ENTRY_WORDS = 9;
const NO_STRING = 0xffffffff;
const TRANSPORTS: readonly Transport[] = ['udp', 'tls', 'dtls', 'file'];
const TWO_32 = 0x100000000;
/** Payload buffers kept for reuse: enough for the frames usually in flight at a high rate. */
const SPARE_BUFFERS = 8;

/** Accumulates packets into a frame; `take()` hands the frame over and starts a new one. */
export class PacketFrameBuilder {
  private payloads: Uint8Array;
  private used = 0;
  private meta: Uint32Array;
  private count = 0;
  private strings: string[] = [];
  private stringIndex = new Map<string, number>();
  private readonly spare: ArrayBuffer[] = [];

  constructor(private readonly initialBytes = 256 * 1024, private readonly initialPackets = 1024) {
    this.payloads = new Uint8Array(initialBytes);
    this.meta = new Uint32Array(initialPackets * ENTRY_WORDS);
  }

  get packets(): number {
    return this.count;
  }

  get bytes(): number {
    return this.used;
  }

  add(p: ExporterPacket): void {
    const len = p.payload.length;
    if (this.used + len > this.payloads.length) {
      const grown = new Uint8Array(Math.max(this.payloads.length * 2, this.used + len));
      grown.set(this.payloads.subarray(0, this.used));
      this.payloads = grown;
    }
    if ((this.count + 1) * ENTRY_WORDS > this.meta.length) {
      const grown = new Uint32Array(this.meta.length * 2);
      grown.set(this.meta);
      this.meta = grown;
    }
    this.payloads.set(p.payload, this.used);
    const m = this.meta;
    const base = this.count * ENTRY_WORDS;
    m[base] = this.used;
    m[base + 1] = len;
    m[base + 2] = p.exporterPort;
    m[base + 3] = this.intern(p.exporter);
    m[base + 4] = this.intern(p.sessionKey);
    m[base + 5] = p.identity === null ? NO_STRING : this.intern(p.identity);
    m[base + 6] = TRANSPORTS.indexOf(p.transport);
    m[base + 7] = Math.floor(p.receivedAtMs / TWO_32);
    m[base + 8] = p.receivedAtMs % TWO_32;
    this.used += len;
    this.count++;
  }

  /**
   * Returns the frame (its buffers are meant to be transferred) and resets the builder.
   *
   * A frame at least half full hands over the builder's own payload buffer, so the bytes are
   * copied once (in add) rather than twice, and the builder continues in a buffer given back
   * by recycle() or a new one. A sparser frame (posted by the channel's timer) is copied into
   * an exact-size buffer instead, so a trickle of small frames never pins large buffers. Bytes
   * past the last payload's end are stale and never read: readers go by the entries' offsets.
   */
  take(): PacketFrame {
    let payloads: ArrayBuffer;
    const own = this.payloads;
    if (this.used * 2 >= own.length) {
      payloads = own.buffer as ArrayBuffer;
      this.payloads = this.spareBuffer(own.length);
    } else {
      payloads = new ArrayBuffer(this.used);
      new Uint8Array(payloads).set(own.subarray(0, this.used));
      if (own.length > this.initialBytes * 8) this.payloads = new Uint8Array(this.initialBytes);
    }
    const meta = this.meta.slice(0, this.count * ENTRY_WORDS);
    const frame: PacketFrame = { payloads, meta, strings: this.strings, count: this.count };
    this.used = 0;
    this.count = 0;
    this.strings = [];
    this.stringIndex = new Map();
    return frame;
  }

  /**
   * Gives back a frame's payload buffer once its packets are processed (the worker transfers it
   * back with its acknowledgement), for take() to reuse: no allocation, no zero-filling and no
   * garbage for either thread's collector. At most SPARE_BUFFERS are kept; sizes outside the
   * builder's range are left to the garbage collector.
   */
  recycle(buffer: ArrayBuffer): void {
    if (this.spare.length < SPARE_BUFFERS && buffer.byteLength >= this.initialBytes && buffer.byteLength <= this.initialBytes * 8) this.spare.push(buffer);
  }

  private spareBuffer(size: number): Uint8Array {
    for (;;) {
      const b = this.spare.pop();
      if (b === undefined) return new Uint8Array(Math.min(size, this.initialBytes * 8));
      if (b.byteLength >= Math.min(size, this.initialBytes * 8)) return new Uint8Array(b); // a detached buffer has byteLength 0
    }
  }

  private intern(s: string): number {
    let i = this.stringIndex.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.strings.push(s);
      this.stringIndex.set(s, i);
    }
    return i;
  }
}

/** Unpacks a frame into ExporterPackets whose payloads are views into the frame's buffer. */
export function* unpackFrame(frame: PacketFrame): Generator<ExporterPacket> {
  const bytes = new Uint8Array(frame.payloads);
  const m = frame.meta;
  const str = (i: number): string => frame.strings[i] ?? '';
  for (let k = 0; k < frame.count; k++) {
    const base = k * ENTRY_WORDS;
    const off = m[base] ?? 0;
    const len = m[base + 1] ?? 0;
    const identityIdx = m[base + 5] ?? NO_STRING;
    yield {
      payload: bytes.subarray(off, off + len),
      exporter: str(m[base + 3] ?? 0),
      exporterPort: m[base + 2] ?? 0,
      transport: TRANSPORTS[m[base + 6] ?? 0] ?? 'udp',
      sessionKey: str(m[base + 4] ?? 0),
      identity: identityIdx === NO_STRING ? null : str(identityIdx),
      receivedAtMs: (m[base + 7] ?? 0) * TWO_32 + (m[base + 8] ?? 0),
    };
  }
}

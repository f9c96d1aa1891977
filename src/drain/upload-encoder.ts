import { createHash } from 'node:crypto';
import * as zlib from 'node:zlib';
import { promisify } from 'node:util';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import type { FlowRecord } from '../flow/flow-record.js';
import { FusionJsonWriter } from '../flow/fusion-record.js';
import { CompressionLevel } from './compression-level.js';
import { DEFAULTS } from '../config/defaults.js';

/**
 * Turns one leased spool batch into upload request bodies ("chunks"). Fusion's upload
 * framing is not public (docs/FUSION.md), so the framing and compression are settings:
 *
 * - framing `ndjson`: one Fusion flow record JSON object per line, each line ending "\n"
 *   (Content-Type application/x-ndjson); `json-array`: one JSON array (application/json).
 * - compression `gzip` (RFC 1952, Content-Encoding: gzip), `none`, or `zstd` (RFC 8878) where
 *   this Node has zlib.zstdCompress (Node ≥ 22.15 / 23.8).
 * - A chunk holds at most `maxRecordsPerRequest` records and at most `maxBytesPerRequest`
 *   uncompressed bytes (a single record larger than that still goes alone).
 *
 * Chunk boundaries depend only on the batch's records and these settings, and each chunk's
 * idempotency key names its record range, so a retried chunk carries the same key.
 */

export type Framing = 'ndjson' | 'json-array';
export type Compression = 'gzip' | 'none' | 'zstd';

export interface EncoderSettings {
  readonly framing: Framing;
  readonly compression: Compression;
  /** zlib level 1–9: 1 is several times faster than 6 and costs ~15–25 % more bytes on flow JSON. */
  readonly gzipLevel: number;
  /** gzip only: step down from gzipLevel towards 1 while compression, not the network, is the bottleneck (compression-level.ts). */
  readonly adaptiveGzip: boolean;
  readonly maxRecordsPerRequest: number;
  readonly maxBytesPerRequest: number;
}

/** The drain.fusion settings' defaults (src/config/schema.ts says why). */
export const DEFAULT_ENCODER_SETTINGS: EncoderSettings = Object.freeze({
  framing: DEFAULTS.drain.fusion.framing,
  compression: DEFAULTS.drain.fusion.compression,
  gzipLevel: DEFAULTS.drain.fusion.gzipLevel,
  adaptiveGzip: DEFAULTS.drain.fusion.adaptiveGzip,
  maxRecordsPerRequest: DEFAULTS.drain.fusion.maxRecordsPerRequest,
  maxBytesPerRequest: DEFAULTS.drain.fusion.maxBytesPerRequest,
});

type Compress = (buf: Buffer, level: number) => Promise<Buffer>;

const gzipAsync = promisify(zlib.gzip) as (buf: Buffer, opts: zlib.ZlibOptions) => Promise<Buffer>;

function zstdCompressor(): Compress | null {
  const fn = (zlib as unknown as Record<string, unknown>).zstdCompress;
  if (typeof fn !== 'function') return null;
  const p = promisify(fn as (buf: Buffer, cb: (err: Error | null, out: Buffer) => void) => void);
  return (buf) => p(buf);
}

export function validateEncoderSettings(s: EncoderSettings): void {
  const bad = (setting: string, msg: string): never => {
    throw new ConfigError(ConfigErrorCode.Invalid, setting, `${setting}: ${msg}`);
  };
  // Settings may come from untyped config: check the enumerations at run time too.
  const framing: string = s.framing;
  const compression: string = s.compression;
  if (framing !== 'ndjson' && framing !== 'json-array') bad('drain.fusion.framing', 'want "ndjson" or "json-array"');
  if (compression !== 'gzip' && compression !== 'none' && compression !== 'zstd') bad('drain.fusion.compression', 'want "gzip", "none" or "zstd"');
  if (s.compression === 'zstd' && zstdCompressor() === null) {
    bad('drain.fusion.compression', `"zstd" needs Node.js ≥ 22.15 (zlib.zstdCompress); this is Node ${process.versions.node}. Use "gzip"`);
  }
  if (!Number.isInteger(s.gzipLevel) || s.gzipLevel < 1 || s.gzipLevel > 9) bad('drain.fusion.gzipLevel', 'want an integer 1–9');
  if (!Number.isInteger(s.maxRecordsPerRequest) || s.maxRecordsPerRequest < 1) bad('drain.fusion.maxRecordsPerRequest', 'want a positive integer');
  if (!Number.isInteger(s.maxBytesPerRequest) || s.maxBytesPerRequest < 1024) bad('drain.fusion.maxBytesPerRequest', 'want an integer ≥ 1024');
}

export interface EncodedChunk {
  /** Index of this chunk within the batch, from 0. */
  readonly index: number;
  /** Record range [first, end) within the batch. */
  readonly first: number;
  readonly end: number;
  readonly recordCount: number;
  /** The request body as sent (compressed). */
  readonly body: Buffer;
  readonly rawBytes: number;
  readonly headers: Readonly<Record<string, string>>;
}

/** Filled in by encode(): wall time of the compression phase (the gzip level control's input). */
export interface EncodeTimings {
  compressMs: number;
}

const JSON_ARRAY_OPEN = Buffer.from('[');
const JSON_ARRAY_CLOSE = Buffer.from(']');

export class UploadEncoder {
  private readonly compress: Compress | null;
  /** Reused for every batch; holds at most one chunk plus one record between calls. */
  private readonly writer = new FusionJsonWriter(64 * 1024);
  /** The gzip level in use; feed it each delivered batch's timings (observe). */
  readonly gzip: CompressionLevel;

  /**
   * `onThisThread`: gzip synchronously on the calling thread (an upload worker, whose low
   * scheduling priority then covers the compression too) instead of on libuv's thread pool,
   * which runs at the process's normal priority.
   */
  constructor(readonly settings: EncoderSettings, onThisThread = false) {
    validateEncoderSettings(settings);
    this.gzip = new CompressionLevel(settings.gzipLevel, settings.adaptiveGzip && settings.compression === 'gzip');
    this.compress = settings.compression === 'gzip'
      ? (onThisThread ? (buf, level) => Promise.resolve(zlib.gzipSync(buf, { level })) : (buf, level) => gzipAsync(buf, { level }))
      : settings.compression === 'zstd' ? zstdCompressor() : null;
  }

  /** Serialized record ranges of a batch (no compression yet), each within the size limits. */
  frame(records: readonly FlowRecord[]): { first: number; end: number; raw: Buffer }[] {
    const { maxRecordsPerRequest: maxN, maxBytesPerRequest: maxB, framing } = this.settings;
    const w = this.writer;
    w.reset();
    // Every record is followed by its separator: "\n" (NDJSON) or "," (JSON array: the last
    // one becomes "]" and a "[" goes in front when the chunk is cut).
    const sep = framing === 'ndjson' ? 0x0a : 0x2c;
    const out: { first: number; end: number; raw: Buffer }[] = [];
    let first = 0;
    let count = 0;
    const flush = (end: number, endPos: number): void => {
      if (count === 0) return;
      const raw = framing === 'ndjson' ? w.take(0, endPos) : Buffer.concat([JSON_ARRAY_OPEN, w.take(0, endPos - 1), JSON_ARRAY_CLOSE]);
      out.push({ first, end, raw });
      w.discard(endPos);
      first = end;
      count = 0;
    };
    for (let i = 0; i < records.length; i++) {
      const rec = records[i];
      if (rec === undefined) continue;
      const recordStart = w.length;
      w.record(rec);
      w.byte(sep);
      // The chunk so far starts at 0: cut before this record when it would break a limit.
      if (count > 0 && (count >= maxN || w.length > maxB)) flush(i, recordStart);
      count++;
    }
    flush(records.length, w.length);
    return out;
  }

  async encode(records: readonly FlowRecord[], timings?: EncodeTimings): Promise<EncodedChunk[]> {
    const framed = this.frame(records);
    const t0 = performance.now();
    const level = this.gzip.level;
    const contentType = this.settings.framing === 'ndjson' ? 'application/x-ndjson' : 'application/json';
    const chunks = await Promise.all(
      framed.map(async (f, index): Promise<EncodedChunk> => {
        const body = this.compress === null ? f.raw : await this.compress(f.raw, level);
        const headers: Record<string, string> = { 'content-type': contentType };
        if (this.settings.compression !== 'none') headers['content-encoding'] = this.settings.compression;
        return { index, first: f.first, end: f.end, recordCount: f.end - f.first, body, rawBytes: f.raw.length, headers };
      }),
    );
    if (timings !== undefined) timings.compressMs = performance.now() - t0;
    return chunks;
  }
}

/**
 * The Idempotency-Key of one chunk (draft-ietf-httpapi-idempotency-key-header): a stable
 * function of the spool batch (id and creation time, which together survive restarts and are
 * not reused by a new spool file) and the chunk's record range, optionally scoped (e.g. by
 * probe name) so two probes never collide. No flow data or secret goes into it.
 */
export function idempotencyKey(scope: string, batchId: number, batchCreatedAtMs: number, first: number, end: number): string {
  const h = createHash('sha256').update(`${scope}\u0000${batchId}\u0000${batchCreatedAtMs}\u0000${first}\u0000${end}`).digest('base64url');
  return `sf1-${h.slice(0, 32)}`;
}

import { closeSync, lstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, inflateSync } from 'node:zlib';
import type { Needle } from './canary.js';

/**
 * The attestation's file scan: every regular file under the given roots (the data directory,
 * the spool directory, any extra path such as a log file), read in chunks that overlap by the
 * longest needle, searched for every needle. Each gzip or zlib stream found (by its header) is
 * inflated, bounded, and its output searched too, so a compressed copy of a log or a dump is
 * not missed. Symbolic links are not followed (a link out of the data directory is listed,
 * not read). Bounded: files are read in 4 MiB chunks; an inflated stream is cut at 16 MiB.
 */

const CHUNK_BYTES = 4 * 1024 * 1024;
const MAX_INFLATED_BYTES = 16 * 1024 * 1024;
/** Candidate compressed streams tried per file at most (a ciphertext matches a 2-byte zlib header every ~16 KiB). */
const MAX_STREAMS_PER_FILE = 20_000;

export interface ScanHit {
  readonly path: string;
  readonly offset: number;
  readonly needle: string;
  /** Set when the needle was found inside an inflated stream starting at `offset`. */
  readonly inflated?: 'gzip' | 'zlib';
}

export interface ScannedFile {
  readonly path: string;
  readonly bytes: number;
}

export interface ScanResult {
  readonly files: ScannedFile[];
  readonly skipped: { readonly path: string; readonly reason: string }[];
  readonly hits: ScanHit[];
}

/** Lists the regular files under `roots` (recursively; a root may be a file), without following links. */
export function listFiles(roots: readonly string[]): { files: string[]; skipped: { path: string; reason: string }[] } {
  const files: string[] = [];
  const skipped: { path: string; reason: string }[] = [];
  const seen = new Set<string>();
  const walk = (p: string): void => {
    if (seen.has(p)) return;
    seen.add(p);
    let st;
    try {
      st = lstatSync(p);
    } catch (err) {
      skipped.push({ path: p, reason: (err as NodeJS.ErrnoException).code ?? 'unreadable' });
      return;
    }
    if (st.isSymbolicLink()) skipped.push({ path: p, reason: 'symbolic link (not followed)' });
    else if (st.isDirectory()) for (const name of readdirSync(p).sort()) walk(join(p, name));
    else if (st.isFile()) files.push(p);
  };
  for (const r of roots) walk(r);
  return { files, skipped };
}

function findAll(buf: Buffer, needles: readonly Needle[], base: number, limit: number, out: (offset: number, needle: string) => void): void {
  for (const n of needles) {
    let i = buf.indexOf(n.bytes);
    while (i !== -1 && i < limit) {
      out(base + i, n.name);
      i = buf.indexOf(n.bytes, i + 1);
    }
  }
}

/** Offsets of plausible gzip (1f 8b 08) and zlib (RFC 1950 §2.2: CM 8 with a 32 KiB window — 0x78, what every deflate library writes — and FCHECK, no preset dictionary) stream headers. */
function streamStarts(buf: Buffer, limit: number): { offset: number; kind: 'gzip' | 'zlib' }[] {
  const out: { offset: number; kind: 'gzip' | 'zlib' }[] = [];
  for (let i = 0; i + 2 < buf.length && i < limit; i++) {
    const a = buf.readUInt8(i);
    const b = buf.readUInt8(i + 1);
    if (a === 0x1f && b === 0x8b && buf[i + 2] === 8) out.push({ offset: i, kind: 'gzip' });
    else if (a === 0x78 && ((a << 8) | b) % 31 === 0 && (b & 0x20) === 0) out.push({ offset: i, kind: 'zlib' });
  }
  return out;
}

function tryInflate(buf: Buffer, kind: 'gzip' | 'zlib'): Buffer | null {
  try {
    return kind === 'gzip' ? gunzipSync(buf, { maxOutputLength: MAX_INFLATED_BYTES, finishFlush: 2 }) : inflateSync(buf, { maxOutputLength: MAX_INFLATED_BYTES, finishFlush: 2 });
  } catch {
    return null;
  }
}

/** Scans one file; hits are reported once per (offset, needle). */
export function scanFile(path: string, needles: readonly Needle[]): { bytes: number; hits: ScanHit[] } {
  const overlap = Math.max(0, ...needles.map((n) => n.bytes.length)) - 1;
  const hits: ScanHit[] = [];
  const fd = openSync(path, 'r');
  let total = 0;
  let streams = 0;
  try {
    const buf = Buffer.alloc(CHUNK_BYTES + overlap);
    let carried = 0;
    let base = 0;
    for (;;) {
      const n = readSync(fd, buf, carried, CHUNK_BYTES, null);
      const len = carried + n;
      const view = buf.subarray(0, len);
      // A match must start before `limit` unless this is the end of the file (the rest is carried over).
      const limit = n === 0 ? len : Math.max(0, len - overlap);
      findAll(view, needles, base, n === 0 ? len : limit, (offset, needle) => hits.push({ path, offset, needle }));
      if (streams < MAX_STREAMS_PER_FILE) {
        for (const s of streamStarts(view, n === 0 ? len : limit)) {
          if (++streams > MAX_STREAMS_PER_FILE) break;
          const out = tryInflate(view.subarray(s.offset), s.kind);
          if (out !== null && out.length > 0) findAll(out, needles, 0, out.length, (_o, needle) => hits.push({ path, offset: base + s.offset, needle, inflated: s.kind }));
        }
      }
      total += n;
      if (n === 0) break;
      const keep = len - limit;
      buf.copy(buf, 0, limit, len);
      base += limit;
      carried = keep;
    }
  } finally {
    closeSync(fd);
  }
  return { bytes: total, hits };
}

export function scanPaths(roots: readonly string[], needles: readonly Needle[]): ScanResult {
  const { files, skipped } = listFiles(roots);
  const result: ScanResult = { files: [], skipped: [...skipped], hits: [] };
  for (const f of files) {
    try {
      const r = scanFile(f, needles);
      result.files.push({ path: f, bytes: r.bytes });
      result.hits.push(...r.hits);
    } catch (err) {
      result.skipped.push({ path: f, reason: (err as NodeJS.ErrnoException).code ?? (err as Error).message });
    }
  }
  return result;
}

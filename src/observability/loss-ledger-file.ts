import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import type { LossCounts } from '../flow/loss.js';

/**
 * The loss ledger's file (`spool.loss`, next to the spool database): the totals by reason since
 * the ledger was created, so they survive restarts and `sealflow spool status` can show them
 * without the probe.
 *
 * It must stay writable when the disk is full (that is when loss is counted most), so it is
 * created once at its full size and afterwards only overwritten in place: on ext4, XFS and
 * tmpfs an overwrite of allocated blocks needs no free space. (Copy-on-write filesystems,
 * btrfs and ZFS, need free space even then: there a full disk can leave the file behind the
 * probe's own figures, which /metrics still has.) Not a database page: SQLite on a full disk
 * cannot even grow its WAL to record what it failed to store.
 *
 * Layout: FILE_BYTES bytes, two slots of SLOT_BYTES. A slot is one line of JSON padded with
 * spaces, ending in '\n':
 *   {"ledger":"sealflow-loss","version":1,"seq":N,"sinceMs":…,"updatedMs":…,
 *    "records":{reason:n,…},"packets":{reason:n,…},"check":"<first 16 hex of SHA-256 of the line without check>"}
 * Writes alternate between the slots (the one not holding the newest state), so a write torn
 * by a power cut leaves the other slot intact; the reader takes the valid slot with the
 * highest seq. `check` detects a torn or damaged slot, not tampering (an attacker with write
 * access to the spool directory can rewrite counts; the audit trail is the tamper-evident record).
 */

export const LOSS_LEDGER_FILE = 'spool.loss';
const SLOT_BYTES = 2048;
const SLOTS = 2;
const FILE_BYTES = SLOT_BYTES * SLOTS;
const FORMAT = 'sealflow-loss';
const VERSION = 1;
const CHECK_HEX = 16;

export interface LedgerState {
  readonly seq: number;
  readonly sinceMs: number;
  readonly updatedMs: number;
  readonly counts: LossCounts;
}

/** The newest valid state and the slot it is in, or why there is none. */
export type LedgerRead = { readonly state: LedgerState; readonly slot: number; readonly problem: null } | { readonly state: null; readonly problem: 'missing' | 'damaged' | 'unreadable'; readonly code?: string };

function check(line: string): string {
  return createHash('sha256').update(line).digest('hex').slice(0, CHECK_HEX);
}

function countsOf(v: unknown): Record<string, number> | null {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return null;
  const out: Record<string, number> = {};
  for (const [k, n] of Object.entries(v as Record<string, unknown>)) {
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return null;
    out[k] = n;
  }
  return out;
}

/** One slot's state, or null when it is empty, torn or not ours. */
function parseSlot(bytes: Buffer): LedgerState | null {
  const text = bytes.toString('utf8').trimEnd();
  if (!text.startsWith('{')) return null;
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return null;
  }
  const { check: stated, ...body } = doc;
  if (typeof stated !== 'string' || stated !== check(JSON.stringify(body))) return null;
  if (body.ledger !== FORMAT || body.version !== VERSION) return null;
  const { seq, sinceMs, updatedMs } = body;
  const records = countsOf(body.records);
  const packets = countsOf(body.packets);
  if (typeof seq !== 'number' || typeof sinceMs !== 'number' || typeof updatedMs !== 'number' || records === null || packets === null) return null;
  return { seq, sinceMs, updatedMs, counts: { records, packets } };
}

function slotBytes(s: LedgerState): Buffer {
  const body = { ledger: FORMAT, version: VERSION, seq: s.seq, sinceMs: s.sinceMs, updatedMs: s.updatedMs, records: s.counts.records, packets: s.counts.packets };
  const json = JSON.stringify(body);
  const line = `${json.slice(0, -1)},"check":"${check(json)}"}`;
  if (Buffer.byteLength(line) > SLOT_BYTES - 1) throw new RangeError(`loss ledger state of ${Buffer.byteLength(line)} bytes does not fit a ${SLOT_BYTES}-byte slot`);
  const out = Buffer.alloc(SLOT_BYTES, 0x20);
  out.write(line, 0, 'utf8');
  out[SLOT_BYTES - 1] = 0x0a;
  return out;
}

/** Reads the newest valid slot. Never throws. */
export function readLedgerFile(path: string): LedgerRead {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    return code === 'ENOENT' ? { state: null, problem: 'missing' } : { state: null, problem: 'unreadable', code };
  }
  let best: LedgerState | null = null;
  let slot = 0;
  for (let i = 0; i < SLOTS; i++) {
    const s = bytes.length >= (i + 1) * SLOT_BYTES ? parseSlot(bytes.subarray(i * SLOT_BYTES, (i + 1) * SLOT_BYTES)) : null;
    if (s !== null && (best === null || s.seq > best.seq)) {
      best = s;
      slot = i;
    }
  }
  return best === null ? { state: null, problem: 'damaged' } : { state: best, slot, problem: null };
}

/**
 * The writer: created at full size (temp file, fsync, rename) holding `initial` in both slots;
 * afterwards each write() overwrites the older slot in place. Throws what the filesystem throws
 * (the caller counts on, and retries).
 */
export class LedgerFile {
  private fd: number | null;
  /** Slot holding the newest state. */
  private newest = 0;

  private constructor(
    readonly path: string,
    fd: number,
    private seq: number,
    newest: number,
  ) {
    this.fd = fd;
    this.newest = newest;
  }

  /** Opens an existing file, as `read` found it, for in-place writes. */
  static open(path: string, read: { readonly state: LedgerState; readonly slot: number }): LedgerFile {
    if (statSync(path).size < FILE_BYTES) throw new RangeError(`${path} is shorter than a loss ledger file`);
    return new LedgerFile(path, openSync(path, 'r+'), read.state.seq, read.slot);
  }

  /** Creates (or replaces) the file at its full size with `initial` in both slots. */
  static create(path: string, initial: Omit<LedgerState, 'seq'>): LedgerFile {
    const tmp = `${path}.${process.pid}.${threadId}.tmp`;
    const slot = slotBytes({ ...initial, seq: 0 });
    try {
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeSync(fd, Buffer.concat([slot, slot]), 0, FILE_BYTES, 0);
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, path);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // nothing to remove
      }
      throw err;
    }
    return new LedgerFile(path, openSync(path, 'r+'), 0, 0);
  }

  /** Overwrites the older slot with `state` (seq is assigned here). No fsync: see sync(). */
  write(state: Omit<LedgerState, 'seq'>): void {
    if (this.fd === null) throw new Error('loss ledger file is closed');
    const slot = 1 - this.newest;
    const seq = this.seq + 1;
    writeSync(this.fd, slotBytes({ ...state, seq }), 0, SLOT_BYTES, slot * SLOT_BYTES);
    this.seq = seq;
    this.newest = slot;
  }

  /** Flushes the file to the disk (at stop; between, a process crash keeps what the page cache has). */
  sync(): void {
    if (this.fd !== null) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
  }
}

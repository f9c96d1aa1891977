import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { threadId } from 'node:worker_threads';
import { MAC_BYTES, equalBytes, mac } from './spool-crypto.js';

/**
 * The spool's high-water mark file (`spool.hwm`, next to the database): the highest batch id
 * known durable at the last completed checkpoint, MAC'd with a key derived from the spool key.
 * The database can be rolled back (an older copy restored) without the key; this file, written
 * outside it, lets the next open or `spool verify` notice: a database whose batch sequence is
 * below the mark is older than a state it already reached.
 *
 * Layout: "SFHW1" ‖ spool id (16) ‖ batch id (u64 BE) ‖ BLAKE2b-256 MAC of the preceding bytes.
 * Written by temp file + rename, so a reader sees the old or the new mark, never a torn one.
 */
const MAGIC = Buffer.from('SFHW1');
const SPOOL_ID_BYTES = 16;
const BODY_BYTES = MAGIC.length + SPOOL_ID_BYTES + 8;

export type HighWaterMark = { readonly seq: number; readonly problem: null } | { readonly seq: null; readonly problem: string };

export class HighWaterMarkFile {
  constructor(
    readonly path: string,
    private readonly key: Uint8Array,
    private readonly spoolId: Uint8Array,
  ) {}

  read(): HighWaterMark {
    let bytes: Buffer;
    try {
      bytes = readFileSync(this.path);
    } catch {
      return { seq: null, problem: 'missing (no checkpoint recorded yet, or removed)' };
    }
    if (bytes.length !== BODY_BYTES + MAC_BYTES || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return { seq: null, problem: 'malformed' };
    if (!equalBytes(mac(this.key, bytes.subarray(0, BODY_BYTES)), bytes.subarray(BODY_BYTES))) {
      return { seq: null, problem: 'MAC does not verify (altered, or from another spool)' };
    }
    if (!equalBytes(bytes.subarray(MAGIC.length, MAGIC.length + SPOOL_ID_BYTES), this.spoolId)) return { seq: null, problem: 'belongs to another spool' };
    return { seq: Number(bytes.readBigUInt64BE(MAGIC.length + SPOOL_ID_BYTES)), problem: null };
  }

  /** Replaces the mark atomically. Throws on I/O errors (the temp file is removed). */
  write(seq: number): void {
    const body = Buffer.alloc(BODY_BYTES);
    MAGIC.copy(body, 0);
    body.set(this.spoolId, MAGIC.length);
    body.writeBigUInt64BE(BigInt(seq), MAGIC.length + SPOOL_ID_BYTES);
    const tmp = `${this.path}.${process.pid}.${threadId}.tmp`;
    try {
      writeFileSync(tmp, Buffer.concat([body, mac(this.key, body)]), { mode: 0o600 });
      renameSync(tmp, this.path);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // nothing to remove
      }
      throw err;
    }
  }
}

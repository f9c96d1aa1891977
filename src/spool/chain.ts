import { batchRecordCount } from '../batch/decoder.js';
import { decompressBatch, isSealFormat } from './compression.js';
import { HighWaterMarkFile } from './high-water-mark.js';
import type { Keyring } from './keyring.js';
import { NONCE_BYTES, TAG_BYTES, equalBytes, mac, open as openSeal, randomBytes, seal, u64be } from './spool-crypto.js';
import { SCAN_PAGE_ROWS, type BatchRow, type MetaRow, type SpoolStore } from './store.js';
import { BATCH_STATE_ACKED } from './spool-schema.js';

/**
 * The hash chain (invariants 4 and 5 of spool.ts): how a batch is sealed into its place and
 * opened from it, the anchor that stands for batches removed from the front, the tombstones of
 * batches acknowledged out of order, and the high-water mark file that catches a database
 * rolled back to an older copy.
 */

export const SPOOL_HWM_FILE = 'spool.hwm';
const SPOOL_ID_BYTES = 16;
/** Size of the associated data of a sealed batch. */
const AD_BYTES = 1 + 16 + 8 + 8 + TAG_BYTES;
/** The "previous tag" of the first batch ever. */
export const ZERO_TAG = new Uint8Array(TAG_BYTES);
/** Domain separation of the two MACs keyed by the anchor key: a tombstone's MAC is never a valid anchor MAC. */
const MAC_DOMAIN_ANCHOR = 0x41;
const MAC_DOMAIN_ACK = 0x4b;

/** Associated data of batch `id`: format ‖ spool id ‖ batch id ‖ epoch ‖ previous tag. */
export function batchAd(format: number, spoolId: Uint8Array, id: number, epoch: number, prevTag: Uint8Array): Uint8Array {
  const ad = new Uint8Array(AD_BYTES);
  ad[0] = format;
  ad.set(spoolId, 1);
  u64be(ad, 1 + SPOOL_ID_BYTES, id);
  u64be(ad, 1 + SPOOL_ID_BYTES + 8, epoch);
  ad.set(prevTag, 1 + SPOOL_ID_BYTES + 16);
  return ad;
}

function chainMessage(domain: number, spoolId: Uint8Array, id: number, tag: Uint8Array): Uint8Array {
  const m = new Uint8Array(1 + SPOOL_ID_BYTES + 8 + TAG_BYTES);
  m[0] = domain;
  m.set(spoolId, 1);
  u64be(m, 1 + SPOOL_ID_BYTES, id);
  m.set(tag, 1 + SPOOL_ID_BYTES + 8);
  return m;
}

/** MAC of the chain anchor: the last batch removed from the front. */
export function anchorMac(anchorKey: Uint8Array, spoolId: Uint8Array, id: number, tag: Uint8Array): Uint8Array {
  return mac(anchorKey, chainMessage(MAC_DOMAIN_ANCHOR, spoolId, id, tag));
}

/** MAC of a tombstone: batch `id` (with `tag`) was acknowledged by a key holder. */
function ackMac(anchorKey: Uint8Array, spoolId: Uint8Array, id: number, tag: Uint8Array): Uint8Array {
  return mac(anchorKey, chainMessage(MAC_DOMAIN_ACK, spoolId, id, tag));
}

export interface SealedBatch {
  readonly nonce: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

export interface Rollback {
  readonly expectedAtLeast: number;
  readonly found: number;
}

export class Chain {
  private readonly spoolId: Uint8Array;
  private readonly hwm: HighWaterMarkFile;
  /** The highest batch id written to the mark file by this instance (or read from it at open). */
  private hwmWritten = 0;
  private hwmSeen = false;
  /** A rollback detected at open (or recorded by an earlier open), else null. */
  rollback: Rollback | null = null;
  /** What is wrong with spool.hwm (missing, unreadable, bad MAC), from the last read. */
  hwmProblem: string | null = null;

  constructor(
    private readonly store: SpoolStore,
    private readonly keyring: Keyring,
    hwmPath: string,
  ) {
    this.spoolId = keyring.spoolId;
    this.hwm = new HighWaterMarkFile(hwmPath, keyring.hwmKey, keyring.spoolId);
  }

  // ---------------------------------------------------------------- sealing and opening

  /** The id and tag a new batch chains to: the newest batch, or the anchor when none is left. Inside the append transaction. */
  tail(): { readonly prevId: number; readonly prevTag: Uint8Array } {
    const prev = this.store.q('SELECT id, tag FROM batches ORDER BY id DESC LIMIT 1').get() as { id: number; tag: Uint8Array } | undefined;
    if (prev !== undefined) return { prevId: prev.id, prevTag: prev.tag };
    const meta = this.store.meta();
    return { prevId: meta.anchor_id, prevTag: meta.anchor_tag };
  }

  /** Seals compressed batch `id` (seal format `format`) with `key` into its place after `prevTag`. */
  seal(key: Uint8Array, format: number, id: number, epoch: number, prevTag: Uint8Array, compressed: Uint8Array): SealedBatch {
    const nonce = randomBytes(NONCE_BYTES);
    const sealed = seal(key, nonce, compressed, batchAd(format, this.spoolId, id, epoch, prevTag));
    return { nonce, ciphertext: sealed.ciphertext, tag: sealed.tag };
  }

  /** Decrypts and decompresses one batch to its batch-format bytes, checking its place and record count; a string says why it failed. */
  open(row: BatchRow, prevTag: Uint8Array): Uint8Array | string {
    if (!isSealFormat(row.format)) return `unknown batch format ${row.format}`;
    if (row.payload === null) return 'sealed payload is missing';
    const key = this.keyring.epochKey(row.epoch);
    if (key === null) return `data key of epoch ${row.epoch} is missing`;
    const plain = openSeal(key, row.nonce, row.payload, row.tag, batchAd(row.format, this.spoolId, row.id, row.epoch, prevTag));
    if (plain === null) return 'authentication failed (batch altered or moved, or its predecessor removed or altered)';
    let bytes: Uint8Array;
    let count: number;
    try {
      bytes = decompressBatch(row.format, plain);
      count = batchRecordCount(bytes);
    } catch (err) {
      return `authenticated but undecodable: ${(err as Error).message}`;
    }
    // The header's count against the stored one; decodeBatch checks that exactly `count` records fill the batch.
    if (count !== row.records) return `record count ${count} differs from the stored ${row.records}`;
    return bytes;
  }

  // ---------------------------------------------------------------- anchor and tombstones

  anchorValid(meta: MetaRow): boolean {
    return equalBytes(anchorMac(this.keyring.anchorKey, this.spoolId, meta.anchor_id, meta.anchor_tag), meta.anchor_mac);
  }

  checkAnchor(meta: MetaRow): void {
    if (!this.anchorValid(meta)) {
      this.store.logger.error({ event: 'spool.anchor_invalid', anchorId: meta.anchor_id }, 'the spool chain anchor fails its MAC: batches were removed from the front of the spool without the key');
    }
  }

  /** Removes every row up to batch `id` (with `tag`) from the front and makes it the anchor. Inside a transaction. */
  removeThrough(id: number, tag: Uint8Array): void {
    this.store.q('DELETE FROM batches WHERE id <= ?').run(id);
    this.store.q('DELETE FROM payloads WHERE id <= ?').run(id);
    this.store.q('UPDATE meta SET anchor_id = ?, anchor_tag = ?, anchor_mac = ? WHERE id = 1').run(id, tag, anchorMac(this.keyring.anchorKey, this.spoolId, id, tag));
  }

  /** Turns batch `id` into a tombstone: payload deleted, tag kept for its successor, ack MAC added. Inside a transaction. */
  tombstone(id: number, tag: Uint8Array): void {
    this.store.q('UPDATE batches SET state = 2, park_reason = NULL, ack_mac = ? WHERE id = ?').run(ackMac(this.keyring.anchorKey, this.spoolId, id, tag), id);
    this.store.q('DELETE FROM payloads WHERE id = ?').run(id);
  }

  /** Deletes acknowledged rows at the front of the chain and moves the anchor past them. Inside a transaction. */
  compactFront(): void {
    // Only tombstones whose ack MAC verifies are removed: a row turned into a tombstone
    // without the key stays, and verify() reports it.
    const page = this.store.q('SELECT id, state, tag, ack_mac FROM batches WHERE id > ? ORDER BY id LIMIT ?');
    let last: { id: number; tag: Uint8Array } | null = null;
    let after = 0;
    scan: for (;;) {
      const rows = page.all(after, SCAN_PAGE_ROWS) as { id: number; state: number; tag: Uint8Array; ack_mac: Uint8Array | null }[];
      if (rows.length === 0) break;
      for (const row of rows) {
        if (row.state !== BATCH_STATE_ACKED || !this.ackValid(row.id, row.tag, row.ack_mac)) break scan;
        last = { id: row.id, tag: row.tag };
        after = row.id;
      }
    }
    if (last !== null) this.removeThrough(last.id, last.tag);
  }

  ackValid(id: number, tag: Uint8Array, mac: Uint8Array | null): boolean {
    return mac !== null && equalBytes(ackMac(this.keyring.anchorKey, this.spoolId, id, tag), mac);
  }

  // ---------------------------------------------------------------- rollback and the high-water mark

  /** Reads spool.hwm (see high-water-mark.ts); records what is wrong with it in hwmProblem. */
  readHwm(): number | null {
    const mark = this.hwm.read();
    this.hwmProblem = mark.problem;
    return mark.seq;
  }

  /** The highest batch id recorded in the mark file so far. */
  get hwmMark(): number {
    return this.hwmWritten;
  }

  /** Records `seq` (known durable) in the mark file when it is higher than the last one. */
  writeHwm(seq: number): void {
    if (seq <= this.hwmWritten) return;
    try {
      this.hwm.write(seq);
      this.hwmWritten = seq;
      if (!this.hwmSeen) {
        // From now on a missing mark file is itself a finding (see verify()).
        this.store.q('UPDATE meta SET hwm_seen = 1 WHERE id = 1').run();
        this.hwmSeen = true;
      }
    } catch (err) {
      this.store.rateLog.log('warn', 'hwm', { event: 'spool.hwm_write_failed', err: (err as Error).message }, 'cannot write the spool high-water mark');
    }
  }

  /**
   * At open: compares the batch id sequence with the mark file. A database older than its mark
   * was restored from an older copy: logged, recorded in meta, and (unless read-only) the
   * sequence moves past the mark so ids stay unique (invariant 4).
   */
  checkRollback(meta: MetaRow): void {
    this.hwmSeen = meta.hwm_seen === 1;
    if (meta.rollback_expected !== null && meta.rollback_found !== null) {
      this.rollback = { expectedAtLeast: meta.rollback_expected, found: meta.rollback_found };
    }
    const hwm = this.readHwm();
    if (hwm === null) {
      if (this.hwmSeen) this.store.logger.error({ event: 'spool.hwm_missing', problem: this.hwmProblem }, 'the spool high-water mark file is missing or invalid: rollback detection is blind until the next checkpoint');
      return;
    }
    this.hwmWritten = hwm;
    const seq = this.store.sequence('batches');
    if (seq >= hwm) return;
    this.rollback = { expectedAtLeast: hwm, found: seq };
    this.store.logger.error(
      { event: 'spool.rollback_detected', expectedAtLeast: hwm, found: seq },
      'the spool database is older than its high-water mark: an older copy was restored; batches committed after it are missing and acknowledged ones may be sent again',
    );
    if (this.store.readOnly) return;
    // Keep ids unique: continue after the highest id ever committed, and record the incident.
    this.store.db.transaction(() => {
      const updated = this.store.q("UPDATE sqlite_sequence SET seq = ? WHERE name = 'batches'").run(hwm);
      if (updated.changes === 0) this.store.q("INSERT INTO sqlite_sequence (name, seq) VALUES ('batches', ?)").run(hwm);
      this.store.q('UPDATE meta SET rollback_expected = ?, rollback_found = ? WHERE id = 1').run(hwm, seq);
    }).immediate();
  }
}

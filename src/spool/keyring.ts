import { createHash } from 'node:crypto';
import { SpoolError, SpoolErrorCode } from '../flow/errors.js';
import { KDF_ANCHOR, KDF_DECODER_STATE, KDF_HWM, Kek, equalBytes, randomKey, subkey, u64be, wipe } from './spool-crypto.js';
import { MINUTE_MS, type MetaRow, type SpoolStore } from './store.js';

/**
 * The keyring (invariant 6 of spool.ts): the key-encryption keys (KEKs), the spool key they
 * wrap and the keys derived from it, and one random data key per epoch, stored only wrapped
 * by the current KEK. An epoch that has ended and holds no live batch loses its key row
 * (crypto-shredding): its batches are then unrecoverable from any disk remnant.
 */

const SPOOL_ID_BYTES = 16;
/** An ended epoch is shredded only this long after its end, so an appender racing the clock never loses its key. */
const SHRED_GRACE_MINUTES = 2;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

interface ShredRow {
  id: number;
  wrapped: Uint8Array;
  created_min: number;
  ends_min: number;
}

interface EpochRow {
  id: number;
  kek_fp: Uint8Array;
  wrapped: Uint8Array;
  ends_min: number;
}

export interface CurrentEpoch {
  readonly id: number;
  readonly key: Uint8Array;
  readonly endsAtMs: number;
}

/** Associated data of the wrapped spool key. */
export function spoolKeyAd(spoolId: Uint8Array): Uint8Array {
  return Buffer.concat([Buffer.from('sealflow spool key\0'), spoolId]);
}

function epochKeyAd(spoolId: Uint8Array, epoch: number): Uint8Array {
  const ad = new Uint8Array(SPOOL_ID_BYTES + 8);
  ad.set(spoolId, 0);
  u64be(ad, SPOOL_ID_BYTES, epoch);
  return Buffer.concat([Buffer.from('sealflow epoch key\0'), ad]);
}

export class Keyring {
  readonly spoolId: Uint8Array;
  /** The spool key was wrapped by a previous KEK (a rotation): rewrapSpoolKey() moves it to the current one. */
  readonly wrappedByOldKek: boolean;
  /** MACs the chain anchor and tombstones (chain.ts). */
  readonly anchorKey: Uint8Array;
  /** MACs the high-water mark file. */
  readonly hwmKey: Uint8Array;
  /** Seals the decoder state blob. */
  readonly stateKey: Uint8Array;
  private readonly keks: readonly Kek[];
  /** The KEK new wraps use (options.kek); the others only unwrap. */
  private readonly currentKek: Kek;
  private readonly spoolKey: Uint8Array;
  private readonly epochKeys = new Map<number, Uint8Array>();
  private current: CurrentEpoch | null = null;

  /**
   * Unwraps the spool key with whichever configured KEK wrapped it and every epoch key.
   * Throws SpoolError(ERR_SPOOL_KEY) naming the fix when none matches or a key is corrupted.
   */
  constructor(
    private readonly store: SpoolStore,
    meta: MetaRow,
    kekBytes: readonly Uint8Array[],
    private readonly epochMs: number,
    /** Called after keys were shredded (they leave the WAL only with the next TRUNCATE checkpoint). */
    private readonly onShredded: () => void,
  ) {
    const spoolId = new Uint8Array(meta.spool_id);
    const keks = kekBytes.map((k) => new Kek(k, spoolId));
    const currentKek = keks[0];
    if (currentKek === undefined) throw new SpoolError(SpoolErrorCode.Key, 'no key-encryption key given');
    const wrapper = keks.find((k) => equalBytes(k.fingerprint, meta.kek_fp));
    if (wrapper === undefined) {
      throw new SpoolError(
        SpoolErrorCode.Key,
        `the key-encryption key does not match the one this spool (${store.path}) is encrypted with: set the spool KEK (SEALFLOW_SPOOL_KEK, _FILE or _COMMAND) to the original key, or pass it as a previous KEK during a rotation; the spool was left untouched`,
        { path: store.path },
      );
    }
    const spoolKey = wrapper.unwrap(meta.spool_key, spoolKeyAd(spoolId));
    if (spoolKey === null) {
      throw new SpoolError(SpoolErrorCode.Key, `the wrapped spool key in ${store.path} is corrupted (the KEK matches but the key does not unwrap); restore the database from a backup — the spool was left untouched`, { path: store.path });
    }
    this.spoolId = spoolId;
    this.keks = keks;
    this.currentKek = currentKek;
    this.spoolKey = spoolKey;
    this.anchorKey = subkey(spoolKey, KDF_ANCHOR);
    this.hwmKey = subkey(spoolKey, KDF_HWM);
    this.stateKey = subkey(spoolKey, KDF_DECODER_STATE);
    this.wrappedByOldKek = wrapper !== currentKek;
    const rows = store.q('SELECT id, kek_fp, wrapped, ends_min FROM epochs ORDER BY id').all() as EpochRow[];
    for (const row of rows) this.epochKeys.set(row.id, this.unwrapEpoch(row));
  }

  private kekFor(fp: Uint8Array): Kek | undefined {
    return this.keks.find((k) => equalBytes(k.fingerprint, fp));
  }

  private unwrapEpoch(row: EpochRow): Uint8Array {
    const kek = this.kekFor(row.kek_fp);
    if (kek === undefined) {
      throw new SpoolError(
        SpoolErrorCode.Key,
        `the data key of epoch ${row.id} in ${this.store.path} is wrapped by a key-encryption key that is not configured: pass that KEK as a previous KEK (or run 'sealflow rekey' with it); the spool was left untouched`,
        { epoch: row.id },
      );
    }
    const key = kek.unwrap(row.wrapped, epochKeyAd(this.spoolId, row.id));
    if (key === null) {
      throw new SpoolError(SpoolErrorCode.Key, `the wrapped data key of epoch ${row.id} in ${this.store.path} is corrupted (it does not unwrap with the matching KEK); restore the database from a backup — the spool was left untouched`, { epoch: row.id });
    }
    return key;
  }

  /** The data key of `epoch`, loading epochs created by another instance; null when it is gone (shredded) or broken. */
  epochKey(epoch: number): Uint8Array | null {
    const cached = this.epochKeys.get(epoch);
    if (cached !== undefined) return cached;
    const row = this.store.q('SELECT id, kek_fp, wrapped, ends_min FROM epochs WHERE id = ?').get(epoch) as EpochRow | undefined;
    if (row === undefined) return null;
    try {
      const key = this.unwrapEpoch(row);
      this.epochKeys.set(epoch, key);
      return key;
    } catch (err) {
      this.store.rateLog.log('error', 'epoch-key', { event: 'spool.epoch_key_unusable', epoch, err: (err as Error).message }, 'epoch data key unusable');
      return null;
    }
  }

  /** The epoch to seal with now: the current one while it lasts and its key row exists, else a new one. Runs inside the append transaction. */
  ensureEpoch(now: number): CurrentEpoch {
    const q = (sql: string) => this.store.q(sql);
    const cur = this.current;
    if (cur !== null && now < cur.endsAtMs && q('SELECT 1 FROM epochs WHERE id = ?').get(cur.id) !== undefined) return cur;
    if (cur !== null) q('UPDATE epochs SET ends_min = min(ends_min, ?) WHERE id = ?').run(Math.floor(now / MINUTE_MS), cur.id);
    const kek = this.currentKek;
    const id = this.store.sequence('epochs') + 1;
    const key = randomKey();
    const endsAtMs = now + this.epochMs;
    q('INSERT INTO epochs (id, kek_fp, wrapped, created_min, ends_min) VALUES (?, ?, ?, ?, ?)')
      .run(id, kek.fingerprint, kek.wrap(key, epochKeyAd(this.spoolId, id)), Math.floor(now / MINUTE_MS), Math.ceil(endsAtMs / MINUTE_MS));
    this.epochKeys.set(id, key);
    this.current = { id, key, endsAtMs };
    return this.current;
  }

  /**
   * After a rolled-back append: an epoch created inside it no longer exists, so its cached key
   * is forgotten (and wiped) and the next append makes and wraps a new one. Otherwise another
   * spool instance could create an epoch with the same id and its own key, and this one would
   * seal with the stale key. If the check itself fails, only the current-epoch cache is dropped.
   */
  forgetRolledBackEpoch(): void {
    const cur = this.current;
    if (cur === null) return;
    let gone: boolean;
    try {
      gone = this.store.q('SELECT 1 FROM epochs WHERE id = ?').get(cur.id) === undefined;
    } catch {
      this.current = null;
      return;
    }
    if (!gone) return;
    this.current = null;
    this.epochKeys.delete(cur.id);
    wipe(cur.key);
  }

  /** This appender will not use its epoch again (close): it may be shredded as soon as it is empty. */
  endCurrentEpoch(now: number): void {
    if (this.current === null) return;
    this.store.q('UPDATE epochs SET ends_min = min(ends_min, ?) WHERE id = ?').run(Math.floor(now / MINUTE_MS), this.current.id);
  }

  /** Destroys the keys of ended epochs that hold no live batch (crypto-shredding). Runs inside a transaction. */
  shredEmptyEpochs(now: number): void {
    const cutoff = Math.floor(now / MINUTE_MS) - SHRED_GRACE_MINUTES;
    const rows = this.store.q('SELECT id, wrapped, created_min, ends_min FROM epochs WHERE ends_min < ? AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.epoch = epochs.id AND batches.state != 2)')
      .all(cutoff) as ShredRow[];
    this.shred(rows.filter((r) => this.current?.id !== r.id));
  }

  /**
   * Destroys the keys of `epochs` now, without the grace period, where they hold no live
   * batch: the epochs of discarded attestation canaries (SpoolReader.discardHeld), which no
   * appender uses any more. Runs inside a transaction; returns the epochs shredded.
   */
  shredNow(epochs: readonly number[]): number[] {
    const pick = this.store.q('SELECT id, wrapped, created_min, ends_min FROM epochs WHERE id = ? AND NOT EXISTS (SELECT 1 FROM batches WHERE batches.epoch = epochs.id AND batches.state != 2)');
    const rows = epochs.map((e) => pick.get(e) as ShredRow | undefined).filter((r): r is ShredRow => r !== undefined && this.current?.id !== r.id);
    this.shred(rows);
    return rows.map((r) => r.id);
  }

  private shred(rows: readonly ShredRow[]): void {
    if (rows.length === 0) return;
    const del = this.store.q('DELETE FROM epochs WHERE id = ?');
    for (const row of rows) {
      const { id } = row;
      del.run(id);
      const key = this.epochKeys.get(id);
      if (key !== undefined) wipe(key);
      this.epochKeys.delete(id);
      this.store.audit.record({ kind: 'epoch.shredded', epoch: id, createdMin: row.created_min, endsMin: row.ends_min, wrappedKeyDigest: createHash('sha256').update(row.wrapped).digest('hex') });
      this.store.logger.info({ event: 'spool.epoch_shredded', epoch: id }, 'epoch data key destroyed');
    }
    this.store.q('UPDATE meta SET shredded_epochs = shredded_epochs + ? WHERE id = 1').run(rows.length);
    this.onShredded();
  }

  /** Wraps the spool key under the current KEK (a rotation begun by configuring a new KEK with the old one as previous). */
  rewrapSpoolKey(): void {
    this.store.db.transaction(() => {
      const from = this.store.meta().kek_fp;
      this.writeSpoolKey();
      this.store.audit.record({ kind: 'kek.rotated', from: [hex(from)], to: hex(this.currentKek.fingerprint), epochs: 0 });
    }).immediate();
  }

  private writeSpoolKey(): void {
    const kek = this.currentKek;
    this.store.q('UPDATE meta SET kek_fp = ?, spool_key = ? WHERE id = 1').run(kek.fingerprint, kek.wrap(this.spoolKey, spoolKeyAd(this.spoolId)));
  }

  /**
   * Rewraps the spool key and every epoch key under the current KEK, so the previous KEKs can
   * be retired. Returns the number of epoch keys rewrapped.
   */
  rewrapAll(): number {
    const kek = this.currentKek;
    let n = 0;
    this.store.db.transaction(() => {
      const from = new Set([hex(this.store.meta().kek_fp)]);
      this.writeSpoolKey();
      const rows = this.store.q('SELECT id, kek_fp, wrapped, ends_min FROM epochs').all() as EpochRow[];
      const update = this.store.q('UPDATE epochs SET kek_fp = ?, wrapped = ? WHERE id = ?');
      for (const row of rows) {
        from.add(hex(row.kek_fp));
        const key = this.epochKeys.get(row.id) ?? this.unwrapEpoch(row);
        update.run(kek.fingerprint, kek.wrap(key, epochKeyAd(this.spoolId, row.id)), row.id);
        n++;
      }
      this.store.audit.record({ kind: 'kek.rotated', from: [...from].sort(), to: hex(kek.fingerprint), epochs: n });
    }).immediate();
    return n;
  }

  /** Wipes every key from memory. */
  destroy(): void {
    for (const key of this.epochKeys.values()) wipe(key);
    this.epochKeys.clear();
    for (const k of [this.spoolKey, this.anchorKey, this.hwmKey, this.stateKey]) wipe(k);
    for (const k of this.keks) k.destroy();
    this.current = null;
  }
}

import type { FlowRecord } from '../flow/flow-record.js';
import type { PrivacyEventSink } from '../flow/privacy.js';
import type { RecordSink } from '../flow/pipeline.js';
import { CryptoPan } from './crypto-pan.js';
import { keyFingerprint, periodKey, periodSeconds, periodStart, type PseudonymKeyStamp, type Rotation } from './key-schedule.js';
import { MAX_WALK_STEPS, type PseudonymPolicy } from './policy.js';

/**
 * The ingest worker's pseudonymiser: the policy (policy.ts) applied with the key in force
 * (key-schedule.ts) to the address fields of every record before it is written to a batch —
 * on the FlowRecord path by PseudonymizeStage, on the fused path by the generated writers
 * calling a4()/a6() (src/ingest-worker/fused-writer.ts). Flow filters run before it, on real
 * addresses.
 *
 * Cost: a Crypto-PAn computation is one AES-ECB call over 16-byte blocks (~1–2 µs for IPv4,
 * more for IPv6), so results are cached per period: an open-addressing table per family in
 * typed arrays, address → result (pseudonym, or the address itself when the policy keeps it),
 * emptied at each rotation by a generation number. Only this thread's memory holds it; it is
 * never written anywhere. A hit costs a hash, one or two compares and a load.
 *
 * Invariants: a4/a6 never return the real address of one the policy pseudonymises (an address
 * whose walk fails is removed: −1 / null, counted as `unmappable`); the key in force changes
 * only through rotate(), which the caller invokes between batches (the batch is stamped with
 * `stamp` when it opens).
 */

export interface PseudonymizerOptions {
  readonly policy: PseudonymPolicy;
  /** The master key (32 bytes); kept for deriving each period's key, wiped by destroy(). */
  readonly masterKey: Uint8Array;
  readonly rotation: Rotation;
  /** Period length for rotation 'epoch'. */
  readonly epochSeconds: number;
  /** Cache slots per address family (rounded up to a power of two). */
  readonly cacheEntries: number;
  readonly events?: PrivacyEventSink;
}

export interface PseudonymizerStats {
  /** Addresses replaced by their pseudonym. */
  readonly pseudonymized: number;
  /** Addresses in a listed field that the policy keeps in clear. */
  readonly kept: number;
  /** Addresses removed because their walk did not end (see policy.ts). */
  readonly unmappable: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
  readonly rotations: number;
  /** The key in force: master key fingerprint (hex), period start and length. */
  readonly keyFingerprint: string;
  readonly periodStartS: number;
  readonly periodLengthS: number;
}

/** Probes per lookup before a miss evicts the home slot. */
const PROBES = 4;
/** Fibonacci hashing multiplier (2^32 / φ). */
const HASH_MUL = 0x9e3779b1;
/** a6at results besides a slot index. */
export const A6_KEPT = -1;
export const A6_REMOVED = -2;
/** Slot kinds. */
const KIND_KEPT = 1;
const KIND_PSEUDONYM = 2;

export class Pseudonymizer {
  readonly policy: PseudonymPolicy;
  readonly #master: Uint8Array;
  readonly #fingerprint: Uint8Array;
  readonly #fingerprintHex: string;
  readonly #lengthS: number;
  readonly #events: PrivacyEventSink | undefined;
  #cp: CryptoPan | null = null;
  #stamp: PseudonymKeyStamp;
  #periodEndMs = 0;

  // The caches: a slot is valid when its generation equals #gen (rotation bumps #gen).
  readonly #shift: number;
  readonly #mask: number;
  #gen = 1;
  readonly #k4: Uint32Array;
  readonly #v4: Uint32Array;
  readonly #g4: Uint32Array;
  readonly #t4: Uint8Array;
  readonly #k6: Uint32Array;
  /** IPv6 pseudonyms by slot, four big-endian words each (see a6at). */
  readonly v6words: Uint32Array;
  readonly #g6: Uint32Array;
  readonly #t6: Uint8Array;
  readonly #scratch6 = new Uint8Array(16);

  #pseudonymized = 0;
  #kept = 0;
  #unmappable = 0;
  #hits = 0;
  #misses = 0;
  #rotations = 0;

  constructor(options: PseudonymizerOptions, nowMs: number) {
    this.policy = options.policy;
    this.#master = Uint8Array.from(options.masterKey);
    this.#fingerprint = keyFingerprint(this.#master);
    this.#fingerprintHex = Buffer.from(this.#fingerprint).toString('hex');
    this.#lengthS = periodSeconds(options.rotation, options.epochSeconds);
    this.#events = options.events;
    const bits = Math.max(10, Math.ceil(Math.log2(Math.max(1, options.cacheEntries))));
    const n = 2 ** bits;
    this.#shift = 32 - bits;
    this.#mask = n - 1;
    this.#k4 = new Uint32Array(n);
    this.#v4 = new Uint32Array(n);
    this.#g4 = new Uint32Array(n);
    this.#t4 = new Uint8Array(n);
    this.#k6 = new Uint32Array(4 * n);
    this.v6words = new Uint32Array(4 * n);
    this.#g6 = new Uint32Array(n);
    this.#t6 = new Uint8Array(n);
    this.#stamp = { startS: 0, lengthS: this.#lengthS, fingerprint: this.#fingerprint };
    this.#enter(nowMs, 'start');
  }

  /** Which key pseudonymises now (stamped on each batch as it opens). */
  get stamp(): PseudonymKeyStamp {
    return this.#stamp;
  }

  /** When the key in force stops being in force (Infinity: never). */
  get periodEndMs(): number {
    return this.#periodEndMs;
  }

  /** Moves to the period containing `nowMs` if the current one has ended; true when the key changed (flush the open batch first). */
  rotate(nowMs: number): boolean {
    if (nowMs < this.#periodEndMs) return false;
    this.#enter(nowMs, 'rotation');
    this.#rotations++;
    return true;
  }

  #enter(nowMs: number, reason: 'start' | 'rotation'): void {
    const startS = periodStart(this.#lengthS, nowMs);
    const key = periodKey(this.#master, startS, this.#lengthS);
    this.#cp = new CryptoPan(key);
    key.fill(0);
    this.#stamp = { startS, lengthS: this.#lengthS, fingerprint: this.#fingerprint };
    this.#periodEndMs = this.#lengthS === 0 ? Infinity : (startS + this.#lengthS) * 1000;
    // Empties both caches at once (the generation), and overwrites the previous period's
    // addresses and pseudonyms: no mapping of an earlier period stays in memory.
    this.#gen = (this.#gen + 1) >>> 0 || 1;
    if (reason === 'rotation') this.#wipeMappings();
    this.#events?.({ kind: 'pseudonym_key.in_force', atMs: nowMs, fingerprint: this.#fingerprintHex, periodStartS: startS, periodLengthS: this.#lengthS, reason });
  }

  /** IPv4: the address to store for `a` (its pseudonym, or `a` when kept); −1 when it must be removed. */
  a4(a: number): number {
    const g = this.#g4;
    const k = this.#k4;
    const mask = this.#mask;
    const home = Math.imul(a, HASH_MUL) >>> this.#shift;
    for (let p = 0; p < PROBES; p++) {
      const j = (home + p) & mask;
      if (g[j] !== this.#gen) break;
      if (k[j] === a) {
        this.#hits++;
        if (this.#t4[j] === KIND_PSEUDONYM) this.#pseudonymized++;
        else this.#kept++;
        return this.#v4[j] ?? a;
      }
    }
    return this.#miss4(a >>> 0, home);
  }

  #miss4(a: number, home: number): number {
    this.#misses++;
    const out = this.#compute4(a);
    if (out < 0) return out;
    const j = this.#slot(this.#g4, home);
    this.#k4[j] = a;
    this.#v4[j] = out;
    this.#g4[j] = this.#gen;
    this.#t4[j] = out === a && this.policy.pseudonymizingEntryV4(a) < 0 ? KIND_KEPT : KIND_PSEUDONYM;
    if (this.#t4[j] === KIND_PSEUDONYM) this.#pseudonymized++;
    else this.#kept++;
    return out;
  }

  /** A free slot among the probes from `home`, else `home` itself (evicting it). */
  #slot(g: Uint32Array, home: number): number {
    for (let p = 0; p < PROBES; p++) {
      const j = (home + p) & this.#mask;
      if (g[j] !== this.#gen) return j;
    }
    return home;
  }

  #compute4(a: number): number {
    const policy = this.policy;
    const e = policy.pseudonymizingEntryV4(a);
    if (e < 0) return a;
    const fixed = policy.entries[e]?.prefix.length ?? 32;
    const cp = this.#cp;
    // Destroyed (stopping): nothing is stored in clear, the address is removed.
    if (cp === null) return -1;
    let y = cp.encryptV4(a, fixed);
    for (let step = 0; policy.matchV4(y) !== e; step++) {
      if (step >= MAX_WALK_STEPS) {
        this.#unmappable++;
        return -1;
      }
      y = cp.encryptV4(y, fixed);
    }
    return y;
  }

  /**
   * IPv6, for the fused writers: the address of the 16 bytes at `view[at]` (a packet). Returns
   * A6_KEPT (store the bytes as they are), A6_REMOVED, or a slot index i ≥ 0: the pseudonym is
   * `v6words[4i … 4i+3]` (big-endian words), valid until the next call (copy it out first).
   */
  a6at(view: DataView, at: number): number {
    return this.#lookup6(view.getUint32(at), view.getUint32(at + 4), view.getUint32(at + 8), view.getUint32(at + 12), null, view, at);
  }

  /** IPv6, for FlowRecords: the address to store for `a` (16 bytes): a new array with its pseudonym, or `a` itself when kept; null when it must be removed. */
  a6(a: Uint8Array): Uint8Array | null {
    const i = this.#lookup6(word(a, 0), word(a, 4), word(a, 8), word(a, 12), a, null, 0);
    if (i === A6_KEPT) return a;
    if (i === A6_REMOVED) return null;
    const out = new Uint8Array(16);
    const w = this.v6words;
    for (let k = 0; k < 4; k++) {
      const x = w[i * 4 + k] ?? 0;
      out[k * 4] = x >>> 24;
      out[k * 4 + 1] = x >>> 16;
      out[k * 4 + 2] = x >>> 8;
      out[k * 4 + 3] = x;
    }
    return out;
  }

  #lookup6(w0: number, w1: number, w2: number, w3: number, bytes: Uint8Array | null, view: DataView | null, at: number): number {
    const home = Math.imul(w0 ^ Math.imul(w1, 0x85ebca6b) ^ Math.imul(w2, 0xc2b2ae35) ^ Math.imul(w3, 0x27d4eb2f), HASH_MUL) >>> this.#shift;
    const g = this.#g6;
    const k = this.#k6;
    for (let p = 0; p < PROBES; p++) {
      const j = (home + p) & this.#mask;
      if (g[j] !== this.#gen) break;
      const o = j * 4;
      if (k[o] === w0 && k[o + 1] === w1 && k[o + 2] === w2 && k[o + 3] === w3) {
        this.#hits++;
        if (this.#t6[j] === KIND_PSEUDONYM) {
          this.#pseudonymized++;
          return j;
        }
        this.#kept++;
        return A6_KEPT;
      }
    }
    this.#misses++;
    const a = bytes ?? copy16(view, at);
    const out = this.#compute6(a);
    if (out === null) return A6_REMOVED;
    const j = this.#slot(g, home);
    const o = j * 4;
    k[o] = w0;
    k[o + 1] = w1;
    k[o + 2] = w2;
    k[o + 3] = w3;
    g[j] = this.#gen;
    if (out === a) {
      this.#t6[j] = KIND_KEPT;
      this.#kept++;
      return A6_KEPT;
    }
    this.#t6[j] = KIND_PSEUDONYM;
    const v = this.v6words;
    v[o] = word(out, 0);
    v[o + 1] = word(out, 4);
    v[o + 2] = word(out, 8);
    v[o + 3] = word(out, 12);
    this.#pseudonymized++;
    return j;
  }

  #compute6(a: Uint8Array): Uint8Array | null {
    const policy = this.policy;
    const e = policy.pseudonymizingEntryV6(a);
    if (e < 0) return a;
    const fixed = policy.entries[e]?.prefix.length ?? 128;
    const cp = this.#cp;
    if (cp === null) return null;
    const y = new Uint8Array(16);
    cp.encryptV6(a, y, fixed);
    for (let step = 0; policy.matchV6(y) !== e; step++) {
      if (step >= MAX_WALK_STEPS) {
        this.#unmappable++;
        return null;
      }
      this.#scratch6.set(y);
      cp.encryptV6(this.#scratch6, y, fixed);
    }
    return y;
  }

  /** Applies the policy to the listed address fields of `r`, in place. */
  apply(r: FlowRecord): void {
    for (const prop of this.policy.props) {
      const v = r[prop];
      if (v === null) continue;
      if (typeof v === 'number') {
        const out = this.a4(v);
        r[prop] = out < 0 ? null : out;
      } else r[prop] = this.a6(v);
    }
  }

  stats(): PseudonymizerStats {
    return {
      pseudonymized: this.#pseudonymized,
      kept: this.#kept,
      unmappable: this.#unmappable,
      cacheHits: this.#hits,
      cacheMisses: this.#misses,
      rotations: this.#rotations,
      keyFingerprint: this.#fingerprintHex,
      periodStartS: this.#stamp.startS,
      periodLengthS: this.#stamp.lengthS,
    };
  }

  /** Wipes the master key and forgets every mapping (the ingest worker's stop). Idempotent. */
  destroy(): void {
    this.#master.fill(0);
    this.#cp = null;
    this.#gen = (this.#gen + 1) >>> 0 || 1;
    this.#wipeMappings();
  }

  #wipeMappings(): void {
    this.v6words.fill(0);
    this.#v4.fill(0);
    this.#k4.fill(0);
    this.#k6.fill(0);
  }
}

/** The 16 bytes at view[at] as an array of their own (a cache miss on the fused path; the packet's buffer is reused). */
function copy16(view: DataView | null, at: number): Uint8Array {
  if (view === null) throw new Error('an IPv6 lookup needs the bytes or a view');
  return new Uint8Array(view.buffer, view.byteOffset + at, 16).slice();
}

function word(a: Uint8Array, i: number): number {
  return (((a[i] ?? 0) << 24) | ((a[i + 1] ?? 0) << 16) | ((a[i + 2] ?? 0) << 8) | (a[i + 3] ?? 0)) >>> 0;
}

/** The FlowRecord path's pseudonymisation stage (after the flow filter, before the batcher): records are changed in place, then passed on. */
export class PseudonymizeStage implements RecordSink {
  constructor(
    private readonly pz: Pseudonymizer,
    private readonly downstream: RecordSink,
  ) {}

  accept(records: readonly FlowRecord[]): void {
    for (const r of records) this.pz.apply(r);
    this.downstream.accept(records);
  }
}

/**
 * Export sequence tracking per (transport session, observation domain): gaps become an
 * estimate of lost records, reordering is tolerated, and a wild jump is believed only when a
 * second packet confirms it.
 *
 * What the 32-bit sequence counts differs per protocol: IPFIX data records (RFC 7011 §3.1),
 * NetFlow v9 export packets (RFC 3954 §5.1), NetFlow v5 flows, sFlow datagrams. The caller
 * passes the matching increment for each packet.
 *
 * Jump rule (RFC 7011 §11: sequence numbers are not authenticated over UDP): a packet far
 * ahead of or behind the expected value does not move the baseline by itself. It becomes a
 * candidate; the next packet confirms it when it continues from the candidate, and the
 * baseline moves then (an exporter restart or a long outage). A next packet that continues
 * the old baseline discards the candidate, so one spoofed or corrupted packet cannot reset
 * tracking or hide real loss. A packet slightly behind is taken as reordered, unless the next
 * packet continues exactly from it (an exporter restart to sequence 0 looks like that).
 */

const SEQUENCE_MODULUS = 0x100000000;

export interface SequenceState {
  /** Sequence number the next packet should carry. */
  expected: number;
  /** False until the first packet set a baseline. */
  primed: boolean;
  /** The last packet's increment was unknown (e.g. data for unknown templates): rebaseline on the next. */
  resync: boolean;
  /** Where the stream would continue after an unconfirmed jump; -1 when none is pending. */
  candidate: number;
  /** Totals over the life of the state. */
  lost: number;
  reordered: number;
  jumps: number;
  resyncs: number;
}

export function newSequenceState(): SequenceState {
  return { expected: 0, primed: false, resync: false, candidate: -1, lost: 0, reordered: 0, jumps: 0, resyncs: 0 };
}

export interface SequenceTrackerOptions {
  /** Largest forward gap counted as loss; a bigger one is a jump that needs confirmation. */
  readonly maxGap: number;
  /** How far behind the expected value a packet may be and still count as merely reordered. */
  readonly reorderWindow: number;
}

/** IPFIX counts records: a 16M-record gap (~hundreds of thousands of lost messages) is the most we believe. */
export const IPFIX_SEQUENCE_OPTIONS: SequenceTrackerOptions = { maxGap: 1 << 24, reorderWindow: 1 << 16 };
/** NetFlow v9 and sFlow count packets/datagrams. */
export const PACKET_SEQUENCE_OPTIONS: SequenceTrackerOptions = { maxGap: 1 << 20, reorderWindow: 1 << 10 };
/** NetFlow v5 counts flows (≤ 30 per packet). */
export const FLOW_SEQUENCE_OPTIONS: SequenceTrackerOptions = { maxGap: 1 << 24, reorderWindow: 1 << 15 };

export class SequenceTracker {
  readonly #maxGap: number;
  readonly #reorderWindow: number;

  constructor(options: SequenceTrackerOptions) {
    this.#maxGap = options.maxGap;
    this.#reorderWindow = options.reorderWindow;
  }

  /**
   * Observes a packet carrying `sequence` that accounts for `increment` units (records,
   * packets or flows). `incrementKnown` false means the count is uncertain, so the next packet
   * sets a fresh baseline instead of being compared. Returns the units estimated lost
   * immediately before this packet (0 when none or not decidable).
   */
  observe(s: SequenceState, sequence: number, increment: number, incrementKnown = true): number {
    const next = (sequence + increment) % SEQUENCE_MODULUS;
    if (!s.primed || s.resync) {
      s.primed = true;
      s.resync = !incrementKnown;
      s.expected = next;
      s.candidate = -1;
      return 0;
    }
    if (s.candidate >= 0 && sequence === s.candidate && sequence !== s.expected) {
      // Continues exactly from the last out-of-line packet: the exporter restarted or jumped.
      s.expected = next;
      s.candidate = -1;
      s.resync = !incrementKnown;
      s.resyncs++;
      return 0;
    }
    const ahead = (sequence - s.expected + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
    if (ahead <= this.#maxGap) {
      s.expected = next;
      s.candidate = -1;
      s.resync = !incrementKnown;
      s.lost += ahead;
      return ahead;
    }
    const behind = (s.expected - sequence + SEQUENCE_MODULUS) % SEQUENCE_MODULUS;
    if (behind <= this.#reorderWindow) {
      // A late (reordered or duplicated) packet: the baseline stays. Its units were already
      // counted in the gap it left; loss totals are counters and never decrease, so the
      // estimate errs high by reordered packets (visible separately as `reordered`).
      s.reordered++;
      // If the next packet continues from this one, it was a restart (to a low sequence), not a late packet.
      s.candidate = next;
      return 0;
    }
    if (s.candidate >= 0 && (sequence - s.candidate + SEQUENCE_MODULUS) % SEQUENCE_MODULUS <= this.#maxGap) {
      // Second packet consistent with the jump: the exporter really moved on (restart, outage).
      s.expected = next;
      s.candidate = -1;
      s.resync = !incrementKnown;
      s.resyncs++;
      return 0;
    }
    s.candidate = next;
    s.jumps++;
    return 0;
  }
}

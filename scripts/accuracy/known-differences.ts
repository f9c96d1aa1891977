/**
 * Every known disagreement between sealflow and a reference decoder on the repository's
 * captures, with the reason: the bytes, the RFC, and which side is right. The accuracy report
 * (scripts/accuracy.ts) accepts a disagreement only when an entry here matches it.
 */
export type Reference = 'tshark' | 'nfdump';
/** key: the 5-tuple; biflow: sealflow's reverse record; missing: a record only the reference printed. */
export type Field = 'key' | 'octets' | 'packets' | 'samplerate' | 'biflow' | 'missing';

export interface KnownDifference {
  readonly capture: RegExp;
  readonly reference: Reference;
  readonly field: Field;
  readonly reason: string;
}

export const KNOWN_DIFFERENCES: readonly KnownDifference[] = [
  {
    capture: /ipfix_test_yaf_/,
    reference: 'tshark',
    field: 'biflow',
    reason:
      'YAF exports biflows (RFC 5103: reverse octets/packets under PEN 29305); sealflow emits the reverse direction as its own record (docs/decoding.md), tshark shows one flow with [Reverse] fields',
  },
  {
    capture: /ipfix_test_yaf_/,
    reference: 'nfdump',
    field: 'biflow',
    reason: 'YAF biflows (RFC 5103): nfdump keeps one record and drops the reverse counters; sealflow emits the reverse direction as its own record',
  },
  {
    capture: /netflow9_test_h3c_data3281\.dat$/,
    reference: 'tshark',
    field: 'key',
    reason:
      'H3C template 3281 has an IPv4-address element of length 2 (after DIRECTION); tshark throws "Trying to fetch an IPv4 address with length 2" and stops after the first of the 16 records, so 15 records have no tshark counterpart (nfdump and logstash read all 16, as sealflow does)',
  },
];

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
    capture: /ipfix_test_yaf_|softflowd\/ipfix_biflow/,
    reference: 'tshark',
    field: 'biflow',
    reason:
      'biflows (RFC 5103: reverse octets/packets under PEN 29305, from YAF and softflowd -b): sealflow emits the reverse direction as its own record (docs/decoding.md), tshark shows one flow with [Reverse] fields',
  },
  {
    capture: /ipfix_test_yaf_|softflowd\/ipfix_biflow/,
    reference: 'nfdump',
    field: 'biflow',
    reason: 'biflows (RFC 5103, YAF and softflowd -b): nfdump keeps one record per biflow and drops the reverse counters; sealflow emits the reverse direction as its own record',
  },
  ...(['tshark', 'nfdump'] as const).flatMap((reference) =>
    (['key', 'missing'] as const).map((field) => ({
      capture: /softflowd\/ipfix_biflow/,
      reference,
      field,
      reason:
        'softflowd -b exports the ICMP echo reply as a reverse-only biflow under the request\'s key (forward 0 packets, reverse 3); sealflow emits it as the reply\'s own direction 203.0.113.8 → 10.0.0.1, the reference under 10.0.0.1 → 203.0.113.8 with 0 forward packets',
    })),
  ),
  {
    capture: /softflowd\/psamp_traffic/,
    reference: 'nfdump',
    field: 'key',
    reason:
      'nfcapd 1.7.1 does not decode packet sections: the PSAMP packet reports (only a dataLinkFrameSection each) give no nfdump record; tshark dissects the sections and agrees with sealflow on all 79, as does traffic_truth.json',
  },
  {
    capture: /netflow9_test_h3c_data3281\.dat$/,
    reference: 'tshark',
    field: 'key',
    reason:
      'H3C template 3281 has an IPv4-address element of length 2 (after DIRECTION); tshark throws "Trying to fetch an IPv4 address with length 2" and stops after the first of the 16 records, so 15 records have no tshark counterpart (nfdump and logstash read all 16, as sealflow does)',
  },
];

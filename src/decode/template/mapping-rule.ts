/**
 * The vocabulary of field mapping (field-mapping.ts): which FlowRecord property a field fills
 * and how its bytes are read. A file of its own so that biflow.ts, which field-mapping.ts
 * uses, can speak it without importing field-mapping.ts back.
 */

/** How a field's bytes become a value. */
export type ReadKind =
  /** Unsigned integer of 1..8 bytes (reduced-size encoding, RFC 7011 §6.2) as a number. */
  | 'uint'
  /** Unsigned 1..8 bytes as an exact Counter (number, or bigint beyond 2^53 - 1). */
  | 'counter'
  | 'ipv4'
  | 'ipv6'
  /** dateTimeSeconds: u32 Unix seconds (RFC 7011 §6.1.7). */
  | 'seconds'
  /** dateTimeMilliseconds: u64 Unix ms (RFC 7011 §6.1.8). */
  | 'millis'
  /** dateTimeMicro/Nanoseconds: NTP timestamp, 32-bit seconds since 1900 + fraction (RFC 7011 §6.1.9-10). */
  | 'ntp'
  /** flowStart/EndSysUpTime, v9 FIRST/LAST_SWITCHED: u32 ms since exporter boot. */
  | 'sysUpTime'
  /** flowStart/EndDeltaMicroseconds: u32 µs before the message's export time. */
  | 'deltaMicros'
  /** icmpTypeCode IPv4/IPv6: u16 type * 256 + code. */
  | 'icmpTypeCode';

export type TargetProp =
  | 'srcAddr'
  | 'dstAddr'
  | 'srcPort'
  | 'dstPort'
  | 'protocol'
  | 'octets'
  | 'packets'
  | 'tos'
  | 'tcpFlags'
  | 'inputIf'
  | 'outputIf'
  | 'srcMask'
  | 'dstMask'
  | 'nextHop'
  | 'bgpNextHop'
  | 'srcAs'
  | 'dstAs'
  | 'srcVlan'
  | 'dstVlan'
  | 'icmpType'
  | 'icmpCode'
  | 'startMs'
  | 'endMs'
  | 'ipVersion'
  | 'samplerId'
  | 'samplingInterval'
  /** samplingPacketInterval / samplingPacketSpace (305, 306) carried in the data record itself. */
  | 'samplingPacketInterval'
  | 'samplingPacketSpace'
  /** systemInitTimeMilliseconds (160) in the data record itself: the anchor of its sysUpTime times. */
  | 'sysInit';

export interface MappingRule {
  readonly prop: TargetProp;
  readonly kind: ReadKind;
  /** Lower wins when a template carries several candidates for one property. */
  readonly rank: number;
}

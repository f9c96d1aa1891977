/**
 * FlowRecord: one decoded flow, normalised across IPFIX (RFC 7011), NetFlow v9 (RFC 3954),
 * NetFlow v5 and sFlow v5. It is the unit every stage after decoding works on: filters,
 * the batch serializer of the spool, and the Fusion mapping of the drain.
 *
 * Representation (chosen for a decoder that creates millions of these per second):
 * - Every property is always present (null when the exporter did not send it), so all
 *   records share one hidden class; use `newFlowRecord()` to create one.
 * - Addresses are `IpAddr`: an IPv4 address is its unsigned 32-bit value (a JS number), an
 *   IPv6 address a 16-byte Uint8Array (network order). Text is produced only on output.
 * - 64-bit counters are `Counter`: a number while ≤ Number.MAX_SAFE_INTEGER, otherwise an
 *   exact bigint (see readCounter64). Never a rounded double.
 * - Times are absolute Unix milliseconds; relative NetFlow/IPFIX times (sysUpTime based) are
 *   converted by the decoder using the export header or options data.
 */

/** IPv4 as unsigned 32-bit number, or IPv6 as 16 bytes in network order. */
export type IpAddr = number | Uint8Array;

/** An exact unsigned 64-bit counter: a number while safe, a bigint beyond 2^53 - 1. */
export type Counter = number | bigint;

export type FlowType = 'netflow' | 'sflow';

/** How the flow reached sealflow. */
export type Transport = 'udp' | 'tls' | 'dtls' | 'file';

/** One Information Element as the exporter described it in its template. */
export interface FieldSpec {
  /** IE identifier without the enterprise bit (RFC 7011 §3.2). */
  readonly id: number;
  /** Private Enterprise Number, 0 for IANA elements. */
  readonly enterprise: number;
  /** Field length in bytes; 0xffff = variable length (RFC 7011 §7). */
  readonly length: number;
}

/**
 * The undecoded bytes of one IPFIX/v9 data record with the field layout that describes them,
 * so that later stages can decode the full element set on demand (decodeElements in
 * src/decode) without the hot path paying for elements nobody asked for.
 */
export interface RawRecord {
  readonly fields: readonly FieldSpec[];
  readonly bytes: Uint8Array;
}

export interface FlowRecord {
  flowtype: FlowType;
  /** 5, 9 or 10 (IPFIX); 5 for sFlow v5. */
  flowversion: number;
  transport: Transport;
  /** The exporter's address as seen by the collector (the UDP/TLS/DTLS source), or sFlow's agent address. */
  exporter: string;
  /** Authenticated exporter identity (certificate name) for TLS/DTLS; null over plain UDP. */
  exporterIdentity: string | null;
  /** IPFIX observation domain ID, v9 source ID, v5 (engine type << 8 | engine id), sFlow sub-agent ID. */
  observationDomainId: number;
  /** Export time of the carrying message, Unix seconds. */
  exportTime: number;

  ipVersion: number;
  srcAddr: IpAddr | null;
  dstAddr: IpAddr | null;
  srcPort: number | null;
  dstPort: number | null;
  protocol: number | null;
  /** Octets as exported (not multiplied by the sampling interval). */
  octets: Counter;
  /** Packets as exported (not multiplied by the sampling interval). */
  packets: Counter;
  tos: number | null;
  tcpFlags: number | null;
  inputIf: number | null;
  outputIf: number | null;
  srcMask: number | null;
  dstMask: number | null;
  nextHop: IpAddr | null;
  bgpNextHop: IpAddr | null;
  srcAs: number | null;
  dstAs: number | null;
  srcVlan: number | null;
  dstVlan: number | null;
  icmpType: number | null;
  icmpCode: number | null;
  /** Flow start/end, absolute Unix milliseconds. */
  startMs: number | null;
  endMs: number | null;
  /** Exporter sysUpTime in ms at export, where the protocol carries it. */
  uptimeMs: number | null;
  /** Sampling interval in effect for this flow (1 = unsampled). */
  samplingInterval: number;

  /** The record's own bytes and layout (IPFIX/v9), for decodeElements(); null otherwise. */
  raw: RawRecord | null;
}

/** A FlowRecord with every property present and empty; decoders fill in what they have. */
export function newFlowRecord(
  flowtype: FlowType,
  flowversion: number,
  transport: Transport,
  exporter: string,
  exporterIdentity: string | null,
  observationDomainId: number,
  exportTime: number,
): FlowRecord {
  return {
    flowtype,
    flowversion,
    transport,
    exporter,
    exporterIdentity,
    observationDomainId,
    exportTime,
    ipVersion: 0,
    srcAddr: null,
    dstAddr: null,
    srcPort: null,
    dstPort: null,
    protocol: null,
    octets: 0,
    packets: 0,
    tos: null,
    tcpFlags: null,
    inputIf: null,
    outputIf: null,
    srcMask: null,
    dstMask: null,
    nextHop: null,
    bgpNextHop: null,
    srcAs: null,
    dstAs: null,
    srcVlan: null,
    dstVlan: null,
    icmpType: null,
    icmpCode: null,
    startMs: null,
    endMs: null,
    uptimeMs: null,
    samplingInterval: 1,
    raw: null,
  };
}

import type { Transport } from './flow-record.js';

/**
 * One unit of flow protocol bytes as an ingest listener received it: a UDP datagram, one
 * decrypted DTLS record, or one IPFIX message cut from a TLS stream by its length field.
 */
export interface ExporterPacket {
  /** The bytes; decoders read only within it. May be a view into a larger buffer. */
  readonly payload: Uint8Array;
  /** Exporter (peer) address, textual (IPv4 dotted, IPv6 without brackets, no zone). */
  readonly exporter: string;
  readonly exporterPort: number;
  readonly transport: Transport;
  /**
   * Transport session key (RFC 7011 §3 "Transport Session"): template and sequence state is
   * scoped to (sessionKey, observation domain). UDP: "udp|<exporter>|<port>|<listener port>";
   * TLS/DTLS: one key per connection/association, ended with DecodeService.endSession().
   */
  readonly sessionKey: string;
  /** Authenticated certificate identity for TLS/DTLS, else null. */
  readonly identity: string | null;
  /** Wall-clock time of receipt, Unix ms. Decoders use it instead of reading a clock. */
  readonly receivedAtMs: number;
}

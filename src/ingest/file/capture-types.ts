/** What the capture-file readers take and give (capture-file.ts dispatches to them). */
import type { DecodeError } from '../../flow/errors.js';
import type { ExporterPacket } from '../../flow/exporter-packet.js';

export type CaptureFormat = 'pcap' | 'ipfix' | 'raw';

/** One packet cut from a capture file, with where it starts in the file. */
export interface CapturedPacket {
  readonly packet: ExporterPacket;
  /** Byte offset of the packet's payload (its first flow-protocol byte) in the file. */
  readonly fileOffset: number;
}

export interface CaptureReadResult {
  readonly format: CaptureFormat;
  readonly packets: CapturedPacket[];
  /**
   * What was skipped or could not be read, each with its file offset. A truncated or corrupt
   * file ends reading at that point: the packets before it are still returned.
   */
  readonly problems: DecodeError[];
  /** pcap: IP fragments (later fragments cannot be reassembled into a flow datagram). */
  readonly ipFragmentsSkipped: number;
  /** pcap: frames that are not IPv4/IPv6 UDP (ARP, TCP, ICMP errors, unknown link payloads). */
  readonly nonUdpSkipped: number;
}

export interface CaptureReadOptions {
  /**
   * Exporter address for every packet, overriding what the capture says (`--exporter`).
   * Null: pcap packets keep their IP source; raw and IPFIX files use `defaultExporter`.
   */
  readonly exporterOverride: string | null;
  /** Exporter address for formats that carry none (raw payloads, IPFIX files). */
  readonly defaultExporter: string;
  /** receivedAtMs for formats that carry no capture time (raw payloads, IPFIX files). */
  readonly defaultReceivedAtMs: number;
  /** Transport session key for an exporter address (RFC 7011 §3); all packets of one exporter share it. */
  readonly sessionKeyFor: (exporter: string) => string;
}

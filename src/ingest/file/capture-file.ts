/**
 * Capture files → ExporterPacket sequences, for `sealflow decode`. Pure over bytes: the caller
 * reads the file. Formats are recognised by their magic numbers (the extension only breaks
 * ties for raw payloads):
 *   - classic libpcap files (pcap-reader.ts): UDP datagrams with the capture's addresses/times;
 *   - RFC 5655 IPFIX files (ipfix-file-reader.ts): a stream of IPFIX messages;
 *   - raw payloads `.dat`/`.bin` (raw-payload-reader.ts): one UDP payload, possibly several
 *     IPFIX messages or NetFlow v5 datagrams glued back to back.
 * Problems are returned as DecodeErrors whose offset is the byte offset in the FILE.
 */
import type { DecodeError } from '../../flow/errors.js';
import type { ExporterPacket } from '../../flow/exporter-packet.js';
import { readPcap, isPcap, isPcapng } from './pcap-reader.js';
import { readIpfixFile, looksLikeIpfixFile } from './ipfix-file-reader.js';
import { splitRawPayload } from './raw-payload-reader.js';

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

/** Recognises a capture's format by magic, then by extension. */
export function detectCaptureFormat(bytes: Uint8Array, fileName: string): CaptureFormat {
  if (isPcap(bytes) || isPcapng(bytes)) return 'pcap';
  const lower = fileName.toLowerCase();
  if (lower.endsWith('.pcap') || lower.endsWith('.cap')) return 'pcap';
  // A `.ipfix` file, or any file that parses as a well-framed run of IPFIX messages, is an
  // RFC 5655 file; a raw `.dat` holding IPFIX is the same thing framed the same way.
  if (lower.endsWith('.ipfix') || (looksLikeIpfixFile(bytes) && !lower.endsWith('.dat') && !lower.endsWith('.bin'))) return 'ipfix';
  return 'raw';
}

export function readCaptureFile(bytes: Uint8Array, fileName: string, opts: CaptureReadOptions): CaptureReadResult {
  const format = detectCaptureFormat(bytes, fileName);
  switch (format) {
    case 'pcap':
      return readPcap(bytes, opts);
    case 'ipfix':
      return readIpfixFile(bytes, opts);
    case 'raw':
      return splitRawPayload(bytes, opts);
  }
}

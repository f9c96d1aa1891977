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
import type { CaptureFormat, CaptureReadOptions, CaptureReadResult } from './capture-types.js';
import { readPcap, isPcap, isPcapng } from './pcap-reader.js';
import { readIpfixFile, looksLikeIpfixFile } from './ipfix-file-reader.js';
import { splitRawPayload } from './raw-payload-reader.js';

export type { CaptureFormat, CapturedPacket, CaptureReadOptions, CaptureReadResult } from './capture-types.js';

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

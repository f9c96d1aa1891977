import type { ExporterPacket } from '../../flow/exporter-packet.js';
import type { CapturedPacket, CaptureReadOptions } from './capture-types.js';

/**
 * A packet cut from a file that carries no network addresses or capture times (raw payloads,
 * RFC 5655 files): the overriding or default exporter, its session, the default time.
 */
export function addresslessPacket(bytes: Uint8Array, from: number, to: number, opts: CaptureReadOptions): CapturedPacket {
  const exporter = opts.exporterOverride ?? opts.defaultExporter;
  const packet: ExporterPacket = {
    payload: bytes.subarray(from, to),
    exporter,
    exporterPort: 0,
    transport: 'file',
    sessionKey: opts.sessionKeyFor(exporter),
    identity: null,
    receivedAtMs: opts.defaultReceivedAtMs,
  };
  return { packet, fileOffset: from };
}

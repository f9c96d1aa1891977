import type { ExporterPacket } from './exporter-packet.js';
import type { FlowRecord } from './flow-record.js';

/**
 * The seams between stages. Ingest listeners hand packets to a PacketSink; the decode stage
 * hands records to a RecordSink (flow filters → batcher → encrypted spool). The composition
 * root (src/app.ts) wires them, possibly across a worker thread, so no stage imports another.
 */
export interface PacketSink {
  /**
   * Hands one packet on. Never blocks. Returns false when the next stage is above its
   * high-water mark: stream transports (TLS) pause reading until `onDrain` fires.
   */
  submit(packet: ExporterPacket): boolean;
  /** A transport session ended (TLS connection closed, DTLS association gone). */
  endSession(sessionKey: string): void;
  /** Registers a callback for when the sink falls back below its low-water mark. */
  onDrain(listener: () => void): void;
}

export interface RecordSink {
  /** Takes ownership of the records. */
  accept(records: readonly FlowRecord[]): void;
}

import type { DecodeError } from '../flow/errors.js';
import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { Transport } from '../flow/flow-record.js';
import type { ByteReader } from './byte-reader.js';
import type { DecodeOutcome } from './decode-outcome.js';
import type { RecordContext } from './template/record-context.js';
import type { DomainState, SessionState, Template } from './template/template-cache.js';
import type { MessageHeader, SetSink, TemplateDefinition, WithdrawalScope } from './template/template.js';

/** Per-record metadata shared by all records of one data set. */
export interface SetMeta {
  version: number;
  transport: Transport;
  exporter: string;
  identity: string | null;
  observationDomainId: number;
  exportTimeS: number;
  /** v9 header sysUpTime, -1 for IPFIX. */
  v9UptimeMs: number;
}

/** How a FusedSetSink's data set went. */
export interface FusedSetResult {
  /** Records it took (before a malformed one, if any). */
  records: number;
  /** A variable-length field ran past the end of the set (RFC 7011 §7); the rest of the set is skipped. */
  malformed: boolean;
  /** Offset in `buf` of the record that was malformed (when `malformed`). */
  malformedAt: number;
}

/**
 * Takes IPFIX / NetFlow v9 data records of a (non-options) template straight from their
 * bytes, instead of DecodeService making FlowRecords for them: the ingest worker's fused path
 * to the spool (src/ingest-worker/fused-writer.ts). Such records are counted in
 * DecodeOutcome.fusedRecords and stats, not listed in DecodeOutcome.records. It must leave
 * no view of `buf` behind (the packet buffer is reused after decode()).
 */
export interface FusedSetSink {
  /** Handles the records of [p, end) with template `t`, filling `result`; false when it does not take this set (the FlowRecord path runs then). */
  writeSet(t: Template, view: DataView, buf: Uint8Array, p: number, end: number, ctx: RecordContext, meta: SetMeta, result: FusedSetResult): boolean;
}

/** `r` reset for the next data set (a function, so the caller's checks see the sink's writes, not these constants). */
export function clearedResult(r: FusedSetResult): FusedSetResult {
  r.records = 0;
  r.malformed = false;
  return r;
}

/** Metadata before the first message's header. */
const NO_META: SetMeta = Object.freeze({ version: 0, transport: 'udp', exporter: '', identity: null, observationDomainId: 0, exportTimeS: 0, v9UptimeMs: -1 });

/**
 * The parts that put one message's sets to use (SetDecoder), called with the message's context
 * first. MessageContext is the SetSink the wire parsers see and forwards to these.
 */
export interface ContextSetSink {
  begin(m: MessageContext, header: MessageHeader): void;
  template(m: MessageContext, def: TemplateDefinition): void;
  withdraw(m: MessageContext, templateId: number, scope: WithdrawalScope): void;
  data(m: MessageContext, templateId: number, body: ByteReader): void;
  error(m: MessageContext, err: DecodeError): void;
}

/**
 * What decoding one packet carries from part to part, made by DecodeService.decode() for that
 * packet and dropped when it returns: the outcome being filled, the packet, its transport
 * session and the time, fixed for the call; and the message in progress (a datagram carries one
 * IPFIX message, a file or stream several): its header and observation domain from begin() to
 * its end, the metadata and record context its data sets share, and the count of its data
 * records (the IPFIX sequence check needs it). No part keeps it beyond the call, so nothing of
 * a packet outlives its decode().
 */
export class MessageContext implements SetSink {
  /** The message in progress: set by begin(), cleared by DecodeService when the message ends. */
  header: MessageHeader | null = null;
  domain: DomainState | null = null;
  meta: SetMeta = NO_META;
  /** Data records of the message in progress, and whether that count is exact. */
  messageRecords = 0;
  messageCountKnown = true;

  constructor(
    readonly out: DecodeOutcome,
    readonly packet: ExporterPacket,
    readonly session: SessionState,
    readonly nowMs: number,
    private readonly sets: ContextSetSink,
    /**
     * The message's record context (export time, uptime anchor, sampling), filled by begin().
     * The service's one instance: decode() is never re-entered, and one allocation fewer per
     * packet is measurable (bench/decode.ts).
     */
    readonly record: RecordContext,
  ) {}

  begin(header: MessageHeader): void {
    this.sets.begin(this, header);
  }

  template(def: TemplateDefinition): void {
    this.sets.template(this, def);
  }

  withdraw(templateId: number, scope: WithdrawalScope): void {
    this.sets.withdraw(this, templateId, scope);
  }

  data(templateId: number, body: ByteReader): void {
    this.sets.data(this, templateId, body);
  }

  error(err: DecodeError): void {
    this.sets.error(this, err);
  }
}

import { DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { ExporterPacket } from '../flow/exporter-packet.js';
import { resolveDecodeLimits, type DecodeLimits } from './decode-limits.js';
import { addOutcome, newOutcome, newStats, recordError, type DecodeOutcome, type DecodeServiceStats } from './decode-outcome.js';
import { exportSessions, importSessions } from './decoder-state.js';
import { HeldData } from './held-data.js';
import { IPFIX_HEADER_BYTES, IPFIX_VERSION, parseIpfixMessage } from './ipfix/ipfix.js';
import { MessageContext, type FusedSetSink } from './message-context.js';
import { decodeNetflow5 } from './netflow5/netflow5.js';
import { NETFLOW9_VERSION, parseNetflow9Packet } from './netflow9/netflow9.js';
import { SessionTable } from './session-table.js';
import { budgetError, STATE_COST } from './state-budget.js';
import { SetDecoder } from './set-decoder.js';
import { DEFAULT_SFLOW_OPTIONS, decodeSflow, type SflowDecodeOptions, type SflowOctets } from './sflow/sflow.js';
import type { LayerPolicy } from './template/layer-policy.js';
import { RecordContext } from './template/record-context.js';
import { FLOW_SEQUENCE_OPTIONS, IPFIX_SEQUENCE_OPTIONS, PACKET_SEQUENCE_OPTIONS, SequenceTracker } from './template/sequence-tracker.js';
import { DecoderFactory, type DomainState, type SessionState } from './template/template-cache.js';

/**
 * DecodeService: the one stateful entry point of decoding. Bytes of one ExporterPacket in,
 * FlowRecords and counted problems out. It keeps template, options and sequence state per
 * (transport session, observation domain), holds data that arrives before its template, and
 * never reads a clock: time is the packet's receivedAtMs or the caller's nowMs.
 *
 * Dispatch on the first bytes: 16-bit version 10 → IPFIX (RFC 7011), 9 → NetFlow v9
 * (RFC 3954), 5 → NetFlow v5; a 32-bit 5 (0x00000005) → sFlow v5.
 *
 * decode() never throws: every problem becomes a DecodeError in the outcome and a count in
 * stats(). Memory is bounded by DecodeLimits (sessions, templates, fields, held data).
 *
 * The parts, each a file: decode-limits.ts (the limits), decode-outcome.ts (what comes back and
 * the totals), message-context.ts (the context made for each packet and handed to every part
 * below, and the fused path's port), session-table.ts (sessions, least recently seen evicted),
 * set-decoder.ts (templates and data sets of IPFIX/v9 messages), held-data.ts (data before its
 * template, RFC 7011 §9.3), decoder-state.ts (the state saved across restarts). This file
 * dispatches on the version, keeps the sequence trackers and holds the parts together.
 */

export { DEFAULT_DECODE_LIMITS, type DecodeLimits } from './decode-limits.js';
export { MAX_ERRORS_PER_OUTCOME, UNROLLED_COUNTERS_COMPLETE, type DecodeCounters, type DecodeOutcome, type DecodeServiceStats, type OptionsRecord } from './decode-outcome.js';
export type { FusedSetResult, FusedSetSink, SetMeta } from './message-context.js';

export interface DecodeServiceOptions {
  /** Specialised per-template decoders (default true); false uses the per-field loop. */
  readonly compiledDecoders?: boolean;
  /**
   * Attach each IPFIX/v9 record's bytes and layout as `raw` for decodeElements() (default
   * true). The ingest pipeline turns it off: nothing there reads `raw`, and the view costs an
   * allocation per record and keeps the received datagram alive as long as the record.
   */
  readonly rawRecords?: boolean;
  /**
   * The fused path: takes the records of compiled templates instead of FlowRecords in the
   * outcome (see FusedSetSink); default none. Used only with rawRecords false (a record with
   * `raw` needs the FlowRecord path).
   */
  readonly fused?: FusedSetSink | null;
  /** Which header of a tunnelled flow's template fills a record (layer-policy.ts); default inner. */
  readonly layerPolicy?: LayerPolicy;
  /** sFlow byte convention (docs/decoding.md): 'ip' (default) the IP packet length, 'frame' the sampled frame length. */
  readonly sflowOctets?: SflowOctets;
}

const SFLOW_VERSION_WORD = 5;
const NETFLOW5_VERSION = 5;
/** Domain-key version for sFlow (its version 5 would collide with NetFlow v5's). */
const SFLOW_DOMAIN_VERSION = 0x10005;

export class DecodeService {
  readonly #limits: Readonly<DecodeLimits>;
  readonly #factory: DecoderFactory;
  readonly #stats: DecodeServiceStats = newStats();
  readonly #sessions: SessionTable;
  readonly #held: HeldData;
  readonly #sets: SetDecoder;
  readonly #ipfixSeq = new SequenceTracker(IPFIX_SEQUENCE_OPTIONS);
  readonly #packetSeq = new SequenceTracker(PACKET_SEQUENCE_OPTIONS);
  readonly #flowSeq = new SequenceTracker(FLOW_SEQUENCE_OPTIONS);
  readonly #sflowOptions: SflowDecodeOptions;
  /** The record context every packet's MessageContext fills (see there). */
  readonly #record = new RecordContext();

  /** Throws ConfigError (setting `decode.<limit>`) for a negative or non-finite limit. */
  constructor(limits: Partial<DecodeLimits> = {}, options: DecodeServiceOptions = {}) {
    this.#limits = resolveDecodeLimits(limits);
    this.#factory = new DecoderFactory(options.compiledDecoders ?? true, options.layerPolicy);
    this.#sflowOptions = Object.freeze({ octets: options.sflowOctets ?? DEFAULT_SFLOW_OPTIONS.octets, layer: options.layerPolicy ?? DEFAULT_SFLOW_OPTIONS.layer });
    this.#sessions = new SessionTable(this.#limits, this.#stats);
    this.#held = new HeldData(this.#limits, this.#stats, this.#sessions.budget);
    this.#sets = new SetDecoder(this.#limits, this.#stats, this.#held, this.#sessions.budget, { factory: this.#factory, rawRecords: options.rawRecords ?? true });
    this.#sets.fused = options.fused ?? null;
  }

  /** Sets or clears the FusedSetSink (e.g. when flow filters that need FlowRecords are loaded). */
  setFusedSink(fused: FusedSetSink | null): void {
    this.#sets.fused = fused;
  }

  get limits(): Readonly<DecodeLimits> {
    return this.#limits;
  }

  /** Decodes one packet. Never throws; problems are in `errors` and counted in stats(). */
  decode(packet: ExporterPacket, nowMs: number = packet.receivedAtMs): DecodeOutcome {
    const out = newOutcome();
    this.#stats.packets++;
    const evicted = this.#stats.sessionsEvicted;
    const ev = this.#stats.stateBudget.evictions;
    const byExporter = ev.exporter;
    const byTotal = ev.total;
    try {
      const session = this.#sessions.sessionFor(packet, nowMs);
      if (typeof session === 'string') throw budgetError(session, `no room for a new session of exporter ${packet.exporter}`);
      if (session.pending.length > 0) this.#held.expire(out, session, nowMs);
      const payload = packet.payload;
      if (payload.length < 4) {
        throw new DecodeError(DecodeErrorCode.Truncated, `packet of ${payload.length} bytes is shorter than any flow header`, 0);
      }
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      const version = view.getUint16(0);
      if (version === IPFIX_VERSION) this.#decodeIpfix(new MessageContext(out, packet, session, nowMs, this.#sets, this.#record), payload, view);
      else if (version === NETFLOW9_VERSION) this.#decodeNetflow9(new MessageContext(out, packet, session, nowMs, this.#sets, this.#record), payload, view);
      else if (version === NETFLOW5_VERSION) this.#decodeNetflow5(out, packet, session);
      else if (view.getUint32(0) === SFLOW_VERSION_WORD) this.#decodeSflow(out, packet, session);
      else throw new DecodeError(DecodeErrorCode.BadVersion, `unknown flow protocol version ${version}`, 0, { version });
    } catch (err) {
      recordError(
        out,
        this.#stats,
        err instanceof DecodeError
          ? err
          : new DecodeError(DecodeErrorCode.BadRecord, `decoder failure: ${err instanceof Error ? err.message : String(err)}`, 0),
      );
    }
    if (this.#stats.sessionsEvicted !== evicted) {
      const exporter = ev.exporter - byExporter;
      const total = ev.total - byTotal;
      const sessions = this.#stats.sessionsEvicted - evicted - exporter - total;
      recordError(
        out,
        this.#stats,
        new DecodeError(DecodeErrorCode.StateEvicted, `decoder state budget: ${exporter} sessions evicted for the exporter's budget, ${total} for the total, ${sessions} for maxSessions`, 0, { exporter, total, sessions }),
      );
    }
    addOutcome(this.#stats, out);
    return out;
  }

  /** Forgets a transport session (TLS connection closed, DTLS association ended). Held data is dropped uncounted. */
  endSession(sessionKey: string): void {
    this.#sessions.end(sessionKey);
  }

  /**
   * Time-driven housekeeping: held data older than pendingHoldMs is dropped and counted,
   * UDP/DTLS templates past their lifetime are removed, and UDP/DTLS sessions with nothing
   * left that were idle for a template lifetime are forgotten.
   */
  expire(nowMs: number): DecodeOutcome {
    const out = newOutcome();
    this.#sessions.expire(nowMs, out, (s) => {
      this.#held.expire(out, s, nowMs, true);
    });
    addOutcome(this.#stats, out);
    return out;
  }

  /**
   * Drops all held data now, counting it as pendingExpired (for shutdown), without touching
   * templates, so exportState() afterwards still has them. expire(Infinity) would also
   * remove every UDP template.
   */
  flushPending(): DecodeOutcome {
    const out = newOutcome();
    for (const s of this.#sessions.values()) this.#held.flush(out, s);
    addOutcome(this.#stats, out);
    return out;
  }

  stats(): DecodeServiceStats {
    const b = this.#stats.stateBudget;
    return { ...this.#stats, errorsByCode: { ...this.#stats.errorsByCode }, stateBudget: { evictions: { ...b.evictions }, refusals: { ...b.refusals } } };
  }

  /** Template, options (sampling) and uptime-anchor state of UDP sessions as bytes (decoder-state.ts). */
  exportState(): Uint8Array {
    return exportSessions(this.#sessions.values());
  }

  /**
   * Restores exportState() output, replacing the state of the sessions it names. Validates
   * everything and applies the current limits (sessions beyond the state budget are left out,
   * counted); throws only DecodeError (BadState), and changes nothing when it throws.
   */
  importState(state: Uint8Array): void {
    for (const s of importSessions(state, this.#limits, this.#factory)) {
      this.#sessions.end(s.key);
      // A session that does not fit the state budget is left out (counted in stateBudget.refusals).
      this.#sessions.add(s);
    }
  }

  // ---- dispatch -------------------------------------------------------------------------

  #decodeIpfix(m: MessageContext, payload: Uint8Array, view: DataView): void {
    let start = 0;
    for (;;) {
      const info = parseIpfixMessage(payload, view, start, m, this.#limits);
      this.#endMessage(m);
      start += info.length;
      if (start >= payload.length) return;
      // A datagram carries one message (RFC 7011 §10.3.3); files and streams may carry more.
      if (payload.length - start < IPFIX_HEADER_BYTES || view.getUint16(start) !== IPFIX_VERSION) {
        throw new DecodeError(DecodeErrorCode.BadLength, `${payload.length - start} bytes after the IPFIX message are not another message`, start);
      }
    }
  }

  #decodeNetflow9(m: MessageContext, payload: Uint8Array, view: DataView): void {
    parseNetflow9Packet(payload, view, 0, m, this.#limits);
    this.#endMessage(m);
  }

  #decodeNetflow5(out: DecodeOutcome, packet: ExporterPacket, session: SessionState): void {
    const h = decodeNetflow5(packet, out.records);
    out.version = NETFLOW5_VERSION;
    out.observationDomainId = h.observationDomainId;
    const d = this.#domain(session, NETFLOW5_VERSION, h.observationDomainId);
    if (d !== null) out.sequenceLost += this.#flowSeq.observe(d.sequence, h.sequence, h.count);
  }

  #decodeSflow(out: DecodeOutcome, packet: ExporterPacket, session: SessionState): void {
    const h = decodeSflow(packet, out.records, undefined, this.#sflowOptions);
    out.version = SFLOW_VERSION_WORD;
    out.observationDomainId = h.subAgentId;
    const d = this.#domain(session, SFLOW_DOMAIN_VERSION, h.subAgentId);
    if (d !== null) out.sequenceLost += this.#packetSeq.observe(d.sequence, h.sequence, 1);
  }

  /** The domain for a NetFlow v5 / sFlow sequence check, charged to the state budget when new; null when it does not fit (the records are kept, the check skipped). */
  #domain(session: SessionState, version: number, id: number): DomainState | null {
    if (!session.hasDomain(version, id) && this.#sessions.budget.reserve(session, STATE_COST.domain) !== null) return null;
    return session.domain(version, id);
  }

  /** After an IPFIX message or a v9 packet: its sequence number against the domain's (RFC 7011 §10.3.3: records for IPFIX, packets for v9). */
  #endMessage(m: MessageContext): void {
    const h = m.header;
    const d = m.domain;
    if (h === null || d === null) return;
    const before = d.sequence;
    const reordered = before.reordered;
    const jumps = before.jumps;
    const lost =
      h.version === IPFIX_VERSION
        ? this.#ipfixSeq.observe(d.sequence, h.sequence, m.messageRecords, m.messageCountKnown)
        : this.#packetSeq.observe(d.sequence, h.sequence, 1);
    m.out.sequenceLost += lost;
    this.#stats.sequenceReordered += d.sequence.reordered - reordered;
    this.#stats.sequenceJumpsHeld += d.sequence.jumps - jumps;
    m.header = null;
  }
}

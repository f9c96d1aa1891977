import { ConfigError, ConfigErrorCode, DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { ExporterPacket } from '../flow/exporter-packet.js';
import type { FieldSpec, FlowRecord, RawRecord, Transport } from '../flow/flow-record.js';
import { newFlowRecord } from '../flow/flow-record.js';
import type { ByteReader } from './byte-reader.js';
import { IPFIX_HEADER_BYTES, IPFIX_VERSION, parseIpfixMessage } from './ipfix/ipfix.js';
import { decodeNetflow5 } from './netflow5/netflow5.js';
import { NETFLOW9_VERSION, parseNetflow9Packet } from './netflow9/netflow9.js';
import { DEFAULT_SFLOW_OPTIONS, decodeSflow, type SflowDecodeOptions, type SflowOctets } from './sflow/sflow.js';
import { newOptionsValues, readOptionsRecord } from './template/options-record.js';
import { RawRecordView } from './template/raw-record-view.js';
import { RecordContext } from './template/record-context.js';
import {
  FLOW_SEQUENCE_OPTIONS,
  IPFIX_SEQUENCE_OPTIONS,
  PACKET_SEQUENCE_OPTIONS,
  SequenceTracker,
} from './template/sequence-tracker.js';
import type { DomainState, PendingSet, Template } from './template/template-cache.js';
import { DecoderFactory, isReliable, sameLayout, SessionState, templateSignature } from './template/template-cache.js';
import type { MessageHeader, SetSink, TemplateDefinition, WithdrawalScope } from './template/template.js';
import { decodeExtendedSet } from './template/extended-set.js';
import type { LayerPolicy } from './template/layer-policy.js';
import { MIN_DATA_SET_ID } from './template/template.js';
import { DEFAULTS } from '../config/defaults.js';

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
 */

export interface DecodeLimits {
  /** Templates (data + options, all domains) one transport session may define. */
  maxTemplatesPerSession: number;
  /** Fields one template may have. */
  maxFieldsPerTemplate: number;
  /** Over UDP/DTLS a template not refreshed for this long is dropped (RFC 7011 §8.4). */
  templateLifetimeMs: number;
  /** How long a data set waits for its template (RFC 7011 §9.3); 0 disables holding. */
  pendingHoldMs: number;
  /** Held data sets per session (each holds ≥ 1 record). */
  maxPendingRecordsPerSession: number;
  /** Bytes of held data per session. */
  maxPendingBytesPerSession: number;
  /** Transport sessions tracked at once; the least recently seen is evicted beyond it. */
  maxSessions: number;
}

/** The decode settings' defaults (src/config/schema.ts says why each is what it is), and one limit that is not a setting. */
export const DEFAULT_DECODE_LIMITS: Readonly<DecodeLimits> = Object.freeze({
  maxTemplatesPerSession: DEFAULTS.decode.maxTemplatesPerSession,
  maxFieldsPerTemplate: DEFAULTS.decode.maxFieldsPerTemplate,
  templateLifetimeMs: DEFAULTS.decode.templateLifetimeSeconds * 1000,
  pendingHoldMs: DEFAULTS.decode.pendingHoldMs,
  maxPendingRecordsPerSession: DEFAULTS.decode.maxPendingRecordsPerSession,
  // Held data is copied out of its datagram: 4 MiB bounds what one session can hold that way.
  maxPendingBytesPerSession: 4 * 1024 * 1024,
  maxSessions: DEFAULTS.decode.maxSessions,
});

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

/** One options data record (RFC 7011 §3.4.2.2, RFC 3954 §6.1), kept for later stages (decodeElements). */
export interface OptionsRecord {
  readonly templateId: number;
  readonly observationDomainId: number;
  /** records.length when this options record was decoded: its position in the packet's record stream (records taken by a FusedSetSink are not in `records`). */
  readonly recordIndex: number;
  readonly raw: RawRecord;
}

/** Counts of template, options and sequence events; per packet in DecodeOutcome, totals in stats(). */
export interface DecodeCounters {
  templatesLearned: number;
  templatesReplaced: number;
  templatesWithdrawn: number;
  /** Withdrawals received over UDP/DTLS and ignored (RFC 7011 §8.4). */
  withdrawalsIgnored: number;
  templatesExpired: number;
  optionsRecords: number;
  /** Estimated records (IPFIX), packets (v9, sFlow) or flows (v5) lost before this packet. */
  sequenceLost: number;
  /** Data sets held for a template not known yet. */
  pendingHeld: number;
  /** Held data sets decoded now that their template arrived. */
  pendingDecoded: number;
  /** Held data sets dropped (template never came in time). */
  pendingExpired: number;
  /** Data sets dropped immediately for an unknown template (holding disabled or full). */
  unknownTemplateSets: number;
  /** Records naming a sampler / selector that no options data described: sampled at the domain default (1 when unknown). */
  samplerUnknown: number;
}

export interface DecodeOutcome extends DecodeCounters {
  records: FlowRecord[];
  /** Records handed to the FusedSetSink instead of `records`. */
  fusedRecords: number;
  /** Options data records, in wire order. Sampling and uptime from them are already applied. */
  options: OptionsRecord[];
  /** The first MAX_ERRORS_PER_OUTCOME problems; `errorCount` has them all. */
  errors: DecodeError[];
  errorCount: number;
  /** Protocol version of the (last) message: 5, 9, 10, or 5 for sFlow; null when unreadable. */
  version: number | null;
  observationDomainId: number | null;
}

export interface DecodeServiceStats extends DecodeCounters {
  packets: number;
  /** Every record decoded, both paths. */
  records: number;
  /** Of `records`, those written by the FusedSetSink (the ingest worker's fused path to the spool). */
  fusedRecords: number;
  errorsByCode: Record<string, number>;
  templatesLive: number;
  sessions: number;
  pendingSets: number;
  pendingBytes: number;
  /** Packets slightly behind the expected sequence (reordered or duplicated). */
  sequenceReordered: number;
  /** Wild sequence jumps not (yet) believed (RFC 7011 §11; see SequenceTracker). */
  sequenceJumpsHeld: number;
  /** Sessions dropped to stay within maxSessions. */
  sessionsEvicted: number;
}

/** Errors kept per outcome; a flood of bad records is counted, not listed. */
export const MAX_ERRORS_PER_OUTCOME = 64;
const SFLOW_VERSION_WORD = 5;
const NETFLOW5_VERSION = 5;
/** Domain-key version for sFlow (its version 5 would collide with NetFlow v5's). */
const SFLOW_DOMAIN_VERSION = 0x10005;
const STATE_FORMAT = 'sealflow-decode-state';
const STATE_VERSION = 1;

function zeroCounters(): DecodeCounters {
  return {
    templatesLearned: 0,
    templatesReplaced: 0,
    templatesWithdrawn: 0,
    withdrawalsIgnored: 0,
    templatesExpired: 0,
    optionsRecords: 0,
    sequenceLost: 0,
    pendingHeld: 0,
    pendingDecoded: 0,
    pendingExpired: 0,
    unknownTemplateSets: 0,
    samplerUnknown: 0,
  };
}

/**
 * A fresh outcome, written out property by property (no spread): one is made per packet, and a
 * literal gives every outcome the same hidden class, which keeps #finish and the callers'
 * property reads monomorphic.
 */
/** The counters #finish sums one by one; the assertion below makes a missing one a compile error. */
type UnrolledCounter =
  | 'templatesLearned'
  | 'templatesReplaced'
  | 'templatesWithdrawn'
  | 'withdrawalsIgnored'
  | 'templatesExpired'
  | 'optionsRecords'
  | 'sequenceLost'
  | 'pendingHeld'
  | 'pendingDecoded'
  | 'pendingExpired'
  | 'unknownTemplateSets'
  | 'samplerUnknown';
export const UNROLLED_COUNTERS_COMPLETE: [Exclude<keyof DecodeCounters, UnrolledCounter>] extends [never] ? true : never = true;

function newOutcome(): DecodeOutcome {
  return {
    records: [],
    fusedRecords: 0,
    options: [],
    errors: [],
    errorCount: 0,
    version: null,
    observationDomainId: null,
    templatesLearned: 0,
    templatesReplaced: 0,
    templatesWithdrawn: 0,
    withdrawalsIgnored: 0,
    templatesExpired: 0,
    optionsRecords: 0,
    sequenceLost: 0,
    pendingHeld: 0,
    pendingDecoded: 0,
    pendingExpired: 0,
    unknownTemplateSets: 0,
    samplerUnknown: 0,
  };
}

/** `r` reset for the next data set (a function, so the caller's checks see the sink's writes, not these constants). */
function clearedResult(r: FusedSetResult): FusedSetResult {
  r.records = 0;
  r.malformed = false;
  return r;
}

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

export class DecodeService {
  readonly #limits: DecodeLimits;
  readonly #factory: DecoderFactory;
  readonly #rawRecords: boolean;
  #fused: FusedSetSink | null;
  readonly #fusedResult: FusedSetResult = { records: 0, malformed: false, malformedAt: 0 };
  readonly #sessions = new Map<string, SessionState>();
  readonly #ipfixSeq = new SequenceTracker(IPFIX_SEQUENCE_OPTIONS);
  readonly #packetSeq = new SequenceTracker(PACKET_SEQUENCE_OPTIONS);
  readonly #flowSeq = new SequenceTracker(FLOW_SEQUENCE_OPTIONS);
  readonly #stats: DecodeServiceStats;
  readonly #sink: SetSink;
  readonly #ctx = new RecordContext();
  readonly #pendingCtx = new RecordContext();
  readonly #options = newOptionsValues();
  readonly #sflowOptions: SflowDecodeOptions;

  // State of the message being decoded (valid during decode()).
  #out: DecodeOutcome = newOutcome();
  #packet: ExporterPacket | null = null;
  #session: SessionState | null = null;
  #domain: DomainState | null = null;
  #header: MessageHeader | null = null;
  #meta: SetMeta = { version: 0, transport: 'udp', exporter: '', identity: null, observationDomainId: 0, exportTimeS: 0, v9UptimeMs: -1 };
  #nowMs = 0;
  #messageRecords = 0;
  #messageCountKnown = true;

  /** Throws ConfigError (setting `decode.<limit>`) for a negative or non-finite limit. */
  constructor(limits: Partial<DecodeLimits> = {}, options: DecodeServiceOptions = {}) {
    const merged: DecodeLimits = { ...DEFAULT_DECODE_LIMITS };
    for (const key of Object.keys(DEFAULT_DECODE_LIMITS) as (keyof DecodeLimits)[]) {
      const v = limits[key];
      if (v === undefined) continue;
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new ConfigError(ConfigErrorCode.Invalid, `decode.${key}`, `decode.${key} must be a finite number ≥ 0 (got ${String(v)}); set it to a count or milliseconds, or leave it out for ${DEFAULT_DECODE_LIMITS[key]}`);
      }
      merged[key] = v;
    }
    this.#limits = Object.freeze(merged);
    this.#factory = new DecoderFactory(options.compiledDecoders ?? true, options.layerPolicy);
    this.#rawRecords = options.rawRecords ?? true;
    this.#fused = options.fused ?? null;
    this.#sflowOptions = Object.freeze({ octets: options.sflowOctets ?? DEFAULT_SFLOW_OPTIONS.octets, layer: options.layerPolicy ?? DEFAULT_SFLOW_OPTIONS.layer });
    this.#stats = {
      packets: 0,
      records: 0,
      fusedRecords: 0,
      errorsByCode: {},
      templatesLive: 0,
      sessions: 0,
      pendingSets: 0,
      pendingBytes: 0,
      sequenceReordered: 0,
      sequenceJumpsHeld: 0,
      sessionsEvicted: 0,
      ...zeroCounters(),
    };
    this.#sink = {
      begin: (h) => {
        this.#begin(h);
      },
      template: (def) => {
        this.#learn(def);
      },
      withdraw: (id, scope) => {
        this.#withdraw(id, scope);
      },
      data: (id, body) => {
        this.#data(id, body);
      },
      error: (err) => {
        this.#error(err);
      },
    };
  }

  /** Sets or clears the FusedSetSink (e.g. when flow filters that need FlowRecords are loaded). */
  setFusedSink(fused: FusedSetSink | null): void {
    this.#fused = fused;
  }

  get limits(): Readonly<DecodeLimits> {
    return this.#limits;
  }

  /** Decodes one packet. Never throws; problems are in `errors` and counted in stats(). */
  decode(packet: ExporterPacket, nowMs: number = packet.receivedAtMs): DecodeOutcome {
    const out = newOutcome();
    this.#out = out;
    this.#packet = packet;
    this.#nowMs = nowMs;
    this.#header = null;
    this.#domain = null;
    this.#stats.packets++;
    try {
      const session = this.#sessionFor(packet);
      this.#session = session;
      if (session.pending.length > 0) this.#expirePending(session, nowMs);
      const payload = packet.payload;
      if (payload.length < 4) {
        throw new DecodeError(DecodeErrorCode.Truncated, `packet of ${payload.length} bytes is shorter than any flow header`, 0);
      }
      const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
      const version = view.getUint16(0);
      if (version === IPFIX_VERSION) this.#decodeIpfix(payload, view);
      else if (version === NETFLOW9_VERSION) this.#decodeNetflow9(payload, view);
      else if (version === NETFLOW5_VERSION) this.#decodeNetflow5(packet, session);
      else if (view.getUint32(0) === SFLOW_VERSION_WORD) this.#decodeSflow(packet, session);
      else throw new DecodeError(DecodeErrorCode.BadVersion, `unknown flow protocol version ${version}`, 0, { version });
    } catch (err) {
      this.#error(
        err instanceof DecodeError
          ? err
          : new DecodeError(DecodeErrorCode.BadRecord, `decoder failure: ${err instanceof Error ? err.message : String(err)}`, 0),
      );
    }
    this.#finish(out);
    this.#packet = null;
    this.#session = null;
    this.#domain = null;
    return out;
  }

  /** Forgets a transport session (TLS connection closed, DTLS association ended). Held data is dropped uncounted. */
  endSession(sessionKey: string): void {
    const s = this.#sessions.get(sessionKey);
    if (s === undefined) return;
    this.#stats.templatesLive -= s.templateCount;
    this.#stats.pendingSets -= s.pending.length;
    this.#stats.pendingBytes -= s.pendingBytes;
    this.#sessions.delete(sessionKey);
    this.#stats.sessions = this.#sessions.size;
  }

  /**
   * Time-driven housekeeping: held data older than pendingHoldMs is dropped and counted,
   * UDP/DTLS templates past their lifetime are removed, and UDP/DTLS sessions with nothing
   * left that were idle for a template lifetime are forgotten.
   */
  expire(nowMs: number): DecodeOutcome {
    const out = newOutcome();
    this.#out = out;
    this.#nowMs = nowMs;
    for (const [key, s] of this.#sessions) {
      if (s.pending.length > 0) this.#expirePending(s, nowMs, true);
      for (const d of s.domains.values()) {
        for (const [id, t] of d.templates) {
          if (t.expiresAtMs < nowMs) {
            d.templates.delete(id);
            s.templateCount--;
            this.#stats.templatesLive--;
            out.templatesExpired++;
          }
        }
      }
      if (!isReliable(s.transport) && s.templateCount === 0 && s.pending.length === 0 && nowMs - s.lastSeenMs > this.#limits.templateLifetimeMs) {
        this.#sessions.delete(key);
      }
    }
    this.#stats.sessions = this.#sessions.size;
    this.#finish(out);
    return out;
  }

  /**
   * Drops all held data now, counting it as pendingExpired (for shutdown), without touching
   * templates, so exportState() afterwards still has them. expire(Infinity) would also
   * remove every UDP template.
   */
  flushPending(): DecodeOutcome {
    const out = newOutcome();
    this.#out = out;
    for (const s of this.#sessions.values()) {
      if (s.pending.length === 0) continue;
      for (const p of s.pending) this.#pendingExpired(p);
      this.#replacePending(s, []);
    }
    this.#finish(out);
    return out;
  }

  stats(): DecodeServiceStats {
    return { ...this.#stats, errorsByCode: { ...this.#stats.errorsByCode } };
  }

  // ---- dispatch -------------------------------------------------------------------------

  #decodeIpfix(payload: Uint8Array, view: DataView): void {
    let start = 0;
    for (;;) {
      const info = parseIpfixMessage(payload, view, start, this.#sink, this.#limits);
      this.#endMessage();
      start += info.length;
      if (start >= payload.length) return;
      // A datagram carries one message (RFC 7011 §10.3.3); files and streams may carry more.
      if (payload.length - start < IPFIX_HEADER_BYTES || view.getUint16(start) !== IPFIX_VERSION) {
        throw new DecodeError(DecodeErrorCode.BadLength, `${payload.length - start} bytes after the IPFIX message are not another message`, start);
      }
    }
  }

  #decodeNetflow9(payload: Uint8Array, view: DataView): void {
    parseNetflow9Packet(payload, view, 0, this.#sink, this.#limits);
    this.#endMessage();
  }

  #decodeNetflow5(packet: ExporterPacket, session: SessionState): void {
    const h = decodeNetflow5(packet, this.#out.records);
    this.#out.version = NETFLOW5_VERSION;
    this.#out.observationDomainId = h.observationDomainId;
    const d = session.domain(NETFLOW5_VERSION, h.observationDomainId);
    this.#out.sequenceLost += this.#flowSeq.observe(d.sequence, h.sequence, h.count);
  }

  #decodeSflow(packet: ExporterPacket, session: SessionState): void {
    const h = decodeSflow(packet, this.#out.records, undefined, this.#sflowOptions);
    this.#out.version = SFLOW_VERSION_WORD;
    this.#out.observationDomainId = h.subAgentId;
    const d = session.domain(SFLOW_DOMAIN_VERSION, h.subAgentId);
    this.#out.sequenceLost += this.#packetSeq.observe(d.sequence, h.sequence, 1);
  }

  // ---- sessions -------------------------------------------------------------------------

  #sessionFor(packet: ExporterPacket): SessionState {
    let s = this.#sessions.get(packet.sessionKey);
    if (s === undefined) {
      while (this.#sessions.size >= Math.max(1, this.#limits.maxSessions)) {
        const oldest = this.#sessions.keys().next();
        if (oldest.done === true) break;
        this.endSession(oldest.value);
        this.#stats.sessionsEvicted++;
      }
      s = new SessionState(packet.sessionKey, packet.transport);
      this.#sessions.set(packet.sessionKey, s);
      this.#stats.sessions = this.#sessions.size;
    } else if (s.lastSeenMs !== this.#nowMs) {
      // Keep Map order = least recently seen first, for eviction.
      this.#sessions.delete(packet.sessionKey);
      this.#sessions.set(packet.sessionKey, s);
    }
    s.transport = packet.transport;
    s.lastSeenMs = this.#nowMs;
    return s;
  }

  // ---- message content (SetSink) --------------------------------------------------------

  #begin(h: MessageHeader): void {
    const session = this.#session;
    const packet = this.#packet;
    if (session === null || packet === null) return;
    const d = session.domain(h.version, h.observationDomainId);
    this.#header = h;
    this.#domain = d;
    this.#messageRecords = 0;
    this.#messageCountKnown = true;
    this.#out.version = h.version;
    this.#out.observationDomainId = h.observationDomainId;
    this.#meta = {
      version: h.version,
      transport: packet.transport,
      exporter: packet.exporter,
      identity: packet.identity,
      observationDomainId: h.observationDomainId,
      exportTimeS: h.exportTimeS,
      v9UptimeMs: h.uptimeMs,
    };
    this.#setContext(this.#ctx, d, h.exportTimeS, h.uptimeMs);
  }

  #setContext(ctx: RecordContext, d: DomainState, exportTimeS: number, v9UptimeMs: number): void {
    ctx.exportMs = exportTimeS * 1000;
    if (v9UptimeMs >= 0) {
      ctx.hasUptime = true;
      ctx.uptimeMs = v9UptimeMs;
    } else if (d.sysInitMs >= 0) {
      ctx.hasUptime = true;
      ctx.uptimeMs = ctx.exportMs - d.sysInitMs;
    } else {
      ctx.hasUptime = false;
      ctx.uptimeMs = 0;
    }
    ctx.defaultSampling = d.defaultSampling;
    ctx.samplers = d.samplers;
  }

  #endMessage(): void {
    const h = this.#header;
    const d = this.#domain;
    if (h === null || d === null) return;
    const before = d.sequence;
    const reordered = before.reordered;
    const jumps = before.jumps;
    const lost =
      h.version === IPFIX_VERSION
        ? this.#ipfixSeq.observe(d.sequence, h.sequence, this.#messageRecords, this.#messageCountKnown)
        : this.#packetSeq.observe(d.sequence, h.sequence, 1);
    this.#out.sequenceLost += lost;
    this.#stats.sequenceReordered += d.sequence.reordered - reordered;
    this.#stats.sequenceJumpsHeld += d.sequence.jumps - jumps;
    this.#header = null;
  }

  #learn(def: TemplateDefinition): void {
    const session = this.#session;
    const d = this.#domain;
    if (session === null || d === null) return;
    const existing = d.templates.get(def.templateId);
    const expiresAtMs = isReliable(session.transport) ? Infinity : this.#nowMs + this.#limits.templateLifetimeMs;
    if (existing !== undefined && sameLayout(existing, def)) {
      existing.expiresAtMs = expiresAtMs;
    } else {
      const signature = templateSignature(def);
      if (existing === undefined && session.templateCount >= this.#limits.maxTemplatesPerSession) {
        this.#error(
          new DecodeError(DecodeErrorCode.TemplateLimit, `session already has ${session.templateCount} templates (limit ${this.#limits.maxTemplatesPerSession})`, def.offset, {
            templateId: def.templateId,
          }),
        );
        return;
      }
      const t = this.#factory.build(def, signature, expiresAtMs);
      if (t === null) {
        this.#error(new DecodeError(DecodeErrorCode.BadTemplate, `template ${def.templateId}: every field has length 0, records would be empty`, def.offset, { templateId: def.templateId }));
        return;
      }
      if (existing === undefined) {
        session.templateCount++;
        this.#stats.templatesLive++;
        this.#out.templatesLearned++;
      } else {
        this.#out.templatesReplaced++;
      }
      d.templates.set(def.templateId, t);
      // Held sets can only be waiting for a template that was unknown (or expired, hence
      // removed): a refresh of a live one finds none, so it skips the scan of the hold buffer.
      if (session.pending.length > 0) this.#releasePending(session, d, def.templateId);
    }
  }

  #withdraw(templateId: number, scope: WithdrawalScope): void {
    const session = this.#session;
    const d = this.#domain;
    if (session === null || d === null) return;
    if (!isReliable(session.transport)) {
      // RFC 7011 §8.4: over UDP templates only expire; a withdrawal (possibly spoofed or
      // reordered) must not remove one.
      this.#out.withdrawalsIgnored++;
      return;
    }
    for (const [id, t] of d.templates) {
      const hit = scope === 'one' ? id === templateId : scope === 'allTemplates' ? !t.isOptions : t.isOptions;
      if (!hit) continue;
      d.templates.delete(id);
      session.templateCount--;
      this.#stats.templatesLive--;
      this.#out.templatesWithdrawn++;
    }
  }

  #data(templateId: number, body: ByteReader): void {
    const session = this.#session;
    const d = this.#domain;
    if (session === null || d === null) return;
    let t = d.templates.get(templateId);
    if (t !== undefined && t.expiresAtMs < this.#nowMs) {
      d.templates.delete(templateId);
      session.templateCount--;
      this.#stats.templatesLive--;
      this.#out.templatesExpired++;
      t = undefined;
    }
    if (t === undefined) {
      this.#messageCountKnown = false;
      this.#hold(session, d, templateId, body);
      return;
    }
    const n = this.#decodeSet(t, d, body.buf, body.view, body.pos, body.end, this.#ctx, this.#meta, body.offset - body.pos);
    this.#takeUnknownSamplers(this.#ctx);
    if (n < 0) this.#messageCountKnown = false;
    else this.#messageRecords += n;
  }

  /**
   * Decodes the records of one data set in [p, end). Returns the number of records, or -1
   * when the set was malformed (records before the problem are kept). `offsetBase` is the
   * message offset of buf[0], for error offsets.
   */
  #decodeSet(t: Template, d: DomainState, buf: Uint8Array, view: DataView, p: number, end: number, ctx: RecordContext, meta: SetMeta, offsetBase: number): number {
    let count = 0;
    if (t.isOptions) {
      const o = this.#options;
      while (end - p >= t.minLength) {
        const q = readOptionsRecord(t.fields, view, p, end, o);
        if (q < 0) return this.#badVarLength(t, offsetBase + p);
        if (o.sysInitMs >= 0) d.sysInitMs = o.sysInitMs;
        if (o.interval > 0) {
          if (o.samplerId >= 0) d.setSampler(o.samplerId, o.interval);
          else d.explicitSampling = o.interval;
        }
        this.#out.optionsRecords++;
        this.#out.options.push({
          templateId: t.templateId,
          observationDomainId: meta.observationDomainId,
          recordIndex: this.#out.records.length,
          raw: { fields: t.fields, bytes: buf.subarray(p, q) },
        });
        count++;
        p = q;
      }
      // Later data sets of this message use what the options just said.
      this.#setContext(ctx, d, meta.exportTimeS, meta.v9UptimeMs);
      return count;
    }
    const fused = this.#fused;
    // Biflow templates (two records of one wire record) and packet sections take the FlowRecord path.
    if (fused !== null && !this.#rawRecords && t.reverse === null && t.section === null) {
      const result = clearedResult(this.#fusedResult);
      let taken: boolean;
      try {
        taken = fused.writeSet(t, view, buf, p, end, ctx, meta, result);
      } finally {
        // Records the sink took before a failure (reported by decode() as a decode error) are counted too.
        this.#out.fusedRecords += result.records;
      }
      if (taken) return result.malformed ? this.#badVarLength(t, offsetBase + result.malformedAt) : result.records;
    }
    const records = this.#out.records;
    const fields: readonly FieldSpec[] = t.fields;
    const decoder = t.decoder;
    const { version, transport, exporter, identity, observationDomainId, exportTimeS } = meta;
    const fixed = t.fixedLength;
    const raw = this.#rawRecords;
    if (t.reverse !== null || t.section !== null) {
      const n = decodeExtendedSet(
        t, view, buf, p, end, ctx,
        () => newFlowRecord('netflow', version, transport, exporter, identity, observationDomainId, exportTimeS),
        (forward, reverse, start, stop) => {
          // Both directions share the wire record's raw view.
          const view = raw ? new RawRecordView(fields, buf, start, stop) : null;
          if (forward !== null) {
            forward.raw = view;
            records.push(forward);
          }
          if (reverse !== null) {
            reverse.raw = view;
            records.push(reverse);
          }
        },
      );
      return n >= 0 ? n : this.#badVarLength(t, offsetBase - 1 - n);
    }
    if (fixed > 0) {
      while (p + fixed <= end) {
        const r = newFlowRecord('netflow', version, transport, exporter, identity, observationDomainId, exportTimeS);
        decoder(view, buf, p, end, r, ctx);
        if (raw) r.raw = new RawRecordView(fields, buf, p, p + fixed);
        records.push(r);
        p += fixed;
        count++;
      }
      return count;
    }
    const min = t.minLength;
    while (end - p >= min) {
      const r = newFlowRecord('netflow', version, transport, exporter, identity, observationDomainId, exportTimeS);
      const q = decoder(view, buf, p, end, r, ctx);
      if (q < 0) {
        return this.#badVarLength(t, offsetBase + p);
      }
      if (raw) r.raw = new RawRecordView(fields, buf, p, q);
      records.push(r);
      p = q;
      count++;
    }
    return count;
  }

  #takeUnknownSamplers(ctx: RecordContext): void {
    this.#out.samplerUnknown += ctx.unknownSamplerRecords;
    ctx.unknownSamplerRecords = 0;
  }

  #badVarLength(t: Template, offset: number): number {
    this.#error(new DecodeError(DecodeErrorCode.BadVarLength, `template ${t.templateId}: a variable-length field runs past the end of its set`, offset, { templateId: t.templateId }));
    return -1;
  }

  // ---- data before template (RFC 7011 §9.3) ---------------------------------------------

  #hold(session: SessionState, d: DomainState, templateId: number, body: ByteReader): void {
    const len = body.remaining;
    const limits = this.#limits;
    if (limits.pendingHoldMs <= 0 || session.pending.length >= limits.maxPendingRecordsPerSession || session.pendingBytes + len > limits.maxPendingBytesPerSession) {
      this.#out.unknownTemplateSets++;
      this.#error(
        new DecodeError(
          DecodeErrorCode.UnknownTemplate,
          `data set for unknown template ${templateId} (observation domain ${d.observationDomainId})${limits.pendingHoldMs > 0 ? ': hold buffer full' : ''}`,
          body.offset,
          { templateId, observationDomainId: d.observationDomainId },
        ),
      );
      return;
    }
    const packet = this.#packet;
    const h = this.#header;
    if (packet === null || h === null) return;
    const last = session.pending[session.pending.length - 1];
    if (last !== undefined && this.#nowMs < last.receivedAtMs) session.pendingUnordered = true;
    session.pending.push({
      domain: d,
      templateId,
      bytes: body.buf.slice(body.pos, body.end),
      receivedAtMs: this.#nowMs,
      exportTimeS: h.exportTimeS,
      uptimeMs: h.uptimeMs,
      offset: body.offset,
      exporter: packet.exporter,
      identity: packet.identity,
      transport: packet.transport,
    });
    session.pendingBytes += len;
    this.#stats.pendingSets++;
    this.#stats.pendingBytes += len;
    this.#out.pendingHeld++;
  }

  #releasePending(session: SessionState, d: DomainState, templateId: number): void {
    const keep: PendingSet[] = [];
    const ready: PendingSet[] = [];
    for (const p of session.pending) {
      if (p.domain === d && p.templateId === templateId) ready.push(p);
      else keep.push(p);
    }
    if (ready.length === 0) return;
    this.#replacePending(session, keep);
    const t = d.templates.get(templateId);
    for (const p of ready) {
      if (t === undefined || this.#nowMs - p.receivedAtMs > this.#limits.pendingHoldMs) {
        this.#pendingExpired(p);
        continue;
      }
      const ctx = this.#pendingCtx;
      this.#setContext(ctx, d, p.exportTimeS, p.uptimeMs);
      const meta: SetMeta = {
        version: d.version,
        transport: p.transport,
        exporter: p.exporter,
        identity: p.identity,
        observationDomainId: d.observationDomainId,
        exportTimeS: p.exportTimeS,
        v9UptimeMs: p.uptimeMs,
      };
      const view = new DataView(p.bytes.buffer, p.bytes.byteOffset, p.bytes.byteLength);
      this.#decodeSet(t, d, p.bytes, view, 0, p.bytes.length, ctx, meta, p.offset);
      this.#takeUnknownSamplers(ctx);
      this.#out.pendingDecoded++;
    }
    // Options data may have changed sampling/uptime for the rest of the current message.
    if (this.#header !== null && this.#domain !== null) this.#setContext(this.#ctx, this.#domain, this.#header.exportTimeS, this.#header.uptimeMs);
  }

  /**
   * Drops held data past pendingHoldMs. `pending` is in arrival order, so receive times
   * normally ascend and, for each packet (decode), only its front is looked at: the cost is the
   * number expired, not the number held (a full hold buffer scanned for every packet cost
   * ~60 µs a packet at 3000 sets). Once a set was held with an earlier time than the one before
   * it (a wall-clock step back; `sealflow decode` of captures out of time order), every entry
   * is looked at until the buffer empties, as by the periodic expire() (`all`).
   */
  #expirePending(session: SessionState, nowMs: number, all = false): void {
    const pending = session.pending;
    const hold = this.#limits.pendingHoldMs;
    if (all || session.pendingUnordered) {
      const keep: PendingSet[] = [];
      for (const p of pending) {
        if (nowMs - p.receivedAtMs > hold) this.#pendingExpired(p);
        else keep.push(p);
      }
      if (keep.length !== pending.length) this.#replacePending(session, keep);
      return;
    }
    let n = 0;
    let bytes = 0;
    for (let p = pending[0]; p !== undefined && nowMs - p.receivedAtMs > hold; p = pending[++n]) {
      this.#pendingExpired(p);
      bytes += p.bytes.length;
    }
    if (n === 0) return;
    pending.splice(0, n);
    if (pending.length === 0) session.pendingUnordered = false;
    session.pendingBytes -= bytes;
    this.#stats.pendingSets -= n;
    this.#stats.pendingBytes -= bytes;
  }

  #replacePending(session: SessionState, keep: PendingSet[]): void {
    this.#stats.pendingSets -= session.pending.length - keep.length;
    let bytes = 0;
    for (const p of keep) bytes += p.bytes.length;
    this.#stats.pendingBytes -= session.pendingBytes - bytes;
    session.pendingBytes = bytes;
    session.pending.length = 0;
    for (const p of keep) session.pending.push(p);
    if (keep.length === 0) session.pendingUnordered = false;
  }

  #pendingExpired(p: PendingSet): void {
    this.#out.pendingExpired++;
    this.#error(
      new DecodeError(
        DecodeErrorCode.PendingExpired,
        `data set for template ${p.templateId} (observation domain ${p.domain.observationDomainId}) dropped: no template within ${this.#limits.pendingHoldMs} ms`,
        p.offset,
        { templateId: p.templateId, observationDomainId: p.domain.observationDomainId },
      ),
    );
  }

  // ---- bookkeeping ----------------------------------------------------------------------

  #error(err: DecodeError): void {
    const out = this.#out;
    out.errorCount++;
    if (out.errors.length < MAX_ERRORS_PER_OUTCOME) out.errors.push(err);
    const by = this.#stats.errorsByCode;
    by[err.code] = (by[err.code] ?? 0) + 1;
  }

  #finish(out: DecodeOutcome): void {
    const s = this.#stats;
    s.records += out.records.length + out.fusedRecords;
    s.fusedRecords += out.fusedRecords;
    // Unrolled (runs once per packet; a loop over the keys is a megamorphic keyed access).
    // UNROLLED_COUNTERS_COMPLETE fails to compile when a counter is added but not summed here.
    s.templatesLearned += out.templatesLearned;
    s.templatesReplaced += out.templatesReplaced;
    s.templatesWithdrawn += out.templatesWithdrawn;
    s.withdrawalsIgnored += out.withdrawalsIgnored;
    s.templatesExpired += out.templatesExpired;
    s.optionsRecords += out.optionsRecords;
    s.sequenceLost += out.sequenceLost;
    s.pendingHeld += out.pendingHeld;
    s.pendingDecoded += out.pendingDecoded;
    s.pendingExpired += out.pendingExpired;
    s.unknownTemplateSets += out.unknownTemplateSets;
    s.samplerUnknown += out.samplerUnknown;
  }

  // ---- persistence ----------------------------------------------------------------------

  /**
   * Template, options (sampling) and uptime-anchor state of UDP sessions as bytes (UTF-8 JSON
   * with a format tag and version), so a restarted probe decodes UDP data at once instead of
   * waiting up to a template refresh interval. TLS/DTLS/file sessions are not exported: their
   * keys name connections that end with the process. The bytes contain exporter addresses
   * and template layouts, no flow data; the spool stores them encrypted anyway.
   */
  exportState(): Uint8Array {
    const sessions: PersistedSession[] = [];
    for (const s of this.#sessions.values()) {
      if (s.transport !== 'udp') continue;
      const domains: PersistedDomain[] = [];
      for (const d of s.domains.values()) {
        if (d.version !== IPFIX_VERSION && d.version !== NETFLOW9_VERSION) continue;
        const templates: PersistedTemplate[] = [];
        for (const t of d.templates.values()) {
          templates.push({
            id: t.templateId,
            scope: t.scopeFieldCount,
            options: t.isOptions,
            fields: t.fields.map((f) => [f.id, f.enterprise, f.length]),
            expiresAtMs: Number.isFinite(t.expiresAtMs) ? t.expiresAtMs : null,
          });
        }
        if (templates.length === 0 && d.sysInitMs < 0 && d.explicitSampling === 0 && d.samplers.size === 0) continue;
        domains.push({
          version: d.version,
          odid: d.observationDomainId,
          sysInitMs: d.sysInitMs,
          sampling: d.explicitSampling,
          samplers: [...d.samplers],
          templates,
        });
      }
      if (domains.length > 0) sessions.push({ key: s.key, domains });
    }
    const state: PersistedState = { format: STATE_FORMAT, version: STATE_VERSION, sessions };
    return new TextEncoder().encode(JSON.stringify(state));
  }

  /**
   * Restores exportState() output, replacing the state of the sessions it names. Validates
   * everything and applies the current limits; throws only DecodeError (BadState), and
   * changes nothing when it throws.
   */
  importState(state: Uint8Array): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
    } catch {
      throw badState('not UTF-8 JSON');
    }
    const sessions = validateState(parsed, this.#limits);
    const built: SessionState[] = [];
    for (const ps of sessions) {
      const s = new SessionState(ps.key, 'udp');
      for (const pd of ps.domains) {
        const d = s.domain(pd.version, pd.odid);
        d.sysInitMs = pd.sysInitMs;
        d.explicitSampling = pd.sampling;
        for (const [id, interval] of pd.samplers) d.setSampler(id, interval);
        for (const pt of pd.templates) {
          const def: TemplateDefinition = {
            templateId: pt.id,
            fields: pt.fields.map(([id, enterprise, length]) => ({ id, enterprise, length })),
            scopeFieldCount: pt.scope,
            isOptions: pt.options,
            offset: 0,
          };
          const t = this.#factory.build(def, templateSignature(def), pt.expiresAtMs ?? Infinity);
          if (t === null) throw badState(`template ${pt.id} has only zero-length fields`);
          if (!d.templates.has(pt.id)) s.templateCount++;
          d.templates.set(pt.id, t);
        }
      }
      if (s.templateCount > this.#limits.maxTemplatesPerSession) throw badState(`session ${ps.key} exceeds maxTemplatesPerSession`);
      built.push(s);
    }
    for (const s of built) {
      this.endSession(s.key);
      while (this.#sessions.size >= Math.max(1, this.#limits.maxSessions)) {
        const oldest = this.#sessions.keys().next();
        if (oldest.done === true) break;
        this.endSession(oldest.value);
        this.#stats.sessionsEvicted++;
      }
      this.#sessions.set(s.key, s);
      this.#stats.templatesLive += s.templateCount;
    }
    this.#stats.sessions = this.#sessions.size;
  }
}

interface PersistedTemplate {
  id: number;
  scope: number;
  options: boolean;
  fields: [number, number, number][];
  expiresAtMs: number | null;
}
interface PersistedDomain {
  version: number;
  odid: number;
  sysInitMs: number;
  sampling: number;
  samplers: [number, number][];
  templates: PersistedTemplate[];
}
interface PersistedSession {
  key: string;
  domains: PersistedDomain[];
}
interface PersistedState {
  format: string;
  version: number;
  sessions: PersistedSession[];
}

function badState(why: string): DecodeError {
  return new DecodeError(DecodeErrorCode.BadState, `decoder state rejected: ${why}`, 0);
}

const U16_MAX = 0xffff;
const U32_MAX = 0xffffffff;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function uint(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) throw badState(`${what} is not an integer in 0..${max}`);
  return v;
}

function arrayOf(v: unknown, maxLength: number, what: string): unknown[] {
  if (!Array.isArray(v)) throw badState(`${what} is not an array`);
  if (v.length > maxLength) throw badState(`${what} has ${v.length} entries (limit ${maxLength})`);
  return v as unknown[];
}

function validateState(v: unknown, limits: DecodeLimits): PersistedSession[] {
  if (!isRecord(v) || v.format !== STATE_FORMAT) throw badState(`not a ${STATE_FORMAT} document`);
  if (v.version !== STATE_VERSION) throw badState(`unsupported version ${String(v.version)}`);
  return arrayOf(v.sessions, limits.maxSessions, 'sessions').map((s, i) => {
    if (!isRecord(s) || typeof s.key !== 'string' || s.key.length === 0) throw badState(`sessions[${i}].key is not a non-empty string`);
    const key = s.key;
    const domains = arrayOf(s.domains, limits.maxTemplatesPerSession + 1024, `sessions[${i}].domains`).map((d, j) => {
      const at = `sessions[${i}].domains[${j}]`;
      if (!isRecord(d)) throw badState(`${at} is not an object`);
      const version = uint(d.version, U16_MAX, `${at}.version`);
      if (version !== IPFIX_VERSION && version !== NETFLOW9_VERSION) throw badState(`${at}.version ${version} is not 9 or 10`);
      const sysInitMs = typeof d.sysInitMs === 'number' && d.sysInitMs === -1 ? -1 : uint(d.sysInitMs, Number.MAX_SAFE_INTEGER, `${at}.sysInitMs`);
      const samplers = arrayOf(d.samplers, 1024, `${at}.samplers`).map((e, k) => {
        const pair = arrayOf(e, 2, `${at}.samplers[${k}]`);
        return [uint(pair[0], Number.MAX_SAFE_INTEGER, `${at}.samplers[${k}][0]`), uint(pair[1], U32_MAX, `${at}.samplers[${k}][1]`)] as [number, number];
      });
      const templates = arrayOf(d.templates, limits.maxTemplatesPerSession, `${at}.templates`).map((t, k) => {
        const tat = `${at}.templates[${k}]`;
        if (!isRecord(t)) throw badState(`${tat} is not an object`);
        const id = uint(t.id, U16_MAX, `${tat}.id`);
        if (id < MIN_DATA_SET_ID) throw badState(`${tat}.id ${id} < 256`);
        if (typeof t.options !== 'boolean') throw badState(`${tat}.options is not a boolean`);
        const fields = arrayOf(t.fields, limits.maxFieldsPerTemplate, `${tat}.fields`).map((f, m) => {
          const triple = arrayOf(f, 3, `${tat}.fields[${m}]`);
          return [uint(triple[0], U16_MAX, `${tat}.fields[${m}][0]`), uint(triple[1], U32_MAX, `${tat}.fields[${m}][1]`), uint(triple[2], U16_MAX, `${tat}.fields[${m}][2]`)] as [number, number, number];
        });
        if (fields.length === 0) throw badState(`${tat} has no fields`);
        const scope = uint(t.scope, fields.length, `${tat}.scope`);
        if (t.options !== scope > 0 && version === IPFIX_VERSION) throw badState(`${tat}.scope does not match options`);
        const expiresAtMs = t.expiresAtMs === null ? null : uint(t.expiresAtMs, Number.MAX_SAFE_INTEGER, `${tat}.expiresAtMs`);
        return { id, scope, options: t.options, fields, expiresAtMs };
      });
      return { version, odid: uint(d.odid, U32_MAX, `${at}.odid`), sysInitMs, sampling: uint(d.sampling, U32_MAX, `${at}.sampling`), samplers, templates };
    });
    return { key, domains };
  });
}

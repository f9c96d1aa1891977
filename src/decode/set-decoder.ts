import { DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { FieldSpec } from '../flow/flow-record.js';
import { newFlowRecord } from '../flow/flow-record.js';
import type { ByteReader } from './byte-reader.js';
import type { DecodeLimits } from './decode-limits.js';
import { recordError, type DecodeOutcome, type DecodeServiceStats } from './decode-outcome.js';
import type { HeldData } from './held-data.js';
import { budgetError, STATE_COST, templateCost, type StateBudget } from './state-budget.js';
import { clearedResult, type ContextSetSink, type FusedSetResult, type FusedSetSink, type MessageContext, type SetMeta } from './message-context.js';
import { decodeExtendedSet } from './template/extended-set.js';
import { newOptionsValues, readOptionsRecord } from './template/options-record.js';
import { RawRecordView } from './template/raw-record-view.js';
import { RecordContext } from './template/record-context.js';
import { isReliable, MAX_SAMPLERS_PER_DOMAIN, sameLayout, templateSignature, type DecoderFactory, type DomainState, type Template } from './template/template-cache.js';
import type { MessageHeader, TemplateDefinition, WithdrawalScope } from './template/template.js';

export interface SetDecoderOptions {
  readonly factory: DecoderFactory;
  /** Attach each record's bytes and layout as `raw` (see DecodeServiceOptions.rawRecords). */
  readonly rawRecords: boolean;
}

/**
 * What the IPFIX and NetFlow v9 parsers find in a message, put to use (their SetSink): the
 * header opens the message's observation domain; templates are learned, refreshed, withdrawn
 * (RFC 7011 §8) within the session's limit; data sets become records — options data updating
 * the domain's sampling and uptime anchor, other sets through the fused path when a FusedSetSink
 * takes them, else as FlowRecords — or are held until their template comes. Everything about
 * the message in progress is in the MessageContext each call is handed; this object keeps only
 * configuration and scratch.
 */
export class SetDecoder implements ContextSetSink {
  /** The fused path, when one is set (DecodeService.setFusedSink). */
  fused: FusedSetSink | null = null;
  /** Scratch, reused for every data set (filled and read within one call): the fused sink's result and one options record's values. */
  private readonly fusedResult: FusedSetResult = { records: 0, malformed: false, malformedAt: 0 };
  private readonly options = newOptionsValues();
  private readonly factory: DecoderFactory;
  private readonly rawRecords: boolean;

  constructor(
    private readonly limits: Readonly<DecodeLimits>,
    private readonly stats: DecodeServiceStats,
    private readonly held: HeldData,
    private readonly budget: StateBudget,
    options: SetDecoderOptions,
  ) {
    this.factory = options.factory;
    this.rawRecords = options.rawRecords;
  }

  begin(m: MessageContext, h: MessageHeader): void {
    const packet = m.packet;
    m.out.version = h.version;
    m.out.observationDomainId = h.observationDomainId;
    if (!m.session.hasDomain(h.version, h.observationDomainId)) {
      const refused = this.budget.reserve(m.session, STATE_COST.domain);
      if (refused !== null) {
        // The message is skipped: its sets find no domain (template() and data() do nothing).
        m.header = null;
        m.domain = null;
        this.error(m, budgetError(refused, `observation domain ${h.observationDomainId} of exporter ${packet.exporter} not kept`));
        return;
      }
    }
    const d = m.session.domain(h.version, h.observationDomainId);
    m.header = h;
    m.domain = d;
    m.messageRecords = 0;
    m.messageCountKnown = true;
    m.meta = {
      version: h.version,
      transport: packet.transport,
      exporter: packet.exporter,
      identity: packet.identity,
      observationDomainId: h.observationDomainId,
      exportTimeS: h.exportTimeS,
      v9UptimeMs: h.uptimeMs,
    };
    setRecordContext(m.record, d, h.exportTimeS, h.uptimeMs);
  }

  template(m: MessageContext, def: TemplateDefinition): void {
    const session = m.session;
    const d = m.domain;
    if (d === null) return;
    const existing = d.templates.get(def.templateId);
    const expiresAtMs = isReliable(session.transport) ? Infinity : m.nowMs + this.limits.templateLifetimeMs;
    if (existing !== undefined && sameLayout(existing, def)) {
      existing.expiresAtMs = expiresAtMs;
      return;
    }
    const signature = templateSignature(def);
    if (existing === undefined && session.templateCount >= this.limits.maxTemplatesPerSession) {
      this.error(
        m,
        new DecodeError(DecodeErrorCode.TemplateLimit, `session already has ${session.templateCount} templates (limit ${this.limits.maxTemplatesPerSession})`, def.offset, {
          templateId: def.templateId,
        }),
      );
      return;
    }
    // Charged before it is built (the compiled decoder is most of its cost); a replaced one is given back after.
    const cost = templateCost(def.fields.length);
    const refused = this.budget.reserve(session, cost);
    if (refused !== null) {
      this.error(m, budgetError(refused, `template ${def.templateId} of exporter ${m.packet.exporter} not learned`, def.offset));
      return;
    }
    const t = this.factory.build(def, signature, expiresAtMs);
    if (t === null) {
      this.budget.release(session, cost);
      this.error(m, new DecodeError(DecodeErrorCode.BadTemplate, `template ${def.templateId}: every field has length 0, records would be empty`, def.offset, { templateId: def.templateId }));
      return;
    }
    if (existing !== undefined) this.budget.release(session, templateCost(existing.fields.length));
    if (existing === undefined) {
      session.templateCount++;
      this.stats.templatesLive++;
      m.out.templatesLearned++;
    } else {
      m.out.templatesReplaced++;
    }
    d.templates.set(def.templateId, t);
    // Held sets can only be waiting for a template that was unknown (or expired, hence
    // removed): a refresh of a live one finds none, so it skips the scan of the hold buffer.
    if (session.pending.length > 0) this.releaseHeld(m, d, def.templateId);
  }

  withdraw(m: MessageContext, templateId: number, scope: WithdrawalScope): void {
    const session = m.session;
    const d = m.domain;
    if (d === null) return;
    if (!isReliable(session.transport)) {
      // RFC 7011 §8.4: over UDP templates only expire; a withdrawal (possibly spoofed or
      // reordered) must not remove one.
      m.out.withdrawalsIgnored++;
      return;
    }
    for (const [id, t] of d.templates) {
      const hit = scope === 'one' ? id === templateId : scope === 'allTemplates' ? !t.isOptions : t.isOptions;
      if (!hit) continue;
      d.templates.delete(id);
      session.templateCount--;
      this.stats.templatesLive--;
      this.budget.release(session, templateCost(t.fields.length));
      m.out.templatesWithdrawn++;
    }
  }

  data(m: MessageContext, templateId: number, body: ByteReader): void {
    const session = m.session;
    const d = m.domain;
    if (d === null) return;
    let t = d.templates.get(templateId);
    if (t !== undefined && t.expiresAtMs < m.nowMs) {
      d.templates.delete(templateId);
      session.templateCount--;
      this.stats.templatesLive--;
      this.budget.release(session, templateCost(t.fields.length));
      m.out.templatesExpired++;
      t = undefined;
    }
    if (t === undefined) {
      m.messageCountKnown = false;
      this.held.hold(m, d, templateId, body);
      return;
    }
    const n = this.decodeSet(m, t, d, body.buf, body.view, body.pos, body.end, m.record, m.meta, body.offset - body.pos);
    this.takeUnknownSamplers(m.out, m.record);
    if (n < 0) m.messageCountKnown = false;
    else m.messageRecords += n;
  }

  error(m: MessageContext, err: DecodeError): void {
    recordError(m.out, this.stats, err);
  }

  /** Decodes the sets held for template `templateId` of domain `d`, now that it has come (or drops those past their time). */
  private releaseHeld(m: MessageContext, d: DomainState, templateId: number): void {
    const ready = this.held.take(m.session, d, templateId);
    if (ready.length === 0) return;
    const t = d.templates.get(templateId);
    // Held sets keep the export time and uptime of the message that carried them.
    const ctx = new RecordContext();
    for (const p of ready) {
      if (t === undefined || this.held.isStale(p, m.nowMs)) {
        this.held.expired(m.out, p);
        continue;
      }
      setRecordContext(ctx, d, p.exportTimeS, p.uptimeMs);
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
      this.decodeSet(m, t, d, p.bytes, view, 0, p.bytes.length, ctx, meta, p.offset);
      this.takeUnknownSamplers(m.out, ctx);
      m.out.pendingDecoded++;
    }
    // Options data may have changed sampling/uptime for the rest of the current message.
    if (m.header !== null && m.domain !== null) setRecordContext(m.record, m.domain, m.header.exportTimeS, m.header.uptimeMs);
  }

  /**
   * Decodes the records of one data set in [p, end). Returns the number of records, or -1
   * when the set was malformed (records before the problem are kept). `offsetBase` is the
   * message offset of buf[0], for error offsets.
   */
  private decodeSet(m: MessageContext, t: Template, d: DomainState, buf: Uint8Array, view: DataView, p: number, end: number, ctx: RecordContext, meta: SetMeta, offsetBase: number): number {
    const out = m.out;
    let count = 0;
    if (t.isOptions) {
      const o = this.options;
      while (end - p >= t.minLength) {
        const q = readOptionsRecord(t.fields, view, p, end, o);
        if (q < 0) return this.badVarLength(m, t, offsetBase + p);
        if (o.sysInitMs >= 0) d.sysInitMs = o.sysInitMs;
        if (o.interval > 0) {
          if (o.samplerId < 0) d.explicitSampling = o.interval;
          else if (d.samplers.has(o.samplerId) || (d.samplers.size < MAX_SAMPLERS_PER_DOMAIN && this.budget.reserve(m.session, STATE_COST.sampler) === null)) d.setSampler(o.samplerId, o.interval);
        }
        out.optionsRecords++;
        out.options.push({
          templateId: t.templateId,
          observationDomainId: meta.observationDomainId,
          recordIndex: out.records.length,
          raw: { fields: t.fields, bytes: buf.subarray(p, q) },
        });
        count++;
        p = q;
      }
      // Later data sets of this message use what the options just said.
      setRecordContext(ctx, d, meta.exportTimeS, meta.v9UptimeMs);
      return count;
    }
    const fused = this.fused;
    // Biflow templates (two records of one wire record) and packet sections take the FlowRecord path.
    if (fused !== null && !this.rawRecords && t.reverse === null && t.section === null) {
      const result = clearedResult(this.fusedResult);
      let taken: boolean;
      try {
        taken = fused.writeSet(t, view, buf, p, end, ctx, meta, result);
      } finally {
        // Records the sink took before a failure (reported by decode() as a decode error) are counted too.
        out.fusedRecords += result.records;
      }
      if (taken) return result.malformed ? this.badVarLength(m, t, offsetBase + result.malformedAt) : result.records;
    }
    const records = out.records;
    const fields: readonly FieldSpec[] = t.fields;
    const decoder = t.decoder;
    const { version, transport, exporter, identity, observationDomainId, exportTimeS } = meta;
    const fixed = t.fixedLength;
    const raw = this.rawRecords;
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
      return n >= 0 ? n : this.badVarLength(m, t, offsetBase - 1 - n);
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
        return this.badVarLength(m, t, offsetBase + p);
      }
      if (raw) r.raw = new RawRecordView(fields, buf, p, q);
      records.push(r);
      p = q;
      count++;
    }
    return count;
  }

  private takeUnknownSamplers(out: DecodeOutcome, ctx: RecordContext): void {
    out.samplerUnknown += ctx.unknownSamplerRecords;
    ctx.unknownSamplerRecords = 0;
  }

  private badVarLength(m: MessageContext, t: Template, offset: number): number {
    this.error(m, new DecodeError(DecodeErrorCode.BadVarLength, `template ${t.templateId}: a variable-length field runs past the end of its set`, offset, { templateId: t.templateId }));
    return -1;
  }
}

/** Points `ctx` at domain `d`'s state for a message exported at `exportTimeS` (v9: with its header's sysUpTime, -1 for IPFIX). */
function setRecordContext(ctx: RecordContext, d: DomainState, exportTimeS: number, v9UptimeMs: number): void {
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

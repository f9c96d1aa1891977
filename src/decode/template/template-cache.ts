import type { FieldSpec, Transport } from '../../flow/flow-record.js';
import type { FieldPlan } from './field-mapping.js';
import { planTemplate, VARIABLE_LENGTH } from './field-mapping.js';
import { isBiflowTemplate, trafficMeasure, REVERSE_ENTERPRISE, type TrafficMeasure } from './biflow.js';
import { DEFAULT_LAYER_POLICY, type LayerPolicy } from './layer-policy.js';
import { planSection, type SectionPlan } from './packet-section.js';
import type { RecordDecoder } from './record-decoder.js';
import { compileRecordDecoder, genericRecordDecoder, minRecordLength } from './record-decoder.js';
import type { SequenceState } from './sequence-tracker.js';
import { newSequenceState } from './sequence-tracker.js';
import type { TemplateDefinition } from './template.js';
import { templateCost } from '../state-cost.js';

/**
 * Template and options state, scoped as RFC 7011 §3 / §8 require: per transport session
 * (SessionState), per observation domain / v9 source ID within it (DomainState, keyed also
 * by protocol version so an exporter sending v9 and IPFIX to one port keeps them apart), per
 * template ID within that.
 */

/** A learned template with its record decoder. */
export interface Template {
  readonly templateId: number;
  readonly fields: readonly FieldSpec[];
  readonly scopeFieldCount: number;
  readonly isOptions: boolean;
  /** Record length when every field is fixed-length, else -1. */
  readonly fixedLength: number;
  /** Smallest possible record (≥ 1: templates that could encode a 0-byte record are refused). */
  readonly minLength: number;
  readonly decoder: RecordDecoder;
  /** The forward field plans (layer policy applied) the decoder was built from; fused writers are built from them too. */
  readonly plans: readonly FieldPlan[];
  /** The reverse direction of a biflow template (RFC 5103, see biflow.ts); null for a one-direction template. */
  readonly reverse: ReverseDecoding | null;
  /** A packet section to parse per record (packet-section.ts); null when the template has none. */
  readonly section: SectionPlan | null;
  /** Identity of the layout, to tell a refresh from a changed template. */
  readonly signature: string;
  /** Unix ms after which the template is stale (UDP/DTLS, RFC 7011 §8.4); Infinity on reliable transports. */
  expiresAtMs: number;
}

/** How a biflow template's records become a second, reverse record. */
export interface ReverseDecoding {
  readonly decoder: RecordDecoder;
  /** What tells whether the forward / reverse direction saw traffic. */
  readonly forwardMeasure: TrafficMeasure;
  readonly reverseMeasure: TrafficMeasure;
}

/** Largest number of distinct sampler IDs remembered per domain (a bound on options-driven memory). */
export const MAX_SAMPLERS_PER_DOMAIN = 1024;

export class DomainState {
  readonly version: number;
  readonly observationDomainId: number;
  readonly templates = new Map<number, Template>();
  /** systemInitTimeMilliseconds from options data (IPFIX), Unix ms; -1 when unknown. */
  sysInitMs = -1;
  /** Sampling interval options data gave without a sampler ID; 0 when none. */
  explicitSampling = 0;
  readonly samplers = new Map<number, number>();
  readonly sequence: SequenceState = newSequenceState();

  constructor(version: number, observationDomainId: number) {
    this.version = version;
    this.observationDomainId = observationDomainId;
  }

  /**
   * Interval for records naming no sampler: the domain-wide value when options data gave one,
   * else the only sampler's when there is exactly one, else 1 (unsampled, or unknown).
   */
  get defaultSampling(): number {
    if (this.explicitSampling > 0) return this.explicitSampling;
    if (this.samplers.size === 1) for (const v of this.samplers.values()) return v;
    return 1;
  }

  setSampler(samplerId: number, interval: number): void {
    if (this.samplers.has(samplerId) || this.samplers.size < MAX_SAMPLERS_PER_DOMAIN) this.samplers.set(samplerId, interval);
  }
}

/** A data set held until its template arrives (RFC 7011 §9.3). Its bytes are a private copy. */
export interface PendingSet {
  readonly domain: DomainState;
  readonly templateId: number;
  readonly bytes: Uint8Array;
  readonly receivedAtMs: number;
  readonly exportTimeS: number;
  /** v9 header sysUpTime; -1 for IPFIX. */
  readonly uptimeMs: number;
  /** Offset of the set body in its message, for errors. */
  readonly offset: number;
  readonly exporter: string;
  readonly identity: string | null;
  readonly transport: Transport;
}

export class SessionState {
  readonly key: string;
  /** The exporter address whose state budget this session is charged to (state-budget.ts). */
  readonly exporter: string;
  /** Bytes charged to the budget for this session and everything in it. */
  stateBytes = 0;
  transport: Transport;
  readonly domains = new Map<number, DomainState>();
  templateCount = 0;
  readonly pending: PendingSet[] = [];
  pendingBytes = 0;
  /** A set was held with an earlier receive time than the one before it (a clock step back, or replayed captures out of order): `pending` is not in time order until it empties. */
  pendingUnordered = false;
  lastSeenMs = 0;

  constructor(key: string, transport: Transport, exporter: string = key) {
    this.key = key;
    this.transport = transport;
    this.exporter = exporter;
  }

  hasDomain(version: number, observationDomainId: number): boolean {
    return this.domains.has(version * 0x100000000 + observationDomainId);
  }

  domain(version: number, observationDomainId: number): DomainState {
    const k = version * 0x100000000 + observationDomainId;
    let d = this.domains.get(k);
    if (d === undefined) {
      d = new DomainState(version, observationDomainId);
      this.domains.set(k, d);
    }
    return d;
  }
}

/** Whether the transport delivers reliably and in order, so templates never expire and withdrawals count (RFC 7011 §8). */
export function isReliable(transport: Transport): boolean {
  return transport === 'tls' || transport === 'file';
}

export function templateSignature(def: Pick<TemplateDefinition, 'fields' | 'scopeFieldCount' | 'isOptions'>): string {
  let s = `${def.isOptions ? 'o' : 'd'}${def.scopeFieldCount}`;
  for (const f of def.fields) s += `|${f.enterprise}:${f.id}:${f.length}`;
  return s;
}

/**
 * Whether `def` has the layout of the learned template `t` (what equal signatures mean),
 * compared field by field: a template refresh, which some exporters send in every packet,
 * then costs no signature string.
 */
export function sameLayout(t: Template, def: Pick<TemplateDefinition, 'fields' | 'scopeFieldCount' | 'isOptions'>): boolean {
  const a = t.fields;
  const b = def.fields;
  if (t.isOptions !== def.isOptions || t.scopeFieldCount !== def.scopeFieldCount || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x?.id !== y?.id || x?.length !== y?.length || x?.enterprise !== y?.enterprise) return false;
  }
  return true;
}

/**
 * The specialised decoder, or the per-field loop where code generation is not allowed
 * (node --disallow-code-generation-from-strings makes `new Function` throw).
 */
function compileOrGeneric(plans: readonly FieldPlan[]): RecordDecoder {
  try {
    return compileRecordDecoder(plans);
  } catch {
    return genericRecordDecoder(plans);
  }
}

/**
 * Bound on the compiled layouts kept for reuse across sessions (many exporters share a
 * handful), in estimated bytes (the state budget's template cost, src/decode/state-budget.ts):
 * decoders of templates since evicted stay reachable from here, so this is part of the
 * decoder's fixed memory overhead (docs/decoding.md, "Memory").
 */
export const MAX_CACHED_DECODER_BYTES = 8 * 1024 * 1024;

/**
 * Builds record decoders and shares them between sessions with the same layout, so a fleet
 * of identically configured exporters costs one compilation per layout.
 */
export class DecoderFactory {
  readonly #compiled: boolean;
  readonly #layer: LayerPolicy;
  readonly #cache = new Map<string, RecordDecoder>();
  #cacheBytes = 0;

  constructor(compiled: boolean, layer: LayerPolicy = DEFAULT_LAYER_POLICY) {
    this.#compiled = compiled;
    this.#layer = layer;
  }

  #decoder(key: string, plans: readonly FieldPlan[]): RecordDecoder {
    let decoder = this.#cache.get(key);
    if (decoder === undefined) {
      decoder = this.#compiled ? compileOrGeneric(plans) : genericRecordDecoder(plans);
      const bytes = templateCost(plans.length);
      if (this.#cacheBytes + bytes > MAX_CACHED_DECODER_BYTES) {
        this.#cache.clear();
        this.#cacheBytes = 0;
      }
      this.#cache.set(key, decoder);
      this.#cacheBytes += bytes;
    }
    return decoder;
  }

  build(def: TemplateDefinition, signature: string, expiresAtMs: number): Template | null {
    const plans: FieldPlan[] = planTemplate(def.fields, def.scopeFieldCount, { layer: this.#layer });
    const minLength = minRecordLength(plans);
    if (minLength === 0) return null;
    const decoder = this.#decoder(signature, plans);
    let reverse: ReverseDecoding | null = null;
    if (!def.isOptions && isBiflowTemplate(def.fields, def.scopeFieldCount)) {
      const reversePlans = planTemplate(def.fields, def.scopeFieldCount, { layer: this.#layer, direction: 'reverse' });
      reverse = {
        decoder: this.#decoder(`${signature}|reverse`, reversePlans),
        forwardMeasure: trafficMeasure(def.fields, def.scopeFieldCount, 0),
        reverseMeasure: trafficMeasure(def.fields, def.scopeFieldCount, REVERSE_ENTERPRISE),
      };
    }
    const fixed = def.fields.every((f) => f.length !== VARIABLE_LENGTH);
    return {
      templateId: def.templateId,
      fields: def.fields,
      scopeFieldCount: def.scopeFieldCount,
      isOptions: def.isOptions,
      fixedLength: fixed ? minLength : -1,
      minLength,
      decoder,
      plans,
      reverse,
      section: def.isOptions ? null : planSection(def.fields, def.scopeFieldCount, plans, this.#layer),
      signature,
      expiresAtMs,
    };
  }
}

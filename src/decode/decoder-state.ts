import { DecodeError, DecodeErrorCode } from '../flow/errors.js';
import type { DecodeLimits } from './decode-limits.js';
import { IPFIX_VERSION } from './ipfix/ipfix.js';
import { NETFLOW9_VERSION } from './netflow9/netflow9.js';
import { SessionState, templateSignature, type DecoderFactory } from './template/template-cache.js';
import { MIN_DATA_SET_ID, type TemplateDefinition } from './template/template.js';

/**
 * The decoder's state across restarts: template, options (sampling) and uptime-anchor state
 * of UDP sessions as bytes (UTF-8 JSON with a format tag and version), so a restarted probe
 * decodes UDP data at once instead of waiting up to a template refresh interval. TLS/DTLS/file
 * sessions are not saved: their keys name connections that end with the process. The bytes
 * contain exporter addresses and template layouts, no flow data; the spool stores them
 * encrypted anyway. Reading them back validates everything against the current limits.
 */

const STATE_FORMAT = 'sealflow-decode-state';
const STATE_VERSION = 1;

/** The state of `sessions` as bytes (see above). */
export function exportSessions(sessions: Iterable<SessionState>): Uint8Array {
  const saved: PersistedSession[] = [];
  for (const s of sessions) {
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
    if (domains.length > 0) saved.push({ key: s.key, domains });
  }
  const state: PersistedState = { format: STATE_FORMAT, version: STATE_VERSION, sessions: saved };
  return new TextEncoder().encode(JSON.stringify(state));
}

/**
 * The sessions saved in `state`, built (templates compiled by `factory`) and checked against
 * `limits`. Throws only DecodeError (BadState), before anything is built when the document is
 * invalid.
 */
export function importSessions(state: Uint8Array, limits: Readonly<DecodeLimits>, factory: DecoderFactory): SessionState[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(state));
  } catch {
    throw badState('not UTF-8 JSON');
  }
  const sessions = validateState(parsed, limits);
  const built: SessionState[] = [];
  for (const ps of sessions) {
    const s = new SessionState(ps.key, 'udp', exporterOfKey(ps.key));
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
        const t = factory.build(def, templateSignature(def), pt.expiresAtMs ?? Infinity);
        if (t === null) throw badState(`template ${pt.id} has only zero-length fields`);
        if (!d.templates.has(pt.id)) s.templateCount++;
        d.templates.set(pt.id, t);
      }
    }
    if (s.templateCount > limits.maxTemplatesPerSession) throw badState(`session ${ps.key} exceeds maxTemplatesPerSession`);
    built.push(s);
  }
  return built;
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

/** The exporter address in a UDP session key (`udp|<address>|<port>|<local port>`, see udp-listener.ts), else the key. */
function exporterOfKey(key: string): string {
  const parts = key.split('|');
  return parts.length >= 2 && parts[1] !== undefined && parts[1] !== '' ? parts[1] : key;
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

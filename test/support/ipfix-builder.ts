/**
 * Builds IPFIX (RFC 7011) and NetFlow v9 (RFC 3954) packets from readable values, so tests
 * state what they send instead of pasting hex. Field values: numbers/bigints (big-endian in the
 * field's length, so reduced-size encoding is just a shorter length), dotted/colon address
 * text for 4/16-byte address fields, strings (UTF-8), or raw bytes. Variable-length fields
 * (length 0xffff) get the 1-byte length prefix, or 255 + 2 bytes when the value is ≥ 255 bytes
 * long or `longLength` is set (RFC 7011 §7).
 */
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { Transport } from '../../src/flow/flow-record.js';
import { parseIp } from '../../src/flow/ip.js';

export const VARLEN = 0xffff;

export interface FieldDef {
  readonly id: number;
  readonly length: number;
  readonly enterprise?: number;
}

export type FieldValue = number | bigint | string | Uint8Array | { readonly bytes: Uint8Array; readonly longLength: true };

export interface TemplateDef {
  readonly id: number;
  readonly fields: readonly FieldDef[];
  /** Options templates: number of leading scope fields. */
  readonly scopeCount?: number;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

function u16(v: number): Uint8Array {
  return Uint8Array.of((v >>> 8) & 0xff, v & 0xff);
}

function u32(v: number): Uint8Array {
  return Uint8Array.of((v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
}

/** Unsigned big-endian integer in exactly `length` bytes. */
export function uintBytes(value: number | bigint, length: number): Uint8Array {
  let v = BigInt(value);
  if (v < 0n || v >= 1n << BigInt(8 * length)) throw new RangeError(`${value} does not fit ${length} bytes`);
  const out = new Uint8Array(length);
  for (let i = length - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function encodeValue(field: FieldDef, value: FieldValue): Uint8Array {
  let body: Uint8Array;
  let longLength = false;
  if (typeof value === 'number' || typeof value === 'bigint') {
    if (field.length === VARLEN) throw new RangeError('numbers need a fixed length');
    return uintBytes(value, field.length);
  }
  if (typeof value === 'string') {
    const ip = field.length === 4 || field.length === 16 ? parseIp(value) : null;
    if (ip !== null) {
      body = typeof ip === 'number' ? u32(ip) : ip;
    } else {
      body = new TextEncoder().encode(value);
    }
  } else if (value instanceof Uint8Array) {
    body = value;
  } else {
    body = value.bytes;
    longLength = true;
  }
  if (field.length === VARLEN) {
    if (longLength || body.length >= 255) return concat([Uint8Array.of(255), u16(body.length), body]);
    return concat([Uint8Array.of(body.length), body]);
  }
  if (body.length > field.length) throw new RangeError(`value of ${body.length} bytes for a ${field.length}-byte field`);
  const out = new Uint8Array(field.length);
  out.set(body);
  return out;
}

function fieldSpec(f: FieldDef): Uint8Array {
  if (f.enterprise === undefined) return concat([u16(f.id), u16(f.length)]);
  return concat([u16(f.id | 0x8000), u16(f.length), u32(f.enterprise)]);
}

function set(id: number, body: Uint8Array, padding = 0): Uint8Array {
  return concat([u16(id), u16(4 + body.length + padding), body, new Uint8Array(padding)]);
}

// ---- IPFIX ---------------------------------------------------------------------------

export function ipfixTemplateSet(templates: readonly TemplateDef[], padding = 0): Uint8Array {
  return set(2, concat(templates.map((t) => concat([u16(t.id), u16(t.fields.length), ...t.fields.map(fieldSpec)]))), padding);
}

export function ipfixOptionsTemplateSet(templates: readonly TemplateDef[], padding = 0): Uint8Array {
  return set(3, concat(templates.map((t) => concat([u16(t.id), u16(t.fields.length), u16(t.scopeCount ?? 1), ...t.fields.map(fieldSpec)]))), padding);
}

/** Template Withdrawal records (RFC 7011 §8.1): template id with field count 0. */
export function ipfixWithdrawalSet(templateIds: readonly number[], options = false): Uint8Array {
  return set(options ? 3 : 2, concat(templateIds.map((id) => concat([u16(id), u16(0)]))));
}

export function dataSet(templateId: number, fields: readonly FieldDef[], records: readonly (readonly FieldValue[])[], padding = 0): Uint8Array {
  const body = concat(
    records.map((rec) => {
      if (rec.length !== fields.length) throw new RangeError(`record has ${rec.length} values for ${fields.length} fields`);
      return concat(rec.map((v, i) => encodeValue(fields[i]!, v)));
    }),
  );
  return set(templateId, body, padding);
}

/** A raw set with any id and body (for malformed-input tests). */
export function rawSet(setId: number, body: Uint8Array, declaredLength?: number): Uint8Array {
  return concat([u16(setId), u16(declaredLength ?? 4 + body.length), body]);
}

export interface IpfixHeader {
  readonly exportTime?: number;
  readonly sequence?: number;
  readonly domain?: number;
}

export function ipfixMessage(header: IpfixHeader, sets: readonly Uint8Array[]): Uint8Array {
  const body = concat(sets);
  return concat([u16(10), u16(16 + body.length), u32(header.exportTime ?? 1_700_000_000), u32(header.sequence ?? 0), u32(header.domain ?? 0), body]);
}

// ---- NetFlow v9 ----------------------------------------------------------------------

export function v9TemplateFlowSet(templates: readonly TemplateDef[]): Uint8Array {
  return set(0, concat(templates.map((t) => concat([u16(t.id), u16(t.fields.length), ...t.fields.map((f) => concat([u16(f.id), u16(f.length)]))]))));
}

export function v9OptionsTemplateFlowSet(templates: readonly TemplateDef[]): Uint8Array {
  return set(
    1,
    concat(
      templates.map((t) => {
        const scope = t.scopeCount ?? 1;
        const rec = concat([u16(t.id), u16(scope * 4), u16((t.fields.length - scope) * 4), ...t.fields.map((f) => concat([u16(f.id), u16(f.length)]))]);
        return concat([rec, new Uint8Array((4 - (rec.length % 4)) % 4)]);
      }),
    ),
  );
}

export interface V9Header {
  readonly count?: number;
  readonly uptimeMs?: number;
  readonly unixSecs?: number;
  readonly sequence?: number;
  readonly sourceId?: number;
}

export function v9Packet(header: V9Header, flowSets: readonly Uint8Array[]): Uint8Array {
  return concat([u16(9), u16(header.count ?? 0), u32(header.uptimeMs ?? 0), u32(header.unixSecs ?? 1_700_000_000), u32(header.sequence ?? 0), u32(header.sourceId ?? 0), ...flowSets]);
}

// ---- packets -------------------------------------------------------------------------

export interface PacketOptions {
  readonly transport?: Transport;
  readonly sessionKey?: string;
  readonly receivedAtMs?: number;
  readonly exporter?: string;
}

export function exporterPacket(payload: Uint8Array, o: PacketOptions = {}): ExporterPacket {
  const transport = o.transport ?? 'udp';
  const exporter = o.exporter ?? '192.0.2.10';
  return {
    payload,
    exporter,
    exporterPort: 40000,
    transport,
    sessionKey: o.sessionKey ?? `${transport}|${exporter}|40000|4739`,
    identity: transport === 'tls' || transport === 'dtls' ? 'exporter.test' : null,
    receivedAtMs: o.receivedAtMs ?? 1_700_000_000_000,
  };
}

/**
 * Helpers for the audit trail tests: IPFIX traffic with random addresses (so batches do not
 * compress to nothing and a small quota fills), the clock-offset preload for child probes, a
 * read-only look into a spool database's trail, and export-file surgery for tamper tests.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { canonicalJson, type CanonicalValue } from '../../src/audit/canonical-json.js';
import type { DeviceKey } from '../../src/audit/device-key.js';
import { dataSet, ipfixMessage, ipfixTemplateSet, type FieldDef } from './ipfix-builder.js';
import { bindUdp, sendUdp } from './udp-harness.js';

const FIELDS: readonly FieldDef[] = [
  { id: 8, length: 4 }, // sourceIPv4Address
  { id: 12, length: 4 }, // destinationIPv4Address
  { id: 7, length: 2 }, // sourceTransportPort
  { id: 11, length: 2 }, // destinationTransportPort
  { id: 4, length: 1 }, // protocolIdentifier
  { id: 1, length: 8 }, // octetDeltaCount
  { id: 2, length: 8 }, // packetDeltaCount
];
const RECORDS_PER_PACKET = 40;

/** Sends `records` IPFIX records with random addresses and counters to 127.0.0.1:`port`, paced so loopback drops nothing. Returns the sent source addresses (dotted). */
export async function sendRandomFlows(port: number, records: number, exportTime = Math.floor(Date.now() / 1000)): Promise<string[]> {
  const s = await bindUdp('127.0.0.1');
  const sources: string[] = [];
  try {
    await sendUdp(s, ipfixMessage({ exportTime, sequence: 0 }, [ipfixTemplateSet([{ id: 300, fields: FIELDS }])]), port);
    let sent = 0;
    let seq = 0;
    while (sent < records) {
      const n = Math.min(RECORDS_PER_PACKET, records - sent);
      const rows = [];
      for (let i = 0; i < n; i++) {
        const r = randomBytes(20);
        const src = r.readUInt32BE(0);
        sources.push(`${r[0]}.${r[1]}.${r[2]}.${r[3]}`);
        rows.push([src, r.readUInt32BE(4), r.readUInt16BE(8), r.readUInt16BE(10), 6, BigInt(r.readUInt32BE(12)), BigInt(r.readUInt16BE(16))]);
      }
      await sendUdp(s, ipfixMessage({ exportTime, sequence: seq }, [dataSet(300, FIELDS, rows)]), port);
      seq += n;
      sent += n;
      // ~400 records per ms at most: well below what a 4 MiB receive buffer absorbs.
      if (sent % 4000 === 0) await new Promise((r) => setTimeout(r, 10));
    }
  } finally {
    s.close();
  }
  return sources;
}

/** NODE_OPTIONS that shift Date.now() in a child probe (and its worker threads) by `offsetMs`. */
export function clockOffsetEnv(offsetMs: number): NodeJS.ProcessEnv {
  const preload = fileURLToPath(new URL('./clock-offset.mjs', import.meta.url));
  return { NODE_OPTIONS: `--import ${preload}`, SEALFLOW_TEST_CLOCK_OFFSET_MS: String(offsetMs) };
}

/** Counts of audit events by kind in a spool database (read-only; the probe may be running). */
export function trailKinds(dbPath: string): Record<string, number> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'audit_events'").get() === undefined) return {};
    const rows = db.prepare('SELECT kind, count(*) AS n FROM audit_events GROUP BY kind').all() as { kind: string; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
  } finally {
    db.close();
  }
}

export type ExportRecord = Record<string, unknown> & { type: string };

export function readExport(path: string): ExportRecord[] {
  return readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as ExportRecord);
}

export function writeExportLines(path: string, records: readonly ExportRecord[]): void {
  writeFileSync(path, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
}

/** Re-signs every signed record (digests, receipts, seal) with `key`, naming it as the signer or not. */
export function resignAll(records: readonly ExportRecord[], key: DeviceKey, claimKeyId: string | null): ExportRecord[] {
  return records.map((r) => {
    if (r.type !== 'digest' && r.type !== 'receipt' && r.type !== 'seal') return r;
    const body = { ...(r.body as Record<string, unknown>), keyId: claimKeyId ?? key.keyId };
    return { ...r, body, signature: Buffer.from(key.sign(canonicalJson(body as CanonicalValue))).toString('base64') };
  });
}

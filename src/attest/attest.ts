import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ingestWorkerInit } from '../app.js';
import { configHash } from '../audit/audit-service.js';
import type { CanonicalValue } from '../audit/canonical-json.js';
import { canonicalJson } from '../audit/canonical-json.js';
import type { DeviceKey } from '../audit/device-key.js';
import { AuditNotary, signDocument, type Signed } from '../audit/notary.js';
import { AuditTrail } from '../audit/trail.js';
import { encodeBatch } from '../batch/encoder.js';
import { redactConfig } from '../config/redact-config.js';
import { DecodeService } from '../decode/decode-service.js';
import type { Config } from '../config/schema.js';
import { PrefixSet } from '../flow/cidr.js';
import { IngestWorker } from '../ingest-worker/ingest-worker.js';
import { UdpListener } from '../ingest/udp/udp-listener.js';
import { SEALFLOW_VERSION } from '../observability/build-info.js';
import { batchDigest } from '../spool/compression.js';
import { Spool, SPOOL_DB_FILE } from '../spool/spool.js';
import { CANARY_DOMAIN, CANARY_RECORDS, canaryMessage, needles, type Needle } from './canary.js';
import { checkAdmin, checkAllowlist, checkCoreDumps, checkDataDir, checkQuotaAndRetention, checkSecrets, checkTransportVersions, findProbePids, type Check, type ResolvedSecret } from './posture.js';
import { scanPaths, type ScanHit, type ScanResult } from './scan.js';

/**
 * `sealflow attest`: a self-attestation against the live configuration and data directory.
 *
 * 1. Posture (posture.ts): core dumps, secrets (argv, file modes, development keys, signing
 *    key), admin endpoint, UDP allowlist, TLS/DTLS floors, quota and retention, data directory.
 * 2. Canaries through the real ingest path: a UDP listener on 127.0.0.1 (an ephemeral port)
 *    feeds a real ingest worker thread (decode → batch → compress → seal → SQLite) on the
 *    configured spool, with the configured KEK; its batches are committed already parked
 *    ('attest-canary'), so no drain — this probe's or one running beside it — ever leases them.
 *    Flow filters are not applied to the canaries (a filter may rightly drop them).
 * 3. Scans (scan.ts) of every file under the data and spool directories and any extra path
 *    (logs): once when the canary batch is committed, once after the worker stopped (final
 *    commit, TRUNCATE checkpoint, spool closed), for every encoding of the canaries
 *    (canary.ts), and for the KEK and signing key (outside their own files).
 * 4. The canary batch is read back (its plaintext digest checked against the trail's
 *    batch.sealed event), then removed and its epoch key destroyed at once (discardHeld).
 * 5. A report: signed with the device key, recorded in the trail (attest.completed).
 * The report names encodings, files and offsets, never the canary values or a secret.
 */

export const CANARY_HOLD_REASON = 'attest-canary';
const REPORT_FORMAT = 'sealflow-attest-report/1';
/** The canary batch must be committed within this (batch maxAgeMs, default 1 s, plus the group commit). */
const COMMIT_TIMEOUT_MS = 30_000;

export interface AttestOptions {
  readonly config: Config;
  /** Spool KEKs, current first. */
  readonly keks: readonly Uint8Array[];
  /** The master pseudonymisation key when privacy.pseudonymize is on: the canaries take the probe's whole path. */
  readonly pseudonymizeKey: Uint8Array | null;
  readonly key: DeviceKey | null;
  /** Every configured secret, resolved (argv and file checks; never reported). */
  readonly secrets: readonly ResolvedSecret[];
  /** Files or directories scanned besides the data and spool directories (log files). */
  readonly extraScanPaths?: readonly string[];
  /** The probe's process ids (default: found by command line). */
  readonly probePids?: readonly number[];
  readonly logger: Logger;
}

export interface AttestFinding {
  readonly check: string;
  readonly detail: string;
}

export interface AttestReport {
  readonly format: typeof REPORT_FORMAT;
  readonly passed: boolean;
  readonly host: string;
  readonly version: string;
  readonly spoolId: string;
  readonly keyId: string | null;
  readonly configHash: string;
  readonly startedAtMs: number;
  readonly finishedAtMs: number;
  readonly checks: readonly Check[];
  readonly findings: readonly AttestFinding[];
  readonly canary: {
    readonly records: number;
    readonly batches: readonly { readonly id: number; readonly records: number; readonly digest: string }[];
    readonly discardedBatches: number;
    readonly shreddedEpochs: readonly number[];
    readonly encodings: readonly string[];
    readonly scans: readonly { readonly phase: string; readonly files: number; readonly bytes: number; readonly hits: number }[];
    readonly files: readonly { readonly path: string; readonly bytes: number }[];
    readonly hits: readonly ScanHit[];
  };
}

function secretNeedles(secrets: readonly ResolvedSecret[], keks: readonly Uint8Array[]): { needles: Needle[]; ownFiles: Set<string> } {
  const out: Needle[] = [];
  const ownFiles = new Set<string>();
  keks.forEach((k, i) => {
    out.push({ name: `spool KEK ${i} (raw)`, bytes: Buffer.from(k) });
    out.push({ name: `spool KEK ${i} (base64)`, bytes: Buffer.from(Buffer.from(k).toString('base64').replace(/=+$/, '')) });
  });
  for (const s of secrets) {
    if ('file' in s.source) ownFiles.add(s.source.file);
    const text = s.value.toString('utf8').split('\n').filter((l) => !l.startsWith('#')).join('').trim();
    if (text.length >= 16) out.push({ name: `secret ${s.setting}`, bytes: Buffer.from(text) });
  }
  return { needles: out, ownFiles };
}

/** The canary batch as the batch format encodes the canary records decoded on their own (the decoder is pure). */
function expectedBatch(c: Config, exportTimeS: number): Uint8Array {
  const service = new DecodeService({}, { rawRecords: false, layerPolicy: c.decode.tunnelLayer, sflowOctets: c.decode.sflowOctets });
  const records = service.decode({ payload: canaryMessage(exportTimeS), exporter: '127.0.0.1', exporterPort: 0, transport: 'udp', sessionKey: 'attest', identity: null, receivedAtMs: exportTimeS * 1000 }).records;
  return encodeBatch(records);
}

function sendCanaries(port: number, exportTimeS: number): Promise<void> {
  const s = createSocket('udp4');
  return new Promise((resolve, reject) => {
    s.send(canaryMessage(exportTimeS), port, '127.0.0.1', (err) => {
      s.close();
      if (err) reject(err);
      else resolve();
    });
  });
}

export async function runAttest(o: AttestOptions): Promise<{ report: AttestReport; signed: Signed<AttestReport> | null }> {
  const startedAtMs = Date.now();
  const c = o.config;
  const log = o.logger;
  const checks: Check[] = [
    checkCoreDumps(o.probePids ?? findProbePids(join(c.spool.dir, SPOOL_DB_FILE))),
    ...checkSecrets(o.secrets, o.key !== null),
    checkAdmin(c),
    checkAllowlist(c),
    await checkTransportVersions(c),
    ...checkQuotaAndRetention(c),
  ];

  // The canary run.
  const roots = [c.dataDir, c.spool.dir, ...(o.extraScanPaths ?? [])];
  const { needles: secretNeedleList, ownFiles } = secretNeedles(o.secrets, o.keks);
  const scans: { phase: string; result: ScanResult }[] = [];
  const exportTimeS = Math.floor(Date.now() / 1000);
  const expected = expectedBatch(c, exportTimeS);
  let canaryNeedles = needles([expected]);
  const init = ingestWorkerInit({ ...c, filters: { default: 'accept', rules: [] } }, o.keks, false, o.pseudonymizeKey);
  const worker = new IngestWorker({ ...init, logLevel: 'warn', spool: { ...init.spool, holdNewBatches: CANARY_HOLD_REASON } });
  let listener: UdpListener | null = null;
  let spool: Spool | null = null;
  let trail: AuditTrail | null = null;
  let held: { id: number; batch: Uint8Array; records: number }[] = [];
  let discarded = { batches: 0, records: 0, epochs: [] as number[] };
  const scan = (phase: string): void => {
    const all = scanPaths(roots, [...canaryNeedles, ...secretNeedleList]);
    // A secret's own source file holds it on purpose (checked for its mode instead).
    const hits = all.hits.filter((h) => !(ownFiles.has(h.path) && (h.needle.startsWith('secret ') || h.needle.startsWith('spool KEK'))));
    scans.push({ phase, result: { ...all, hits } });
    log.info({ event: 'attest.scan', phase, files: all.files.length, hits: hits.length }, `scanned ${all.files.length} files (${phase})`);
  };
  try {
    await worker.ready();
    let committed = 0;
    worker.onCommitted((id) => (committed = Math.max(committed, id)));
    listener = new UdpListener({
      endpoints: [{ name: 'attest-canary', address: '127.0.0.1', port: 0, receiveBufferBytes: 256 * 1024 }],
      allowlist: PrefixSet.parse(['127.0.0.1/32']),
      sink: worker.channel,
      logger: log.child({ component: 'attest-udp' }),
      receiver: 'node',
    });
    await listener.start();
    const port = listener.addresses()[0]?.port ?? 0;
    await sendCanaries(port, exportTimeS);
    const deadline = Date.now() + COMMIT_TIMEOUT_MS;
    while (committed === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    if (committed === 0) throw new Error(`the canary batch was not committed within ${COMMIT_TIMEOUT_MS / 1000} s`);
    await listener.close();
    listener = null;
    // A second connection reads the held batch back (the worker's keeps running).
    spool = await Spool.open({
      dir: c.spool.dir,
      kek: o.keks[0] ?? new Uint8Array(0),
      previousKeks: o.keks.slice(1),
      create: false,
      synchronous: c.spool.synchronous,
      audit: (db) => (trail = new AuditTrail(db)),
    });
    held = spool.reader.readHeld(CANARY_HOLD_REASON);
    canaryNeedles = needles([...held.map((h) => h.batch), expected]);
    scan('committed (WAL not yet checkpointed)');
    await worker.close();
    scan('after the final commit and TRUNCATE checkpoint');
    discarded = spool.reader.discardHeld(CANARY_HOLD_REASON);
  } finally {
    await listener?.close();
    await worker.close().catch(() => undefined);
  }

  // Findings from the scans and the canary run.
  const hits = scans.flatMap((s) => s.result.hits.map((h) => ({ ...h, phase: s.phase })));
  const canaryHits = hits.filter((h) => !h.needle.startsWith('spool KEK') && !h.needle.startsWith('secret '));
  const secretHits = hits.filter((h) => h.needle.startsWith('spool KEK') || h.needle.startsWith('secret '));
  const dedupe = (list: typeof hits): string[] => [...new Set(list.map((h) => `${h.path} at byte ${h.offset}: ${h.needle}${h.inflated === undefined ? '' : ` (inside a ${h.inflated} stream)`}`))];
  checks.push(
    canaryHits.length === 0
      ? { id: 'plaintext', title: 'No flow data on disk in plaintext', status: 'pass', detail: `${CANARY_RECORDS} canary records committed; ${scans.length} scans of ${scans[0]?.result.files.length ?? 0} files for ${canaryNeedles.length} encodings: none found` }
      : { id: 'plaintext', title: 'No flow data on disk in plaintext', status: 'fail', detail: `canary data found in plaintext: ${dedupe(canaryHits).slice(0, 10).join('; ')}` },
  );
  checks.push(
    secretHits.length === 0
      ? { id: 'secrets-on-disk', title: 'No key on disk outside its secret file', status: 'pass', detail: `KEK and secrets searched for in every scanned file: none found outside their own files` }
      : { id: 'secrets-on-disk', title: 'No key on disk outside its secret file', status: 'fail', detail: `found: ${dedupe(secretHits).slice(0, 10).join('; ')}` },
  );
  checks.push(checkDataDir(c));
  checks.push(checkKeysBesideData(c, o.secrets));
  const sealedDigests = trailDigests(trail, held.map((h) => h.id));
  const digestsMatch = held.length > 0 && held.every((h) => sealedDigests.get(h.id) === batchDigest(h.batch));
  checks.push(
    digestsMatch
      ? { id: 'trail-digest', title: 'Audit trail names the sealed batch', status: 'pass', detail: `the canary batch's plaintext SHA-256 equals its batch.sealed event's digest (${held.length} batch(es))` }
      : { id: 'trail-digest', title: 'Audit trail names the sealed batch', status: 'fail', detail: held.length === 0 ? 'the canary batch could not be read back' : 'a canary batch\'s digest differs from its batch.sealed event' },
  );
  checks.push(
    discarded.batches === held.length && discarded.epochs.length > 0
      ? { id: 'canary-shredded', title: 'Canaries removed, never uploaded', status: 'pass', detail: `${discarded.batches} held canary batch(es) removed without upload; epoch key(s) ${discarded.epochs.join(', ')} destroyed` }
      : { id: 'canary-shredded', title: 'Canaries removed, never uploaded', status: 'fail', detail: `${discarded.batches} of ${held.length} canary batches removed, ${discarded.epochs.length} epoch key(s) destroyed` },
  );

  const findings = checks.filter((ch) => ch.status === 'fail').map((ch) => ({ check: ch.id, detail: ch.detail }));
  const finishedAtMs = Date.now();
  const last = scans.at(-1)?.result;
  const report: AttestReport = {
    format: REPORT_FORMAT,
    passed: findings.length === 0,
    host: hostname(),
    version: SEALFLOW_VERSION,
    spoolId: spoolIdOf(trail),
    keyId: o.key?.keyId ?? null,
    configHash: configHash(redactConfig(c)),
    startedAtMs,
    finishedAtMs,
    checks,
    findings,
    canary: {
      records: CANARY_RECORDS,
      batches: held.map((h) => ({ id: h.id, records: h.records, digest: batchDigest(h.batch) })),
      discardedBatches: discarded.batches,
      shreddedEpochs: discarded.epochs,
      encodings: canaryNeedles.map((n) => n.name),
      scans: scans.map((s) => ({ phase: s.phase, files: s.result.files.length, bytes: s.result.files.reduce((n, f) => n + f.bytes, 0), hits: s.result.hits.length })),
      files: last?.files ?? [],
      hits: hits.slice(0, 100),
    },
  };
  const signed = o.key === null ? null : signDocument(o.key, report);
  const reportDigest = createHash('sha256').update(canonicalJson(report as unknown as CanonicalValue)).digest('hex');
  try {
    const t = trail as AuditTrail | null;
    t?.record({ kind: 'attest.completed', passed: report.passed, findings: findings.length, reportDigest });
    // Signed now: the attestation's own events (canary sealed, discarded, shredded, the verdict) and receipts for its shredding.
    if (t !== null && o.key !== null) new AuditNotary(t, o.key).sign('attest');
  } finally {
    spool.close();
  }
  log.info({ event: 'attest.completed', passed: report.passed, findings: findings.length, observationDomain: CANARY_DOMAIN }, report.passed ? 'attestation passed' : 'attestation FAILED');
  return { report, signed };
}

/** A key file inside the data or spool directory travels with the data it protects (a stolen disk holds both). */
function checkKeysBesideData(c: Config, secrets: readonly ResolvedSecret[]): Check {
  const inside = (p: string): boolean => [c.dataDir, c.spool.dir].some((d) => p === d || p.startsWith(`${d}/`));
  const beside = secrets.filter((s) => 'file' in s.source && inside(s.source.file)).map((s) => `${s.setting} (${'file' in s.source ? s.source.file : ''})`);
  return beside.length === 0
    ? { id: 'keys-beside-data', title: 'Keys kept apart from the data', status: 'pass', detail: 'no secret file inside the data or spool directory' }
    : { id: 'keys-beside-data', title: 'Keys kept apart from the data', status: 'fail', detail: `secret files inside the data directory: ${beside.join(', ')}; a copy of the directory holds the key with the data` };
}

function trailDigests(trail: AuditTrail | null, ids: readonly number[]): Map<number, string> {
  const out = new Map<number, string>();
  if (trail === null || ids.length === 0) return out;
  const from = Math.max(0, (trail.last()?.seq ?? 0) - 10_000);
  for (const e of trail.events(from, Number.MAX_SAFE_INTEGER, ['batch.sealed'])) {
    const f = e.fields as { batch?: number; digest?: string };
    if (typeof f.batch === 'number' && ids.includes(f.batch) && typeof f.digest === 'string') out.set(f.batch, f.digest);
  }
  return out;
}

function spoolIdOf(trail: AuditTrail | null): string {
  if (trail === null) return '';
  const r = trail.db.prepare('SELECT spool_id FROM meta WHERE id = 1').get() as { spool_id: Uint8Array } | undefined;
  return r === undefined ? '' : Buffer.from(r.spool_id).toString('hex');
}

/** Where reports go by default: <dataDir>/attest/. */
export function defaultReportDir(config: Config): string {
  return join(config.dataDir, 'attest');
}

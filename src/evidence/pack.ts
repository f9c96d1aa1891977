import { spawnSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import sodium from 'libsodium-wrappers';
import { configHash } from '../audit/audit-service.js';
import type { CanonicalValue } from '../audit/canonical-json.js';
import { canonicalJson } from '../audit/canonical-json.js';
import { publicKeyPem, verifySignature, type DeviceKey } from '../audit/device-key.js';
import { writeExport } from '../audit/export.js';
import { AuditNotary, allDigests, allReceipts } from '../audit/notary.js';
import { AuditTrail } from '../audit/trail.js';
import { redactConfig } from '../config/redact-config.js';
import type { Config } from '../config/schema.js';
import { SEALFLOW_VERSION } from '../observability/build-info.js';
import { SPOOL_DB_FILE } from '../spool/spool.js';
import { CONTROL_MAP } from './control-map.js';
import { readTar, writeTar, type TarEntry } from './tar.js';
import { verifierInstructions } from './verifier-instructions.js';

/**
 * `sealflow evidence --out FILE`: one signed archive (ustar) for an auditor.
 *
 *   MANIFEST.json            canonical JSON: every other file's path, size and SHA-256
 *   MANIFEST.sig             Ed25519 signature (64 raw bytes) of MANIFEST.json's bytes
 *   README.md                what each file proves and how to verify it
 *   device-public-key.pem    the signing key's public half (compare its key id out of band)
 *   audit/trail.jsonl        `audit export`: events, signed digests, deletion receipts, seal
 *   audit/digests.jsonl      the signed digests and receipts alone
 *   audit/VERIFY.md          the verifier instructions
 *   attest/report.json|html  the latest `sealflow attest` report (signed)
 *   config/effective.json    the effective configuration, secrets redacted, canonical JSON;
 *   config/effective.sha256  its SHA-256 — the configHash of the trail's config.loaded events
 *   sbom/sbom.cdx.json       CycloneDX SBOM of the installed production dependencies
 *   versions.json            sealflow, Node.js, OpenSSL, SQLite, libsodium, zlib, brotli
 *   controls/control-map.json|md  control → feature → evidence file → tests
 * Verification (verifyPack) needs only the archive and the public key.
 */

export const MANIFEST_FORMAT = 'sealflow-evidence/1';

export interface ManifestFile {
  readonly path: string;
  readonly bytes: number;
  readonly sha256: string;
}

export interface Manifest {
  readonly format: typeof MANIFEST_FORMAT;
  readonly id: string;
  readonly createdAtMs: number;
  readonly sealflowVersion: string;
  readonly spoolId: string;
  readonly keyId: string;
  readonly configHash: string;
  readonly files: readonly ManifestFile[];
}

export interface PackOptions {
  readonly config: Config;
  readonly key: DeviceKey;
  /** Only digests and receipts, not every event (large trails). */
  readonly digestsOnly?: boolean;
  readonly clock?: () => number;
}

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** The directory holding sealflow's package.json (the installed program). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, 'package.json');
    if (existsSync(p) && (JSON.parse(readFileSync(p, 'utf8')) as { name?: string }).name === 'sealflow') return dir;
    dir = dirname(dir);
  }
  throw new Error('cannot find sealflow\'s package.json');
}

/** Versions of what handles the data: the runtime, its crypto and compression, the database, libsodium. */
export async function componentVersions(): Promise<Record<string, string>> {
  await sodium.ready;
  const db = new Database(':memory:');
  const sqlite = (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  db.close();
  const pkg = (name: string): string => {
    try {
      return (JSON.parse(readFileSync(join(packageRoot(), 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      return 'unknown';
    }
  };
  const v = process.versions;
  return {
    sealflow: SEALFLOW_VERSION,
    node: v.node,
    openssl: v.openssl,
    sqlite,
    'better-sqlite3': pkg('better-sqlite3'),
    libsodium: sodium.SODIUM_VERSION_STRING,
    'libsodium-wrappers': pkg('libsodium-wrappers'),
    zlib: v.zlib,
    brotli: v.brotli ?? 'unknown',
    v8: v.v8,
    platform: `${process.platform} ${process.arch}`,
  };
}

/**
 * CycloneDX 1.5 of the production dependencies: `npm sbom` (reads the installed tree, no
 * network) where npm is installed; else the same from node_modules' package.json files.
 */
export function sbom(): Buffer {
  const root = packageRoot();
  const r = spawnSync('npm', ['sbom', '--sbom-format', 'cyclonedx', '--omit', 'dev', '--omit', 'optional'], { cwd: root, encoding: 'buffer', timeout: 120_000, maxBuffer: 64 * 1024 * 1024 });
  if (r.status === 0 && r.stdout.length > 0) return r.stdout;
  return Buffer.from(JSON.stringify(sbomFromTree(root), null, 2));
}

function sbomFromTree(root: string): unknown {
  const components: Record<string, unknown>[] = [];
  const walk = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir).sort()) {
      if (name.startsWith('.')) continue;
      if (name.startsWith('@')) {
        walk(join(dir, name));
        continue;
      }
      const pj = join(dir, name, 'package.json');
      if (!existsSync(pj)) continue;
      const p = JSON.parse(readFileSync(pj, 'utf8')) as { name: string; version: string; license?: string };
      components.push({ type: 'library', 'bom-ref': `${p.name}@${p.version}`, name: p.name, version: p.version, purl: `pkg:npm/${encodeURIComponent(p.name).replace('%2F', '/')}@${p.version}`, ...(p.license === undefined ? {} : { licenses: [{ license: { id: p.license } }] }) });
      walk(join(dir, name, 'node_modules'));
    }
  };
  walk(join(root, 'node_modules'));
  return { bomFormat: 'CycloneDX', specVersion: '1.5', serialNumber: `urn:uuid:${randomUUID()}`, version: 1, metadata: { component: { type: 'application', name: 'sealflow', version: SEALFLOW_VERSION } }, components };
}

function latestAttest(dir: string): { json: Buffer; html: Buffer | null } | null {
  if (!existsSync(dir)) return null;
  const name = readdirSync(dir).filter((f) => /^attest-.*\.json$/.test(f)).sort().at(-1);
  if (name === undefined) return null;
  const html = join(dir, name.replace(/\.json$/, '.html'));
  return { json: readFileSync(join(dir, name)), html: existsSync(html) ? readFileSync(html) : null };
}

function controlMapMarkdown(): string {
  const lines = ['# Control map', '', 'Each control: the sealflow feature, the files of this pack that evidence it, the tests of the sealflow repository that prove the feature, and what is not covered. Control texts are paraphrased.', ''];
  for (const c of CONTROL_MAP) {
    lines.push(`## ${c.framework} ${c.control}`, '', `*${c.requirement}*`, '', `- **Feature:** ${c.feature}`, `- **Evidence:** ${c.evidence.map((e) => `\`${e}\``).join(', ')}`, `- **Tests:** ${c.tests.map((t) => `\`${t.file}\` "${t.name}"`).join('; ')}`, `- **Not covered:** ${c.limits}`, '');
  }
  return lines.join('\n');
}

/** Builds the signed archive. Reads the spool database (read-only) and the latest attestation. */
export async function buildPack(o: PackOptions): Promise<{ archive: Buffer; manifest: Manifest }> {
  const clock = o.clock ?? Date.now;
  const c = o.config;
  const files: TarEntry[] = [];
  const add = (name: string, data: Uint8Array | string): void => void files.push({ name, data: typeof data === 'string' ? Buffer.from(data, 'utf8') : data });

  const effective = canonicalJson(redactConfig(c));
  const hash = configHash(redactConfig(c));
  // No final newline: \`sha256sum config/effective.json\` is the configHash itself.
  add('config/effective.json', effective);
  add('config/effective.sha256', `${hash}  effective.json\n`);

  const dbPath = join(c.spool.dir, SPOOL_DB_FILE);
  let spoolId = '';
  if (existsSync(dbPath)) {
    // A digest now, so the pack's trail is signed to its end (and receipts issued for every shredding so far).
    const w = new Database(dbPath, { fileMustExist: true });
    try {
      w.pragma('busy_timeout = 5000');
      new AuditNotary(new AuditTrail(w, clock), o.key, clock).sign('evidence');
    } finally {
      w.close();
    }
    const db = new Database(dbPath, { readonly: true, fileMustExist: true });
    try {
      db.pragma('busy_timeout = 5000');
      if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'audit_events'").get() !== undefined) {
        const notary = new AuditNotary(new AuditTrail(db), o.key, clock);
        spoolId = notary.spoolId();
        const lines: string[] = [];
        if (o.digestsOnly !== true) writeExport(db, notary, (l) => lines.push(l), clock);
        add('audit/trail.jsonl', o.digestsOnly === true ? '' : lines.join('\n') + '\n');
        const small = [...allDigests(db).map((d) => ({ type: 'digest', ...d })), ...allReceipts(db).map((r) => ({ type: 'receipt', ...r }))];
        add('audit/digests.jsonl', small.map((x) => JSON.stringify(x)).join('\n') + (small.length > 0 ? '\n' : ''));
      }
    } finally {
      db.close();
    }
  }
  add('audit/VERIFY.md', verifierInstructions(o.key.keyId));
  const attest = latestAttest(join(c.dataDir, 'attest'));
  if (attest !== null) {
    add('attest/report.json', attest.json);
    if (attest.html !== null) add('attest/report.html', attest.html);
  }
  add('sbom/sbom.cdx.json', sbom());
  add('versions.json', JSON.stringify(await componentVersions(), null, 2) + '\n');
  add('controls/control-map.json', JSON.stringify(CONTROL_MAP, null, 2) + '\n');
  add('controls/control-map.md', controlMapMarkdown());
  add('device-public-key.pem', publicKeyPem(o.key.publicKey));
  add('README.md', packReadme(o.key.keyId, attest !== null, o.digestsOnly === true));

  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    id: randomUUID(),
    createdAtMs: Math.trunc(clock()),
    sealflowVersion: SEALFLOW_VERSION,
    spoolId,
    keyId: o.key.keyId,
    configHash: hash,
    files: files.map((f) => ({ path: f.name, bytes: f.data.length, sha256: sha256(f.data) })),
  };
  const manifestBytes = Buffer.from(canonicalJson(manifest as unknown as CanonicalValue), 'utf8');
  const signature = o.key.sign(manifestBytes);
  const archive = writeTar([{ name: 'MANIFEST.json', data: manifestBytes }, { name: 'MANIFEST.sig', data: signature }, ...files], Math.floor(manifest.createdAtMs / 1000));
  return { archive, manifest };
}

export interface PackCheck {
  readonly ok: boolean;
  readonly manifest: Manifest | null;
  readonly problems: readonly string[];
  readonly files: ReadonlyMap<string, Uint8Array>;
}

/** Checks an archive with only the public key: the manifest's signature, then every file against it (none missing, none extra). */
export function verifyPack(archive: Uint8Array, publicKey: Uint8Array): PackCheck {
  const problems: string[] = [];
  let entries: TarEntry[];
  try {
    entries = readTar(archive);
  } catch (err) {
    return { ok: false, manifest: null, problems: [(err as Error).message], files: new Map() };
  }
  const files = new Map(entries.map((e) => [e.name, e.data]));
  const manifestBytes = files.get('MANIFEST.json');
  const sig = files.get('MANIFEST.sig');
  if (manifestBytes === undefined || sig === undefined) return { ok: false, manifest: null, problems: ['MANIFEST.json or MANIFEST.sig missing'], files };
  if (!verifySignature(publicKey, manifestBytes, sig)) problems.push('MANIFEST.sig does not verify with the given public key (altered manifest, or signed by another key)');
  let manifest: Manifest | null = null;
  try {
    manifest = JSON.parse(Buffer.from(manifestBytes).toString('utf8')) as Manifest;
  } catch {
    problems.push('MANIFEST.json is not JSON');
  }
  if (manifest !== null) {
    const listed = new Set(manifest.files.map((f) => f.path));
    for (const f of manifest.files) {
      const data = files.get(f.path);
      if (data === undefined) problems.push(`${f.path}: listed in the manifest, missing from the archive`);
      else if (sha256(data) !== f.sha256 || data.length !== f.bytes) problems.push(`${f.path}: its SHA-256 differs from the manifest (altered)`);
    }
    for (const name of files.keys()) if (name !== 'MANIFEST.json' && name !== 'MANIFEST.sig' && !listed.has(name)) problems.push(`${name}: in the archive but not in the manifest`);
  }
  return { ok: problems.length === 0, manifest, problems, files };
}

function packReadme(keyId: string, hasAttest: boolean, digestsOnly: boolean): string {
  return `# sealflow evidence pack

Made by \`sealflow evidence\` on the device; signed with its device key \`${keyId}\`.
Compare that key id with the one the device's owner gave you (\`sealflow audit pubkey\`):
a pack signed by any other key proves nothing.

| file | what it proves |
| --- | --- |
| \`MANIFEST.json\`, \`MANIFEST.sig\` | every file below is the one the device signed (SHA-256 of each, Ed25519 signature of the manifest) |
| \`audit/trail.jsonl\` | ${digestsOnly ? '(left empty: made with --digests-only)' : 'what the probe did: batches sealed (with the SHA-256 of their plaintext), delivered (Fusion\'s status and request id), parked, evicted, keys shredded and rotated, configuration loaded, starts, stops, crashes; hash-chained and signed by hourly digests, ending with a seal'} |
| \`audit/digests.jsonl\` | the signed digests (each naming the previous) and the signed deletion receipts of crypto-shredded key epochs |
| \`audit/VERIFY.md\` | how to check all of it offline |
| \`attest/report.json\`, \`.html\` | ${hasAttest ? 'the latest self-attestation: posture checks, canaries sent through the ingest path and searched for on disk (signed)' : '(absent: run `sealflow attest` first)'} |
| \`config/effective.json\`, \`.sha256\` | the configuration in force (secrets redacted); its hash is the \`configHash\` of the trail's \`config.loaded\` events |
| \`sbom/sbom.cdx.json\` | the software components (CycloneDX) |
| \`versions.json\` | Node.js, OpenSSL, SQLite, libsodium and the other components that handle the data |
| \`controls/control-map.md\`, \`.json\` | for PCI DSS 4.0, HIPAA, GDPR and DORA controls: the feature, the evidence file, the tests that prove it, the limits |
| \`device-public-key.pem\` | the public key, for OpenSSL (see audit/VERIFY.md) |
`;
}

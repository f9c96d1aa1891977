import { readdirSync, readFileSync, readlinkSync, statfsSync, statSync } from 'node:fs';
import type { Config, SecretSource } from '../config/schema.js';
import { parsePrefix } from '../flow/cidr.js';
import { parseIp } from '../flow/ip.js';
import { TLS_MIN_VERSION } from '../ingest/tls/tls-listener.js';
import { probeHost, probeOldDtls, probeOldTls, type ProbeOutcome } from './handshake-probe.js';

/**
 * The attestation's posture checks: how the probe is set up, as opposed to what it writes
 * (scan.ts). Each check is a value with a stable id, a status and a one-line detail that
 * names the setting or file and never a secret. 'fail' fails the attestation; 'warn' is
 * reported (a weaker setup an auditor should see) but does not.
 */

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface Check {
  readonly id: string;
  readonly title: string;
  readonly status: CheckStatus;
  readonly detail: string;
}

/** A resolved secret, for the argv and file checks (the value is compared, never reported). */
export interface ResolvedSecret {
  readonly setting: string;
  readonly source: SecretSource;
  readonly value: Buffer;
}

/** DTLS 1.2 is the DTLS addon's floor (SSL_CTX_set_min_proto_version(DTLS1_2_VERSION), src/ingest/dtls/native/dtls_addon.cc). */
export const DTLS_MIN_VERSION = 'DTLSv1.2';
/** The banner `sealflow run` writes into the development key files it generates. */
const DEV_KEY_MARKER = 'NOT FOR PRODUCTION';
/** World-accessible permission bits. */
const OTHER_BITS = 0o007;
const GROUP_BITS = 0o070;
/** At least 12 months of audit events (PCI DSS 4.0 10.5.1). */
const MIN_AUDIT_RETENTION_DAYS = 365;

const check = (id: string, title: string, status: CheckStatus, detail: string): Check => ({ id, title, status, detail });

function isLoopback(address: string): boolean {
  if (address === 'localhost') return true;
  const a = parseIp(address);
  if (a === null) return false;
  if (typeof a === 'number') return a >>> 24 === 127;
  return a.every((b, i) => (i === 15 ? b === 1 : b === 0));
}

/** Processes other than this one that hold `dbPath` open: the probes running on this spool. */
export function findProbePids(dbPath: string): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      for (const fd of readdirSync(`/proc/${name}/fd`)) {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) === dbPath) {
          out.push(Number(name));
          break;
        }
      }
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/** The soft RLIMIT_CORE of a process from /proc/PID/limits: 0, a number of bytes, Infinity, or null when unreadable. */
export function coreLimit(pid: number | 'self'): number | null {
  try {
    const line = readFileSync(`/proc/${pid}/limits`, 'utf8').split('\n').find((l) => l.startsWith('Max core file size'));
    const soft = line?.slice('Max core file size'.length).trim().split(/\s+/)[0];
    if (soft === undefined) return null;
    return soft === 'unlimited' ? Number.POSITIVE_INFINITY : Number(soft);
  } catch {
    return null;
  }
}

export function checkCoreDumps(pids: readonly number[]): Check {
  const targets: (number | 'self')[] = pids.length > 0 ? [...pids] : ['self'];
  const on = targets.map((p) => ({ p, limit: coreLimit(p) })).filter((t) => t.limit !== 0);
  const who = pids.length > 0 ? `probe process ${pids.join(', ')}` : 'this process (no running probe found; the probe inherits the same limits when started the same way)';
  if (on.length === 0) return check('core-dumps', 'Core dumps off', 'pass', `RLIMIT_CORE is 0 for ${who}`);
  const desc = on.map((t) => `${t.p === 'self' ? 'this process' : `pid ${t.p}`}: ${t.limit === null ? 'unreadable' : t.limit === Number.POSITIVE_INFINITY ? 'unlimited' : `${t.limit} bytes`}`).join('; ');
  return check('core-dumps', 'Core dumps off', 'fail', `core dumps are enabled (RLIMIT_CORE ${desc}): a crash would write plaintext memory to disk; set LimitCORE=0 (systemd) or ulimit -c 0`);
}

export function checkAdmin(config: Config): Check {
  const a = config.admin;
  if (!a.enabled) return check('admin-endpoint', 'Admin endpoint on loopback or authenticated', 'pass', 'admin endpoint disabled');
  if (isLoopback(a.address)) return check('admin-endpoint', 'Admin endpoint on loopback or authenticated', 'pass', `admin endpoint on loopback ${a.address}:${a.port}${a.token === undefined ? '' : ' with a bearer token'}`);
  if (a.token !== undefined) return check('admin-endpoint', 'Admin endpoint on loopback or authenticated', 'pass', `admin endpoint on ${a.address}:${a.port} requires a bearer token (admin.token)`);
  return check('admin-endpoint', 'Admin endpoint on loopback or authenticated', 'fail', `admin endpoint on ${a.address}:${a.port} (not loopback) without a token: set admin.token or admin.address: 127.0.0.1`);
}

export function checkAllowlist(config: Config): Check {
  const title = 'UDP allowlist not open to everyone';
  if (config.listeners.udp.length === 0) return check('udp-allowlist', title, 'pass', 'no UDP listener');
  const open = config.listeners.allowlist.filter((t) => parsePrefix(t)?.length === 0);
  if (open.length > 0) return check('udp-allowlist', title, 'fail', `listeners.allowlist contains ${open.join(', ')}: every source address may send flows; list the exporters' addresses`);
  const wide = config.listeners.allowlist.filter((t) => {
    const p = parsePrefix(t);
    return p !== null && p.length < (p.family === 4 ? 8 : 32);
  });
  if (wide.length > 0) return check('udp-allowlist', title, 'warn', `listeners.allowlist has very wide prefixes (${wide.join(', ')})`);
  return check('udp-allowlist', title, 'pass', config.listeners.allowlist.length === 0 ? 'empty allowlist: no UDP exporter accepted' : `${config.listeners.allowlist.length} allowlisted prefix(es): ${config.listeners.allowlist.join(', ')}`);
}

export interface HandshakeProbes {
  readonly tls: (host: string, port: number) => Promise<ProbeOutcome>;
  readonly dtls: (host: string, port: number) => Promise<ProbeOutcome>;
}

const LIVE_PROBES: HandshakeProbes = { tls: probeOldTls, dtls: probeOldDtls };

/**
 * The TLS/DTLS floors, tried on the live listeners (handshake-probe.ts): one that answers a
 * handshake below its floor fails; one that is not running (attest without the probe) or that
 * could not be probed is a warning naming the floor the listener sets, never a pass.
 */
export async function checkTransportVersions(config: Config, probes: HandshakeProbes = LIVE_PROBES): Promise<Check> {
  const title = 'TLS/DTLS minimum versions';
  const listeners = [
    { name: 'TLS', floor: TLS_MIN_VERSION, below: 'TLS 1.0/1.1', l: config.listeners.tls, probe: probes.tls },
    { name: 'DTLS', floor: DTLS_MIN_VERSION, below: 'DTLS 1.0', l: config.listeners.dtls, probe: probes.dtls },
  ].filter((x) => x.l.enabled);
  if (listeners.length === 0) return check('tls-versions', title, 'pass', 'TLS and DTLS listeners off; uplink to Fusion: HTTPS, TLS ≥ 1.2');
  const results = await Promise.all(listeners.map(async (x) => ({ ...x, host: probeHost(x.l.address), outcome: await x.probe(probeHost(x.l.address), x.l.port) })));
  const text = results.map((r) => `${r.name} listener ${r.host}:${r.l.port}: ${r.outcome.result === 'refused' ? `${r.below} refused (minimum ${r.floor}), ` : ''}${r.outcome.detail}`).join('; ');
  if (results.some((r) => r.outcome.result === 'accepted')) return check('tls-versions', title, 'fail', `${text}: a version below the floor was accepted`);
  if (results.every((r) => r.outcome.result === 'refused')) return check('tls-versions', title, 'pass', `${text}; client certificates required`);
  return check('tls-versions', title, 'warn', `${text} (not probed live: the listeners set minimum ${TLS_MIN_VERSION} / ${DTLS_MIN_VERSION}; run attest beside the running probe)`);
}

export function checkQuotaAndRetention(config: Config): Check[] {
  const out: Check[] = [];
  const s = config.spool;
  let free: number | null = null;
  try {
    const st = statfsSync(s.dir);
    free = st.bavail * st.bsize;
  } catch {
    free = null;
  }
  out.push(
    free !== null && s.quotaBytes > free
      ? check('spool-quota', 'Spool quota set', 'warn', `spool.quotaBytes ${s.quotaBytes} exceeds the ${free} bytes free on the spool's file system: the disk fills before the quota`)
      : check('spool-quota', 'Spool quota set', 'pass', `spool.quotaBytes ${s.quotaBytes} (${s.fullPolicy} when full)${free === null ? '' : `; ${free} bytes free`}`),
  );
  const maxAge = s.maxAgeSeconds;
  if (maxAge !== undefined) out.push(check('spool-retention', 'Spool retention set', 'pass', `spool.maxAgeSeconds ${maxAge}: older batches are crypto-shredded, delivered or not`));
  else out.push(check('spool-retention', 'Spool retention set', 'warn', `no age limit on undelivered batches (spool.maxAgeSeconds unset); data key epochs rotate every ${s.epochSeconds} s and are shredded once delivered`));
  const days = config.audit.retentionDays;
  out.push(check('audit-retention', 'Audit trail retention', days >= MIN_AUDIT_RETENTION_DAYS ? 'pass' : 'warn', `audit.retentionDays ${days}${days >= MIN_AUDIT_RETENTION_DAYS ? '' : ` (< ${MIN_AUDIT_RETENTION_DAYS}: PCI DSS 10.5.1 asks for 12 months)`}`));
  return out;
}

function mode(path: string): number | null {
  try {
    return statSync(path).mode & 0o777;
  } catch {
    return null;
  }
}

export function checkDataDir(config: Config): Check {
  const problems: string[] = [];
  for (const dir of new Set([config.dataDir, config.spool.dir])) {
    const m = mode(dir);
    if (m !== null && (m & OTHER_BITS) !== 0) problems.push(`${dir} is accessible to other users (mode ${m.toString(8)})`);
  }
  return problems.length === 0
    ? check('data-dir', 'Data directory private', 'pass', `${config.dataDir} and ${config.spool.dir} are not accessible to other users`)
    : check('data-dir', 'Data directory private', 'fail', `${problems.join('; ')}: chmod 700`);
}

/**
 * Secrets: never in a process's argv, never in a world-readable file, not development keys.
 * Environment sources are allowed but reported (a shell profile or `ps e` may show them).
 */
export function checkSecrets(secrets: readonly ResolvedSecret[], signingKeyConfigured: boolean): Check[] {
  const out: Check[] = [];
  const fileProblems: string[] = [];
  const fileWarnings: string[] = [];
  const devKeys: string[] = [];
  const envSources: string[] = [];
  for (const s of secrets) {
    if ('file' in s.source) {
      const m = mode(s.source.file);
      if (m !== null && (m & OTHER_BITS) !== 0) fileProblems.push(`${s.setting}: ${s.source.file} is readable by other users (mode ${m.toString(8)})`);
      else if (m !== null && (m & GROUP_BITS) !== 0) fileWarnings.push(`${s.setting}: ${s.source.file} is group-readable (mode ${m.toString(8)})`);
    }
    if ('env' in s.source) envSources.push(`${s.setting} (${s.source.env})`);
    if (s.value.includes(DEV_KEY_MARKER)) devKeys.push(s.setting);
  }
  out.push(
    fileProblems.length > 0
      ? check('secret-files', 'Secrets not in world-readable files', 'fail', `${fileProblems.join('; ')}: chmod 600`)
      : check('secret-files', 'Secrets not in world-readable files', fileWarnings.length > 0 ? 'warn' : 'pass', fileWarnings.length > 0 ? fileWarnings.join('; ') : `${secrets.filter((s) => 'file' in s.source).length} secret file(s), none readable by other users`),
  );
  out.push(check('secret-argv', 'Secrets not in argv', ...argvCheck(secrets)));
  if (envSources.length > 0) out.push(check('secret-env', 'Secrets from a secret store', 'warn', `from environment variables: ${envSources.join(', ')}; prefer a file credential or a command (KMS, systemd-creds)`));
  out.push(devKeys.length > 0 ? check('dev-keys', 'No development keys', 'fail', `development keys in use: ${devKeys.join(', ')} (generated by the embedded setup): create real ones with \`sealflow keygen\``) : check('dev-keys', 'No development keys', 'pass', 'no development key in use'));
  out.push(signingKeyConfigured ? check('signing-key', 'Device signing key configured', 'pass', 'audit.signingKey set: digests, receipts and reports are signed') : check('signing-key', 'Device signing key configured', 'fail', 'audit.signingKey is not set: the audit trail and this report cannot be signed'));
  return out;
}

/** Searches every readable process's argv for the secret values (raw text and base64 as configured). */
function argvCheck(secrets: readonly ResolvedSecret[]): [CheckStatus, string] {
  const values = secrets.flatMap((s) => {
    const text = s.value.toString('utf8').split('\n').filter((l) => !l.startsWith('#')).join('').trim();
    return text.length >= 16 ? [{ setting: s.setting, text }] : [];
  });
  const found: string[] = [];
  let read = 0;
  let entries: string[] = [];
  try {
    entries = readdirSync('/proc');
  } catch {
    return ['warn', 'no /proc: process arguments not checked'];
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8');
    } catch {
      continue;
    }
    read++;
    for (const v of values) if (cmdline.includes(v.text)) found.push(`${v.setting} in the arguments of pid ${name}`);
  }
  return found.length > 0 ? ['fail', `${found.join('; ')}: pass secrets as files or commands, never as arguments`] : ['pass', `${read} process argument lists searched for ${values.length} secret value(s): none found`];
}

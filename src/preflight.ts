import { X509Certificate } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { access, readFile, stat } from 'node:fs/promises';
import type { LoadedConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { describeSecretSource, groupOtherModeWarning, resolveSecret } from './config/secrets.js';
import { fusionCredentialsFromConfig } from './drain/drain-config.js';
import type { FusionCredentials } from './drain/netosecret.js';
import { ConfigError } from './flow/errors.js';
import { ExporterTrust, trustSettingsFromConfig } from './ingest/trust/exporter-trust.js';
import { loadDeviceKey } from './audit/signing-key-source.js';
import type { DeviceKey } from './audit/device-key.js';
import { resolvePseudonymizeKey } from './privacy/key-source.js';
import { resolveSpoolKeks } from './spool/kek-source.js';

/**
 * Everything `sealflow run` checks before it binds a socket, in one place, so that
 * `sealflow config check` runs exactly these checks and its "ok" means `run` will start:
 *
 * - the files the configuration names (TLS/DTLS certificate, key, CA bundle, CRLs; the Fusion
 *   CA bundle): present, readable, and loaded with the listeners' own loader (key matches the
 *   certificate, bundles and CRLs parse, identities valid);
 * - every secret resolved from its source and parsed as its user parses it (the KEK and the
 *   earlier KEKs, the Fusion netosecret, the admin token, the master pseudonymisation key, the
 *   audit signing key);
 * - ports below net.ipv4.ip_unprivileged_port_start for a process without CAP_NET_BIND_SERVICE;
 * - private key and secret files readable by group or other users (warnings: containers and
 *   Kubernetes mount secrets 0444/0644, so they are reported, not refused).
 *
 * Every problem is collected and names its setting; none stops the others from being checked.
 * The resolved secrets are returned for `run` to use (so a KMS command runs once).
 */

export interface PreflightReport {
  /** Problems that stop `run` (exit 78), each naming its setting and the fix. */
  readonly problems: readonly string[];
  /** Findings `run` logs and starts anyway. */
  readonly warnings: readonly string[];
  /** What was checked and found usable, for `config check`'s header. */
  readonly notes: readonly string[];
}

export interface StartSecrets {
  readonly keks: Uint8Array[];
  /** Null when the drain is off or goes to the embedded stand-in. */
  readonly credentials: FusionCredentials | null;
  readonly adminToken: Buffer | undefined;
  /** The master pseudonymisation key; null without privacy.pseudonymize. */
  readonly pseudonymizeKey: Uint8Array | null;
  /** The audit trail's device signing key; null without audit.signingKey (the trail is then unsigned). */
  readonly signingKey: DeviceKey | null;
}

export interface PreflightOptions {
  readonly env: NodeJS.ProcessEnv;
  /** `run` creates the development key and PKI before these checks; `config check` only says it will. */
  readonly developmentFilesCreated: boolean;
  /** Host facts, for tests: the lowest port an unprivileged process may bind, and whether this one may bind lower. */
  readonly ports?: { readonly unprivilegedStart: number; readonly canBindLow: boolean };
}

const CAP_NET_BIND_SERVICE = 10;

/** net.ipv4.ip_unprivileged_port_start and CAP_NET_BIND_SERVICE in this process's effective set (Linux). */
async function hostPortRules(): Promise<{ unprivilegedStart: number; canBindLow: boolean }> {
  const start = await readFile('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').then(
    (t) => Number(t.trim()),
    // Hidden (systemd ProcSubset=pid) or not Linux: the kernel's default.
    () => 1024,
  );
  const capEff = await readFile('/proc/self/status', 'utf8').then(
    (t) => /^CapEff:\s*([0-9a-f]+)$/m.exec(t)?.[1],
    () => undefined,
  );
  const canBindLow = capEff === undefined ? process.getuid?.() === 0 : (BigInt(`0x${capEff}`) >> BigInt(CAP_NET_BIND_SERVICE)) & 1n ? true : false;
  return { unprivilegedStart: Number.isInteger(start) ? start : 1024, canBindLow };
}

interface Binding {
  readonly setting: string;
  readonly what: string;
  readonly port: number;
}

function bindings(c: Config): Binding[] {
  const out: Binding[] = c.listeners.udp.map((u, i) => ({ setting: `listeners.udp[${i}].port`, what: `UDP ${u.address}`, port: u.port }));
  if (c.listeners.tls.enabled) out.push({ setting: 'listeners.tls.port', what: `TCP ${c.listeners.tls.address}`, port: c.listeners.tls.port });
  if (c.listeners.dtls.enabled) out.push({ setting: 'listeners.dtls.port', what: `UDP ${c.listeners.dtls.address}`, port: c.listeners.dtls.port });
  if (c.admin.enabled && c.admin.port !== 0) out.push({ setting: 'admin.port', what: `TCP ${c.admin.address}`, port: c.admin.port });
  return out;
}

/** A file the configuration names: null when readable, else the problem. */
async function unreadable(path: string, setting: string): Promise<string | null> {
  try {
    await access(path, fsConstants.R_OK);
    return null;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this user' : `cannot be read (${code ?? 'error'})`;
    return `${setting}: ${path} ${why}`;
  }
}

export async function preflight(loaded: LoadedConfig, options: PreflightOptions): Promise<{ report: PreflightReport; secrets: StartSecrets | null }> {
  const c = loaded.config;
  const problems: string[] = [];
  const warnings: string[] = [...loaded.warnings];
  const notes: string[] = [];
  const attempt = async <T>(fn: () => Promise<T> | T): Promise<T | undefined> => {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      problems.push(err.message);
      return undefined;
    }
  };
  const warn = (m: string): void => {
    warnings.push(m);
  };

  // Files of the TLS and DTLS listeners (DTLS inherits TLS's; a file is reported once).
  const reported = new Set<string>();
  for (const kind of ['tls', 'dtls'] as const) {
    const l = c.listeners[kind];
    if (!l.enabled) continue;
    const files = [['certFile', l.certFile], ['keyFile', l.keyFile], ['caFile', l.caFile], ...l.crlFiles.map((f, i) => [`crlFiles[${i}]`, f])] as const;
    const missing: { file: string; problem: string }[] = [];
    for (const [key, file] of files) {
      const problem = file === undefined ? null : await unreadable(file, `listeners.${kind}.${key}`);
      if (file !== undefined && problem !== null) missing.push({ file, problem });
    }
    if (missing.length > 0 && c.development.generatePki && !options.developmentFilesCreated) {
      notes.push(`listeners.${kind}: development PKI will be created on first start`);
      continue;
    }
    for (const m of missing) if (!reported.has(m.file)) problems.push(m.problem);
    for (const m of missing) reported.add(m.file);
    if (missing.length > 0) continue;
    if (l.keyFile !== undefined && !reported.has(l.keyFile)) {
      const w = groupOtherModeWarning(l.keyFile, `listeners.${kind}.keyFile`, (await stat(l.keyFile)).mode);
      if (w !== null) warn(w);
      reported.add(l.keyFile);
    }
    const trust = await attempt(() => ExporterTrust.load(trustSettingsFromConfig(l), `listeners.${kind}`));
    if (trust !== undefined) notes.push(`listeners.${kind}: certificate, key, CA bundle and ${l.crlFiles.length} CRL file(s) ok`);
  }
  const fusionCa = c.drain.fusion.caFile;
  if (c.drain.enabled && fusionCa !== undefined) {
    const problem = await unreadable(fusionCa, 'drain.fusion.caFile');
    if (problem !== null) problems.push(problem);
    else {
      try {
        new X509Certificate(await readFile(fusionCa));
        notes.push('drain.fusion.caFile: ok');
      } catch {
        problems.push(`drain.fusion.caFile: ${fusionCa} does not start with a PEM certificate`);
      }
    }
  }

  // Secrets, resolved and parsed exactly as their users do.
  const secretOptions = { env: options.env, warn, origins: loaded.origins };
  const kek = c.spool.kek;
  const devKekPending = !options.developmentFilesCreated && c.development.generateKek && kek !== undefined && 'file' in kek && (await unreadable(kek.file, 'spool.kek')) !== null;
  let keys: { kek: Uint8Array; previousKeks: Uint8Array[] } | undefined;
  if (devKekPending) notes.push(`secret spool.kek: development key ${describeSecretSource(kek)} will be created on first start`);
  else {
    keys = await attempt(() => resolveSpoolKeks(c.spool, secretOptions));
    if (keys !== undefined && kek !== undefined) {
      notes.push(`secret spool.kek: ok (${describeSecretSource(kek)})`);
      c.spool.previousKeks.forEach((p, i) => notes.push(`secret spool.previousKeks[${i}]: ok (${describeSecretSource(p)})`));
    }
  }
  let credentials: FusionCredentials | null | undefined = null;
  const netosecret = c.drain.fusion.netosecret;
  if (c.drain.enabled && !c.drain.fusion.embeddedSim && netosecret !== undefined) {
    credentials = await attempt(() => fusionCredentialsFromConfig(c.drain, secretOptions));
    if (credentials !== undefined) notes.push(`secret drain.fusion.netosecret: ok (${describeSecretSource(netosecret)})`);
  }
  let adminToken: Buffer | undefined;
  const token = c.admin.token;
  if (c.admin.enabled && token !== undefined) {
    adminToken = await attempt(() => resolveSecret(token, 'admin.token', secretOptions));
    if (adminToken !== undefined) notes.push(`secret admin.token: ok (${describeSecretSource(token)})`);
  }
  let pseudonymizeKey: Uint8Array | null | undefined = null;
  const pz = c.privacy.pseudonymize;
  if (pz !== undefined) {
    pseudonymizeKey = await attempt(() => resolvePseudonymizeKey(pz.key, secretOptions));
    if (pseudonymizeKey !== undefined) notes.push(`secret privacy.pseudonymize.key: ok (${describeSecretSource(pz.key)})`);
  }
  let signingKey: DeviceKey | null | undefined = null;
  const sk = c.audit.signingKey;
  const devSigningKeyPending = !options.developmentFilesCreated && c.development.generateSigningKey && sk !== undefined && 'file' in sk && (await unreadable(sk.file, 'audit.signingKey')) !== null;
  if (devSigningKeyPending) notes.push(`secret audit.signingKey: development key ${describeSecretSource(sk)} will be created on first start`);
  else if (sk !== undefined) {
    signingKey = await attempt(() => loadDeviceKey(c, secretOptions));
    if (signingKey !== undefined) notes.push(`secret audit.signingKey: ok (${describeSecretSource(sk)})`);
  }

  // Ports the kernel will refuse to this process.
  const rules = options.ports ?? (await hostPortRules());
  if (!rules.canBindLow) {
    for (const b of bindings(c)) {
      if (b.port > 0 && b.port < rules.unprivilegedStart) {
        problems.push(
          `${b.setting}: ${b.what} port ${b.port} is below ${rules.unprivilegedStart} (net.ipv4.ip_unprivileged_port_start) and this process lacks CAP_NET_BIND_SERVICE; use a port ≥ ${rules.unprivilegedStart} (redirect with nftables or a container port mapping) or grant the capability (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE)`,
        );
      }
    }
  }

  const report = { problems, warnings, notes };
  if (problems.length > 0 || keys === undefined || credentials === undefined || pseudonymizeKey === undefined || signingKey === undefined) {
    keys?.kek.fill(0);
    for (const k of keys?.previousKeks ?? []) k.fill(0);
    adminToken?.fill(0);
    pseudonymizeKey?.fill(0);
    signingKey?.destroy();
    return { report, secrets: null };
  }
  return { report, secrets: { keks: [keys.kek, ...keys.previousKeks], credentials, adminToken, pseudonymizeKey, signingKey } };
}

import { readFile } from 'node:fs/promises';
import { extname, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { networkOfHostBits, parsePrefix } from '../flow/cidr.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { parseIp } from '../flow/ip.js';
import { embeddedDefaults } from './embedded-defaults.js';
import { CONFIG_PATH_ENV, readEnvLayer } from './env-layer.js';
import { formatPath, InvalidConfigError, issuesFromZod, showValue, type ConfigIssue, type IssuePath } from './invalid-config-error.js';
import { ConfigSchema, SECRET_INLINE_MESSAGE, SECRET_SETTINGS, type Config, type ConfigInput, type FilterConfig, type ParsedConfig, type PseudonymizeConfig, type SecretSource } from './schema.js';
import { deepFreeze } from './defaults.js';

/**
 * Loading the configuration, once, at start:
 *
 *   base (schema defaults, or embeddedDefaults(dataDir) when no file is given and the caller
 *   asks for the embedded `npm start` setup) ← config file (YAML/JSON, `--config PATH` or
 *   SEALFLOW_CONFIG) ← SEALFLOW_* environment variables ← command-line flag overrides
 *
 * Layers merge key by key; a list in a later layer replaces the whole list. The merged object
 * is validated by the strict schema, then cross-field checks run; every problem is collected
 * into one InvalidConfigError (code ERR_CONFIG_INVALID → exit 78). The result has absolute
 * paths and is deep-frozen: components get slices of it and cannot change it.
 *
 * Relative paths (dataDir, certificate/key files, spool.dir, secret files) resolve against
 * the working directory (`cwd` option), not the config file's directory, so a path means the
 * same thing whether it came from the file, the environment or a flag.
 */

/** Partial configuration used as an override layer (command-line flags). */
export type ConfigOverrides = DeepPartial<ConfigInput>;
type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> | undefined } : T;

/** compileFilters(config, setting) from src/filter: throws ConfigError naming the setting. */
export type FilterCompiler = (filters: FilterConfig, setting?: string) => unknown;
/** compilePseudonymPolicy(policy) from src/privacy: throws ConfigError naming the setting. */
export type PseudonymPolicyCompiler = (policy: Pick<PseudonymizeConfig, 'fields' | 'rules'>) => unknown;

export interface LoadConfigOptions {
  /** Config file (YAML, or JSON which is YAML). Default: $SEALFLOW_CONFIG, else none. */
  readonly configPath?: string | undefined;
  /** Environment for SEALFLOW_* variables (default: process.env). */
  readonly env?: NodeJS.ProcessEnv;
  /** Command-line flag layer, applied last. */
  readonly overrides?: ConfigOverrides;
  /** Names the override layer in messages (default: "command-line flags"). */
  readonly overridesOrigin?: string;
  /** Directory relative paths resolve against (default: process.cwd()). */
  readonly cwd?: string;
  /** With no config file, start from embeddedDefaults(dataDir) (the `npm start` setup) instead of schema defaults. */
  readonly embeddedWhenNoFile?: boolean;
  /**
   * Validates the filter rules (src/filter compileFilters). Default: loaded from
   * src/filter/compile-filters.js when that module exists; pass null to check the shape only.
   */
  readonly compileFilters?: FilterCompiler | null;
  /**
   * Validates privacy.pseudonymize's rules (src/privacy compilePseudonymPolicy). Default: loaded
   * from src/privacy/policy.js when that module exists; pass null to check the shape only.
   */
  readonly compilePseudonymPolicy?: PseudonymPolicyCompiler | null;
  /** Whether a drain without a Fusion API key is a problem (default true; false for commands that only inspect the spool). */
  readonly checkDrainCredentials?: boolean;
}

export interface LoadedConfig {
  readonly config: Config;
  /** Absolute path of the config file used, or null. */
  readonly configPath: string | null;
  /** Whether the base layer was the embedded `npm start` configuration. */
  readonly embedded: boolean;
  /** Dotted setting path → the environment variable / flag layer that set it (file and defaults are not listed). */
  readonly origins: ReadonlyMap<string, string>;
  /** Non-fatal findings the caller should log at warn (e.g. admin endpoint exposed without a token). */
  readonly warnings: readonly string[];
}

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges `over` onto `base` (neither modified). Objects merge per key, anything else (lists
 * included) replaces; undefined in `over` leaves the base value. Records the path of every
 * replaced value in `origins` when `origin` is given.
 */
function merge(base: unknown, over: unknown, path: string[], origin: string | null, origins: Map<string, string>, issues: ConfigIssue[]): unknown {
  if (over === undefined) return base;
  // A secret source is one of {env}/{file}/{command}: a later layer replaces it whole.
  const wholeValue = SECRET_SETTINGS.includes(path.join('.'));
  if (!isPlainObject(over) || !isPlainObject(base) || wholeValue) {
    if (origin !== null) origins.set(path.join('.'), origin);
    return isPlainObject(over) && !wholeValue ? merge({}, over, path, origin, origins, issues) : over;
  }
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (FORBIDDEN_KEYS.has(k)) {
      issues.push({ path: [...path, k], message: 'is not an allowed key' });
      continue;
    }
    const merged = merge(base[k], v, [...path, k], origin, origins, issues);
    if (merged !== undefined) out[k] = merged;
  }
  return out;
}


/** Reads and parses a YAML/JSON config file into a plain object. */
export async function readConfigFile(path: string, setting = '--config'): Promise<Record<string, unknown>> {
  const ext = extname(path).toLowerCase();
  if (ext !== '.yaml' && ext !== '.yml' && ext !== '.json') {
    throw new ConfigError(ConfigErrorCode.File, setting, `config file ${path}: unsupported extension "${ext}"; use .yaml, .yml or .json`);
  }
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // The container image sets SEALFLOW_CONFIG: say how the file gets there.
    const fromEnv = setting === CONFIG_PATH_ENV;
    const from = fromEnv ? ` (from ${CONFIG_PATH_ENV})` : '';
    const why =
      code === 'ENOENT'
        ? fromEnv
          ? `does not exist: write your configuration there (a container mounts it: -v ./sealflow.yaml:${path}:ro) or point ${CONFIG_PATH_ENV} elsewhere; see docs/deployment.md`
          : 'does not exist'
        : code === 'EACCES'
          ? 'is not readable by this user'
          : `cannot be read (${code ?? 'error'})`;
    throw new ConfigError(ConfigErrorCode.File, setting, `config file ${path}${from} ${why}`, {}, { cause: err });
  }
  let doc: unknown;
  try {
    // uniqueKeys: a key given twice is an error, not "last one wins".
    doc = parseYaml(text, { uniqueKeys: true, prettyErrors: true, maxAliasCount: 100 });
  } catch (err) {
    if (err instanceof YAMLParseError) {
      const pos = err.linePos?.[0];
      const where = pos === undefined ? '' : ` at line ${pos.line}, column ${pos.col}`;
      const first = err.message.split('\n')[0] ?? err.message;
      throw new ConfigError(ConfigErrorCode.File, setting, `config file ${path} is not valid YAML${where}: ${first.replace(/ at line \d+, column \d+:?$/, '')}`, {}, { cause: err });
    }
    throw err;
  }
  if (doc === null || doc === undefined) return {};
  if (!isPlainObject(doc)) {
    throw new ConfigError(ConfigErrorCode.File, setting, `config file ${path} must contain a mapping of settings at the top level; got ${showValue(doc)}`);
  }
  return doc;
}

const optionalExports = new Map<string, Promise<unknown>>();

/**
 * A function a stage module exports for checking its settings, when the module is present (it
 * is optional for config checking): loaded by name at run time, so config/ depends on no stage.
 */
function optionalExport(specifier: string, name: string): Promise<unknown> {
  let p = optionalExports.get(specifier);
  if (p === undefined) {
    p = (async () => {
      try {
        const mod = (await import(specifier)) as Record<string, unknown>;
        return typeof mod[name] === 'function' ? mod[name] : null;
      } catch (err) {
        const e = err as { code?: unknown; message?: unknown };
        if (e.code === 'ERR_MODULE_NOT_FOUND' && String(e.message).includes(specifier.slice(specifier.lastIndexOf('/') + 1, -'.js'.length))) return null;
        throw err;
      }
    })();
    optionalExports.set(specifier, p);
  }
  return p;
}

/** Loads src/filter's compileFilters if the module is present. */
export async function loadFilterCompiler(): Promise<FilterCompiler | null> {
  return (await optionalExport('../filter/compile-filters.js', 'compileFilters')) as FilterCompiler | null;
}

/** Loads src/privacy's compilePseudonymPolicy if the module is present. */
export async function loadPseudonymPolicyCompiler(): Promise<PseudonymPolicyCompiler | null> {
  return (await optionalExport('../privacy/policy.js', 'compilePseudonymPolicy')) as PseudonymPolicyCompiler | null;
}

/** Loads, merges, validates and freezes the configuration. Throws ConfigError (exit 78) on any problem. */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const configPathText = options.configPath ?? (env[CONFIG_PATH_ENV] !== undefined && env[CONFIG_PATH_ENV] !== '' ? env[CONFIG_PATH_ENV] : undefined);
  const configPath = configPathText === undefined ? null : resolve(cwd, configPathText);
  const origins = new Map<string, string>();
  const issues: ConfigIssue[] = [];

  const fileLayer = configPath === null ? {} : await readConfigFile(configPath, options.configPath === undefined ? CONFIG_PATH_ENV : '--config');
  // A JSON config may name its schema for editors ("$schema": "..."); it is not a setting.
  delete fileLayer.$schema;
  // Checked on the file itself, not the merged result: an environment variable supplying the
  // key must not make a secret written into the file acceptable.
  issues.push(...inlineSecrets(fileLayer));
  const envLayer = readEnvLayer(env);
  const flagOrigin = options.overridesOrigin ?? 'command-line flags';

  let base: unknown = {};
  const embedded = configPath === null && options.embeddedWhenNoFile === true;
  if (embedded) {
    // The data directory decides where the embedded PKI/KEK live, so settle it first.
    const dataDirOverride = options.overrides?.dataDir ?? envLayer.layer.dataDir;
    base = embeddedDefaults(resolve(cwd, typeof dataDirOverride === 'string' && dataDirOverride !== '' ? dataDirOverride : './.sealflow'));
  }
  let merged = merge(base, fileLayer, [], null, origins, issues);
  merged = merge(merged, envLayer.layer, [], null, origins, issues);
  for (const [p, v] of envLayer.sources) origins.set(p, v);
  merged = merge(merged, options.overrides ?? {}, [], flagOrigin, origins, issues);
  if (embedded) merged = realFusionReplacesStandIn(merged, origins);

  const originOf = (path: IssuePath): string | undefined => {
    const keys = path.map(String);
    for (let n = keys.length; n > 0; n--) {
      const o = origins.get(keys.slice(0, n).join('.'));
      if (o !== undefined) return o;
    }
    return undefined;
  };
  const where = configPath;
  if (issues.length > 0) throw new InvalidConfigError(issues, where);

  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) throw new InvalidConfigError(issuesFromZod(parsed.error.issues, merged, originOf), where);

  const config = resolvePaths(parsed.data, cwd);
  const compilers: Compilers = {
    filters: options.compileFilters === undefined ? await loadFilterCompiler() : options.compileFilters,
    pseudonymPolicy: options.compilePseudonymPolicy === undefined ? await loadPseudonymPolicyCompiler() : options.compilePseudonymPolicy,
  };
  const warnings: string[] = [];
  const cross = crossChecks(config, compilers, warnings, options.checkDrainCredentials ?? true).map((i) => {
    const origin = originOf(i.path);
    return origin === undefined || i.origin !== undefined ? i : { ...i, origin };
  });
  if (cross.length > 0) throw new InvalidConfigError(cross, where);
  return { config: deepFreeze(config), configPath, embedded, origins, warnings };
}

/**
 * The embedded configuration drains to the in-process stand-in; a Fusion API key given on top
 * of it (SEALFLOW_FUSION_NETOSECRET*, a flag) means the real Fusion, unless the stand-in was
 * asked for explicitly too.
 */
function realFusionReplacesStandIn(merged: unknown, origins: ReadonlyMap<string, string>): unknown {
  if (!isPlainObject(merged) || !isPlainObject(merged.drain) || !isPlainObject(merged.drain.fusion)) return merged;
  const fusion = merged.drain.fusion;
  if (fusion.netosecret === undefined || fusion.embeddedSim !== true || origins.has('drain.fusion.embeddedSim')) return merged;
  return { ...merged, drain: { ...merged.drain, fusion: { ...fusion, embeddedSim: false } } };
}

/** Secret settings in a file layer that hold something other than a source object (an inline secret). */
function inlineSecrets(layer: Record<string, unknown>): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const setting of SECRET_SETTINGS) {
    const path = setting.split('.');
    let node: unknown = layer;
    for (const k of path) node = isPlainObject(node) ? node[k] : undefined;
    if (node === undefined) continue;
    const values = Array.isArray(node) ? node.map((v, i) => [[...path, i], v] as const) : [[path, node] as const];
    for (const [p, v] of values) {
      if (typeof v === 'string' || typeof v === 'number') out.push({ path: p, message: SECRET_INLINE_MESSAGE });
    }
  }
  return out;
}

function abs(cwd: string, p: string): string {
  return isAbsolute(p) ? p : resolve(cwd, p);
}

function absSecret(cwd: string, s: SecretSource): SecretSource {
  return 'file' in s ? { file: abs(cwd, s.file) } : s;
}

/** Absolute paths, spool.dir default, DTLS trust inheritance. Returns a new object. */
function resolvePaths(c: ParsedConfig, cwd: string): Config {
  const dataDir = abs(cwd, c.dataDir);
  const pick = (p: string | undefined): string | undefined => (p === undefined ? undefined : abs(cwd, p));
  const tls = c.listeners.tls;
  const dtls = c.listeners.dtls;
  const trust = (t: typeof tls | typeof dtls, fallback: typeof tls | null) => {
    const out: Record<string, unknown> = {};
    const certFile = pick(t.certFile ?? fallback?.certFile);
    const keyFile = pick(t.keyFile ?? fallback?.keyFile);
    const caFile = pick(t.caFile ?? fallback?.caFile);
    if (certFile !== undefined) out.certFile = certFile;
    if (keyFile !== undefined) out.keyFile = keyFile;
    if (caFile !== undefined) out.caFile = caFile;
    out.crlFiles = (t.crlFiles ?? fallback?.crlFiles ?? []).map((f) => abs(cwd, f));
    out.identities = t.identities ?? fallback?.identities ?? [];
    return out;
  };
  const spool: Record<string, unknown> = {
    ...c.spool,
    dir: abs(cwd, c.spool.dir ?? join(dataDir, 'spool')),
    previousKeks: c.spool.previousKeks.map((s) => absSecret(cwd, s)),
  };
  if (c.spool.kek !== undefined) spool.kek = absSecret(cwd, c.spool.kek);
  const fusion: Record<string, unknown> = { ...c.drain.fusion };
  if (c.drain.fusion.netosecret !== undefined) fusion.netosecret = absSecret(cwd, c.drain.fusion.netosecret);
  if (c.drain.fusion.caFile !== undefined) fusion.caFile = abs(cwd, c.drain.fusion.caFile);
  const admin: Record<string, unknown> = { ...c.admin };
  if (c.admin.token !== undefined) admin.token = absSecret(cwd, c.admin.token);
  const pz = c.privacy.pseudonymize;
  const privacy = pz === undefined ? c.privacy : { ...c.privacy, pseudonymize: { ...pz, key: absSecret(cwd, pz.key) } };
  const audit: Record<string, unknown> = { ...c.audit };
  if (c.audit.signingKey !== undefined) audit.signingKey = absSecret(cwd, c.audit.signingKey);
  const out = {
    ...c,
    dataDir,
    audit,
    listeners: {
      ...c.listeners,
      udp: c.listeners.udp.map((u) => {
        if (u.name !== undefined) return u;
        // "udp-<port>", or with the address when two listeners share a port on different addresses.
        const sharesPort = c.listeners.udp.filter((o) => o.port === u.port).length > 1;
        return { ...u, name: sharesPort ? `udp-${u.address}-${u.port}` : `udp-${u.port}` };
      }),
      tls: { ...tls, ...trust(tls, null) },
      dtls: { ...dtls, ...trust(dtls, tls) },
    },
    spool,
    privacy,
    drain: { ...c.drain, fusion },
    admin,
  };
  return out as unknown as Config;
}

function isLoopback(address: string): boolean {
  const p = parsePrefix('127.0.0.0/8');
  const a = parseIp(address);
  if (a === null) return address === 'localhost';
  if (typeof a === 'number') return p !== null && ((a & p.v4Mask) >>> 0) === p.v4Network;
  return a.every((b, i) => b === (i === 15 ? 1 : 0));
}

function isWildcard(address: string): boolean {
  return address === '0.0.0.0' || address === '::';
}

/** Parses "host:port" / "[v6]:port"; returns an error text or null. */
function checkHostPort(text: string): string | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (m === null) return 'must be "host:port" (IPv6 as "[addr]:port")';
  const portNum = Number(m[2]);
  if (portNum < 1 || portNum > 65_535) return 'port must be from 1 to 65535';
  return null;
}

interface Binding {
  readonly proto: 'udp' | 'tcp';
  readonly address: string;
  readonly port: number;
  readonly path: IssuePath;
}

/** Checks that span several keys, or need parsing beyond the schema. Returns every problem. */
/** The stages' own checks of their settings (null: the shape only). */
interface Compilers {
  readonly filters: FilterCompiler | null;
  readonly pseudonymPolicy: PseudonymPolicyCompiler | null;
}

/** Runs a stage's check; its ConfigError (which names the setting itself) becomes the problem text. */
function compilerIssue(check: () => unknown): ConfigIssue | null {
  try {
    check();
    return null;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const prefix = `${err.setting}: `;
    return { path: [err.setting], message: err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message };
  }
}

function crossChecks(c: Config, compilers: Compilers, warnings: string[], checkDrainCredentials: boolean): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const add = (path: IssuePath, message: string): void => {
    issues.push({ path, message });
  };
  /** 192.0.2.1/24: the network or the host? Either is a typo away; say both. */
  const checkHostBits = (list: readonly string[] | undefined, path: IssuePath): void => {
    (list ?? []).forEach((entry, i) => {
      const network = networkOfHostBits(entry);
      const host = entry.slice(0, entry.indexOf('/')).trim();
      if (network !== null) add([...path, i], `${showValue(entry)} has host bits set; write the network ${network} or the single address ${host}/${host.includes(':') ? 128 : 32}`);
    });
  };
  const checkPrefixes = (list: readonly string[] | undefined, path: IssuePath): void => {
    (list ?? []).forEach((entry, i) => {
      if (parsePrefix(entry) === null) add([...path, i], `must be an IP address or CIDR prefix (e.g. 192.0.2.0/24, 2001:db8::/32); got ${showValue(entry)}`);
    });
    checkHostBits(list, path);
  };
  const checkAddress = (address: string, path: IssuePath): void => {
    if (parseIp(address) === null) add(path, `must be an IP address to bind (e.g. 0.0.0.0, ::, 127.0.0.1); got ${showValue(address)}`);
  };

  checkPrefixes(c.listeners.allowlist, ['listeners', 'allowlist']);

  const bindings: Binding[] = [];
  c.listeners.udp.forEach((l, i) => {
    checkAddress(l.address, ['listeners', 'udp', i, 'address']);
    bindings.push({ proto: 'udp', address: l.address, port: l.port, path: ['listeners', 'udp', i, 'port'] });
  });
  const names = new Map<string, number>();
  c.listeners.udp.forEach((l, i) => {
    if (l.name === undefined) return;
    const prev = names.get(l.name);
    if (prev !== undefined) add(['listeners', 'udp', i, 'name'], `duplicates listeners.udp[${prev}].name ${JSON.stringify(l.name)}; names must be unique`);
    else names.set(l.name, i);
  });

  for (const kind of ['tls', 'dtls'] as const) {
    const l = c.listeners[kind];
    if (!l.enabled) continue;
    const base = ['listeners', kind];
    checkAddress(l.address, [...base, 'address']);
    bindings.push({ proto: kind === 'tls' ? 'tcp' : 'udp', address: l.address, port: l.port, path: [...base, 'port'] });
    for (const f of ['certFile', 'keyFile', 'caFile'] as const) {
      const inherited = kind === 'dtls' ? ` (or set listeners.tls.${f}, which DTLS inherits)` : '';
      if (l[f] === undefined) add([...base, f], `is required when listeners.${kind}.enabled is true${inherited}`);
    }
    if (l.identities.length === 0) {
      add([...base, 'identities'], `is empty, so no exporter could connect over ${kind.toUpperCase()}; list the identities (certificate DNS names) allowed to send`);
    }
    l.identities.forEach((id, i) => {
      checkPrefixes(id.sources, [...base, 'identities', i, 'sources']);
    });
  }
  if (c.admin.enabled) {
    checkAddress(c.admin.address, ['admin', 'address']);
    if (c.admin.port !== 0) bindings.push({ proto: 'tcp', address: c.admin.address, port: c.admin.port, path: ['admin', 'port'] });
    if (!isLoopback(c.admin.address) && c.admin.token === undefined) {
      warnings.push(`admin.address ${c.admin.address} is not loopback and admin.token is not set: /stats and /metrics are readable by anyone who can reach it`);
    }
  }

  // Two sockets of one protocol on one port conflict when their addresses are equal or either is a wildcard.
  for (let i = 0; i < bindings.length; i++) {
    for (let j = 0; j < i; j++) {
      const a = bindings[i];
      const b = bindings[j];
      if (a === undefined || b === undefined) continue;
      if (a.proto === b.proto && a.port === b.port && (a.address === b.address || isWildcard(a.address) || isWildcard(b.address))) {
        add(a.path, `${a.proto.toUpperCase()} port ${a.port} is already used by ${formatPath(b.path)}; every listener needs its own port`);
      }
    }
  }

  const udpPorts = new Set(c.listeners.udp.map((l) => l.port));
  c.tees.forEach((t, i) => {
    if (t.listenerPort !== undefined && !udpPorts.has(t.listenerPort)) {
      add(['tees', i, 'listenerPort'], `is ${t.listenerPort}, which no listeners.udp entry binds; allowed: ${[...udpPorts].join(', ') || 'none configured'}`);
    }
    t.targets.forEach((target, k) => {
      const err = checkHostPort(target);
      if (err !== null) add(['tees', i, 'targets', k], `${err}; got ${showValue(target)}`);
    });
    checkPrefixes(t.exporters, ['tees', i, 'exporters']);
  });

  const compileFilters = compilers.filters;
  if (compileFilters !== null) {
    const issue = compilerIssue(() => compileFilters(c.filters, 'filters'));
    if (issue !== null) issues.push(issue);
  }
  // The compiler checks the prefix syntax of filter rules; host bits are checked here either way.
  const checkRulePrefixes = compileFilters === null ? checkPrefixes : checkHostBits;
  c.filters.rules.forEach((r, i) => {
    checkRulePrefixes(r.srcnets, ['filters', 'rules', i, 'srcnets']);
    checkRulePrefixes(r.dstnets, ['filters', 'rules', i, 'dstnets']);
    checkRulePrefixes(r.exporters, ['filters', 'rules', i, 'exporters']);
  });

  const pz = c.privacy.pseudonymize;
  const compilePolicy = compilers.pseudonymPolicy;
  if (pz !== undefined) {
    if (compilePolicy !== null) {
      const issue = compilerIssue(() => compilePolicy({ fields: pz.fields, rules: pz.rules }));
      if (issue !== null) issues.push(issue);
    }
    // As for the filters: the compiler checks the syntax; host bits are checked here either way.
    const checkPolicyPrefixes = compilePolicy === null ? checkPrefixes : checkHostBits;
    pz.rules.forEach((r, i) => {
      checkPolicyPrefixes(r.prefixes, ['privacy', 'pseudonymize', 'rules', i, 'prefixes']);
    });
    if (c.tees.length > 0) warnings.push('tees forward raw datagrams as received: the collectors they reach get the real addresses that privacy.pseudonymize replaces in the spool and at Fusion');
  }

  if (c.spool.kek === undefined) {
    add(['spool', 'kek'], 'no key-encryption key is configured; set SEALFLOW_SPOOL_KEK, SEALFLOW_SPOOL_KEK_FILE or SEALFLOW_SPOOL_KEK_COMMAND, or spool.kek: {file: /path} (create a key with `sealflow keygen`)');
  }
  if (checkDrainCredentials && c.drain.enabled && !c.drain.fusion.embeddedSim && c.drain.fusion.netosecret === undefined) {
    add(['drain', 'fusion', 'netosecret'], 'no Fusion API key is configured; set SEALFLOW_FUSION_NETOSECRET, SEALFLOW_FUSION_NETOSECRET_FILE or _COMMAND, or drain.fusion.netosecret: {file: /path} (or drain.enabled: false)');
  }
  if (c.development.generatePki) {
    const t = c.listeners.tls;
    if (t.certFile === undefined || t.keyFile === undefined || t.caFile === undefined) {
      add(['development', 'generatePki'], 'requires listeners.tls.certFile, keyFile and caFile (the development PKI is written there)');
    }
  }
  if (c.drain.retry.initialDelayMs > c.drain.retry.maxDelayMs) {
    add(['drain', 'retry', 'initialDelayMs'], `must not exceed drain.retry.maxDelayMs (${c.drain.retry.maxDelayMs}); got ${c.drain.retry.initialDelayMs}`);
  }
  return issues;
}

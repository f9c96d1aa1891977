import { readFileSync } from 'node:fs';
import { inspect } from 'node:util';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';

/**
 * The Fusion API key ("netosecret", docs/FUSION.md): base64 — often without `=` padding,
 * sometimes base64url — of the JSON object {url, shortname, appname, sharedsecret, appkey}.
 * It is encoded, not encrypted, so the whole string is a secret.
 *
 * FusionCredentials keeps the secret parts in private fields and renders as "[redacted]" in
 * JSON.stringify, util.inspect and template strings, so a careless log line or error context
 * cannot leak it. Error messages here name the setting and what is wrong, never the value.
 */

export const NETOSECRET_ENV = 'SEALFLOW_FUSION_NETOSECRET';
export const NETOSECRET_FILE_ENV = 'SEALFLOW_FUSION_NETOSECRET_FILE';
export const NETOSECRET_CONFIG_SETTING = 'drain.fusion.netosecret';
export const NETOSECRET_FILE_CONFIG_SETTING = 'drain.fusion.netosecret';

/** A netosecret is a few hundred bytes; anything far larger is not one (and is not read whole). */
const MAX_NETOSECRET_CHARS = 16 * 1024;

/** The path every Fusion API call sits under; `url` in a netosecret may or may not include it. */
export const FUSION_API_PREFIX = '/api/v1';

const FIX_HINT = 'copy the API key (netosecret) again from the Fusion portal';

export class FusionCredentials {
  /** The API base without the /api/v1 suffix, e.g. https://api.netography.com (no trailing slash). */
  readonly apiBase: string;
  readonly shortname: string;
  readonly appname: string;
  readonly #sharedsecret: string;
  readonly #appkey: string;

  constructor(fields: { url: string; shortname: string; appname: string; sharedsecret: string; appkey: string }, setting = 'netosecret') {
    this.apiBase = apiBaseOf(fields.url, setting);
    this.shortname = fields.shortname;
    this.appname = fields.appname;
    this.#sharedsecret = fields.sharedsecret;
    this.#appkey = fields.appkey;
  }

  /** The HMAC key of the request JWT. Only the JWT signer reads it. */
  get sharedsecret(): string {
    return this.#sharedsecret;
  }

  get appkey(): string {
    return this.#appkey;
  }

  /** Absolute URL of an API endpoint, e.g. endpoint('/auth/token'). */
  endpoint(path: string): string {
    return `${this.apiBase}${FUSION_API_PREFIX}${path}`;
  }

  toJSON(): Record<string, string> {
    return { apiBase: this.apiBase, shortname: this.shortname, appname: this.appname, sharedsecret: '[redacted]', appkey: '[redacted]' };
  }

  toString(): string {
    return `FusionCredentials(${this.apiBase}, ${this.shortname}/${this.appname})`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/**
 * The API base from a netosecret's `url`: accepts `https://host`, `https://host/`,
 * `https://host/api/v1` and `https://host/prefix/api/v1/`; returns it without the /api/v1
 * suffix and without a trailing slash, so endpoint paths are never doubled.
 */
export function apiBaseOf(url: string, setting: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: the netosecret's "url" is not a valid URL; ${FIX_HINT}`);
  }
  if (u.protocol !== 'https:') {
    throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: the netosecret's "url" must be https:// (got ${u.protocol}); ${FIX_HINT}`);
  }
  if (u.username !== '' || u.password !== '' || u.search !== '' || u.hash !== '') {
    throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: the netosecret's "url" must be a plain https://host[/path] without credentials, query or fragment`);
  }
  let path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith(FUSION_API_PREFIX)) path = path.slice(0, -FUSION_API_PREFIX.length);
  return `${u.origin}${path}`;
}

const REQUIRED_FIELDS = ['url', 'shortname', 'appname', 'sharedsecret', 'appkey'] as const;

/**
 * Decodes a netosecret. `setting` names where it came from (environment variable or config
 * key) for the error message.
 */
export function parseNetosecret(text: string, setting: string): FusionCredentials {
  const fail = (what: string): never => {
    throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: ${what}; ${FIX_HINT}`);
  };
  if (text.length > MAX_NETOSECRET_CHARS) fail(`too long to be a netosecret (more than ${MAX_NETOSECRET_CHARS} characters)`);
  const compact = text.replace(/\s+/g, '');
  if (compact === '') fail('is empty');
  // base64url → base64, then restore the padding the portal often leaves off.
  const std = compact.replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(std)) fail('is not base64 (it contains characters outside the base64 alphabet)');
  const unpadded = std.replace(/=+$/, '');
  if (unpadded.length % 4 === 1) fail('is not valid base64 (its length is impossible for base64)');
  const padded = unpadded + '='.repeat((4 - (unpadded.length % 4)) % 4);
  const json = Buffer.from(padded, 'base64').toString('utf8');
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    // JSON.parse's own message quotes the input: never pass it on.
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    return fail('does not decode to a JSON object (a netosecret is base64 of {url, shortname, appname, sharedsecret, appkey})');
  }
  const obj = parsed as Record<string, unknown>;
  const missing = REQUIRED_FIELDS.filter((k) => typeof obj[k] !== 'string' || obj[k] === '');
  if (missing.length > 0) fail(`is missing ${missing.map((k) => `"${k}"`).join(', ')} (each must be a non-empty string)`);
  return new FusionCredentials(
    {
      url: obj.url as string,
      shortname: obj.shortname as string,
      appname: obj.appname as string,
      sharedsecret: obj.sharedsecret as string,
      appkey: obj.appkey as string,
    },
    setting,
  );
}

/** Encodes credentials as a netosecret (unpadded base64, as the portal issues them). For the stand-in and tests. */
export function encodeNetosecret(fields: { url: string; shortname: string; appname: string; sharedsecret: string; appkey: string }): string {
  const json = JSON.stringify({ url: fields.url, shortname: fields.shortname, appname: fields.appname, sharedsecret: fields.sharedsecret, appkey: fields.appkey });
  return Buffer.from(json, 'utf8').toString('base64').replace(/=+$/, '');
}

export interface NetosecretSources {
  readonly env?: NodeJS.ProcessEnv;
  /** The netosecret given directly (config `drain.fusion.netosecret`). */
  readonly value?: string | undefined;
  /** A file holding the netosecret (config `drain.fusion.netosecret: {file}`). */
  readonly file?: string | undefined;
}

function readSecretFile(path: string, setting: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(ConfigErrorCode.Secret, setting, `${setting}: cannot read the netosecret file ${JSON.stringify(path)} (${code}); check the path and that sealflow may read it`);
  }
}

/**
 * Finds the netosecret: SEALFLOW_FUSION_NETOSECRET, then SEALFLOW_FUSION_NETOSECRET_FILE, then
 * the config value, then the config file. Setting more than one environment source is an error
 * (which one wins would be a surprise). Returns null when none is set.
 */
export function resolveNetosecret(sources: NetosecretSources): FusionCredentials | null {
  const env = sources.env ?? {};
  const direct = env[NETOSECRET_ENV];
  const file = env[NETOSECRET_FILE_ENV];
  if (direct !== undefined && direct !== '' && file !== undefined && file !== '') {
    throw new ConfigError(ConfigErrorCode.Secret, NETOSECRET_ENV, `both ${NETOSECRET_ENV} and ${NETOSECRET_FILE_ENV} are set; set only one`);
  }
  if (direct !== undefined && direct !== '') return parseNetosecret(direct, NETOSECRET_ENV);
  if (file !== undefined && file !== '') return parseNetosecret(readSecretFile(file, NETOSECRET_FILE_ENV), NETOSECRET_FILE_ENV);
  if (sources.value !== undefined && sources.value !== '') return parseNetosecret(sources.value, NETOSECRET_CONFIG_SETTING);
  if (sources.file !== undefined && sources.file !== '') {
    return parseNetosecret(readSecretFile(sources.file, NETOSECRET_FILE_CONFIG_SETTING), NETOSECRET_FILE_CONFIG_SETTING);
  }
  return null;
}

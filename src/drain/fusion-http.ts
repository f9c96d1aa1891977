import { readFileSync } from 'node:fs';
import { createHash, X509Certificate } from 'node:crypto';
import { checkServerIdentity, createSecureContext, rootCertificates, type PeerCertificate } from 'node:tls';
import { Agent, ProxyAgent, type Dispatcher } from 'undici';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';
import { DEFAULTS } from '../config/defaults.js';

/**
 * The HTTPS transport of the drain: one undici dispatcher (keep-alive pool per origin) with
 * connect/headers/body timeouts, TLS ≥ 1.2 against Node's CA roots plus an optional extra CA
 * bundle, optional SPKI SHA-256 pinning and an optional HTTPS proxy (CONNECT tunnel).
 * Certificate and host-name checks are never disabled: there is deliberately no
 * "insecure" switch.
 */

export interface FusionTlsSettings {
  /** PEM file with extra CA certificates, trusted in addition to Node's roots (setting drain.fusion.caFile). */
  readonly caFile: string | null;
  /** Extra CA certificates as PEM text (tests, embedded stand-in). */
  readonly caPem: string | null;
  /** Accepted SPKI pins: base64 SHA-256 of the server certificate's SubjectPublicKeyInfo (RFC 7469 §2.4 form). Empty = no pinning. */
  readonly pinSha256: readonly string[];
  /** http://host:port or https://host:port of an HTTPS (CONNECT) proxy; null = direct. */
  readonly proxyUrl: string | null;
  readonly connectTimeoutMs: number;
  /** Time allowed until the response headers arrive (covers the upload of the body on a slow link). */
  readonly headersTimeoutMs: number;
  /** Time allowed between body bytes of the response. */
  readonly bodyTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  /** Max sockets per origin. */
  readonly connections: number;
}

export const DEFAULT_TLS_SETTINGS: FusionTlsSettings = Object.freeze({
  caFile: null,
  caPem: null,
  pinSha256: [],
  proxyUrl: null,
  // The drain.fusion timeout settings' defaults.
  connectTimeoutMs: DEFAULTS.drain.fusion.connectTimeoutMs,
  headersTimeoutMs: DEFAULTS.drain.fusion.headersTimeoutMs,
  bodyTimeoutMs: DEFAULTS.drain.fusion.bodyTimeoutMs,
  keepAliveTimeoutMs: 30_000,
  connections: 8,
});

/** Error code put on the connect error when the server's key matches no pin. */
export const PIN_MISMATCH_CODE = 'ERR_SEALFLOW_TLS_PIN_MISMATCH';

const PIN_RE = /^[A-Za-z0-9+/]{43}=$/;

export function spkiSha256(certDer: Buffer): string {
  const der = new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' });
  return createHash('sha256').update(der).digest('base64');
}

function loadCa(s: FusionTlsSettings): string[] | undefined {
  const extra: string[] = [];
  if (s.caFile !== null) {
    let pem: string;
    try {
      pem = readFileSync(s.caFile, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new ConfigError(ConfigErrorCode.Certificate, 'drain.fusion.caFile', `drain.fusion.caFile: cannot read ${JSON.stringify(s.caFile)} (${code}); give a readable PEM CA bundle or remove the setting`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
      throw new ConfigError(ConfigErrorCode.Certificate, 'drain.fusion.caFile', `drain.fusion.caFile: ${JSON.stringify(s.caFile)} holds no PEM certificate (want -----BEGIN CERTIFICATE----- blocks)`);
    }
    extra.push(pem);
  }
  if (s.caPem !== null) extra.push(s.caPem);
  // Passing `ca` replaces Node's default roots, so they are added back explicitly.
  return extra.length === 0 ? undefined : [...rootCertificates, ...extra];
}

export function validateTlsSettings(s: FusionTlsSettings): void {
  for (const pin of s.pinSha256) {
    if (!PIN_RE.test(pin)) {
      throw new ConfigError(ConfigErrorCode.Certificate, 'drain.fusion.pinSha256', 'drain.fusion.pinSha256: each pin must be the base64 SHA-256 of a SubjectPublicKeyInfo (44 characters ending in "="); e.g. openssl x509 -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64');
    }
  }
  if (s.proxyUrl !== null) {
    let u: URL | null = null;
    try {
      u = new URL(s.proxyUrl);
    } catch {
      u = null;
    }
    if (u === null || (u.protocol !== 'http:' && u.protocol !== 'https:')) {
      throw new ConfigError(ConfigErrorCode.Invalid, 'drain.fusion.proxyUrl', 'drain.fusion.proxyUrl: want http://host:port or https://host:port of the HTTPS proxy');
    }
  }
  for (const k of ['connectTimeoutMs', 'headersTimeoutMs', 'bodyTimeoutMs', 'keepAliveTimeoutMs', 'connections'] as const) {
    const v = s[k];
    if (!Number.isInteger(v) || v <= 0) throw new ConfigError(ConfigErrorCode.Invalid, `drain.fusion.${k}`, `drain.fusion.${k}: want a positive integer`);
  }
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** Cap on the response body read into memory: Fusion answers are small JSON objects. */
const MAX_RESPONSE_BODY_BYTES = 64 * 1024;

export class FusionHttp {
  private dispatcher: Dispatcher;
  private closed = false;
  private destroyed = false;
  /** TLS handshakes refused because the server key matched no pin. */
  pinMismatches = 0;

  constructor(private settings: FusionTlsSettings) {
    validateTlsSettings(settings);
    this.dispatcher = this.createDispatcher();
  }

  /**
   * Reads drain.fusion.caFile (SIGHUP: `caFile` is the setting's current value, null when it is
   * no longer set) and sends new requests through a new connection pool that trusts it;
   * requests in flight finish on the old pool, which then closes. Throws the ConfigError naming
   * drain.fusion.caFile when the file is unusable (the previous CA stays in use).
   */
  reloadCa(caFile: string | null): void {
    if (this.closed || this.destroyed) return;
    const previous = this.settings;
    this.settings = { ...previous, caFile };
    let next: Dispatcher;
    try {
      next = this.createDispatcher();
    } catch (err) {
      this.settings = previous;
      throw err;
    }
    const old = this.dispatcher;
    this.dispatcher = next;
    void old.close().catch(() => undefined);
  }

  private createDispatcher(): Dispatcher {
    const settings = this.settings;
    const ca = loadCa(settings);
    const pins = new Set(settings.pinSha256);
    const tlsOptions = {
      minVersion: 'TLSv1.2' as const,
      rejectUnauthorized: true,
      // One context for every connection: given as `ca`, the ~140 roots plus the extra CA
      // would be parsed again for each TLS connection the pool opens.
      ...(ca === undefined ? {} : { secureContext: createSecureContext({ ca, minVersion: 'TLSv1.2' }) }),
      checkServerIdentity: (host: string, cert: PeerCertificate): Error | undefined => {
        const err = checkServerIdentity(host, cert);
        if (err !== undefined) return err;
        if (pins.size > 0 && !pins.has(spkiSha256(cert.raw))) {
          this.pinMismatches++;
          const e = new Error(`TLS certificate of ${host} matches none of drain.fusion.pinSha256`) as Error & { code: string };
          e.code = PIN_MISMATCH_CODE;
          return e;
        }
        return undefined;
      },
    };
    const common = {
      headersTimeout: settings.headersTimeoutMs,
      bodyTimeout: settings.bodyTimeoutMs,
      keepAliveTimeout: settings.keepAliveTimeoutMs,
      connections: settings.connections,
    };
    return settings.proxyUrl === null
      ? new Agent({ ...common, connect: { ...tlsOptions, timeout: settings.connectTimeoutMs } })
      : new ProxyAgent({ ...common, uri: settings.proxyUrl, requestTls: { ...tlsOptions, timeout: settings.connectTimeoutMs }, connect: { timeout: settings.connectTimeoutMs } });
  }

  async request(url: string, init: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: Buffer | string; signal?: AbortSignal }): Promise<HttpResponse> {
    const u = new URL(url);
    const res = await this.dispatcher.request({
      origin: u.origin,
      path: u.pathname + u.search,
      method: init.method,
      headers: init.headers,
      body: init.body ?? null,
      signal: init.signal ?? null,
    });
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of res.body) {
      const b = c as Buffer;
      if (size < MAX_RESPONSE_BODY_BYTES) chunks.push(b);
      size += b.length;
    }
    return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BODY_BYTES).toString('utf8') };
  }

  /** Graceful: lets in-flight requests finish. Idempotent. */
  async close(): Promise<void> {
    if (this.closed || this.destroyed) return;
    this.closed = true;
    await this.dispatcher.close();
  }

  /** Forced: aborts in-flight requests. Idempotent. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    await this.dispatcher.destroy();
  }
}

/** How a failed request failed, for retry decisions and bounded-label counters. */
export type TransportFailure = 'timeout' | 'tls' | 'pin' | 'refused' | 'reset' | 'network' | 'aborted';

const TLS_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_UNTRUSTED',
  'CERT_REJECTED', 'CERT_SIGNATURE_FAILURE', 'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'EPROTO',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', 'ERR_TLS_HANDSHAKE_TIMEOUT', 'INVALID_PURPOSE',
]);

/** Certificate-chain verification failures: the server's CA is not trusted. */
const UNTRUSTED_CODES = new Set(['DEPTH_ZERO_SELF_SIGNED_CERT', 'SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'CERT_UNTRUSTED', 'CERT_SIGNATURE_FAILURE']);

/**
 * What to change when a request to Fusion failed its TLS handshake, naming the setting: an
 * untrusted chain (a private CA or a TLS-inspecting proxy) needs drain.fusion.caFile.
 */
export function tlsFailureHint(err: unknown): string {
  for (const { code } of causeChain(err)) {
    if (code === undefined) continue;
    if (UNTRUSTED_CODES.has(code)) return `the server's certificate (${code}) is not signed by a trusted CA: put the CA that issued it (a private CA, or a TLS-inspecting proxy's) in the PEM file named by drain.fusion.caFile, then reload (SIGHUP)`;
    if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return `the server's certificate is outside its validity period (${code}): check this machine's clock`;
    if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return "the server's certificate does not name the host of drain.fusion.uploadUrl";
    if (code === PIN_MISMATCH_CODE) return 'update drain.fusion.pinSha256 if the server\'s key changed';
  }
  return 'check drain.fusion.caFile, drain.fusion.proxyUrl and the server\'s TLS settings';
}

/** The error and its `cause`s (undici wraps the socket error in `cause`), each once, with their string code and name. */
function* causeChain(err: unknown): Generator<{ readonly code: string | undefined; readonly name: unknown }> {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (typeof e === 'object' && e !== null && !seen.has(e)) {
    seen.add(e);
    const code = (e as { code?: unknown }).code;
    yield { code: typeof code === 'string' ? code : undefined, name: (e as { name?: unknown }).name };
    e = (e as { cause?: unknown }).cause;
  }
}

export function classifyTransportError(err: unknown): TransportFailure {
  for (const { code, name } of causeChain(err)) {
    if (code === PIN_MISMATCH_CODE) return 'pin';
    if (code !== undefined) {
      if (TLS_CODES.has(code) || code.startsWith('ERR_SSL_') || code.startsWith('ERR_TLS_')) return 'tls';
      if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'ETIMEDOUT') return 'timeout';
      if (code === 'ECONNREFUSED') return 'refused';
      if (code === 'ECONNRESET' || code === 'EPIPE' || code === 'UND_ERR_SOCKET' || code === 'UND_ERR_CLOSED') return 'reset';
      if (code === 'UND_ERR_ABORTED' || code === 'ABORT_ERR') return 'aborted';
    }
    if (name === 'AbortError') return 'aborted';
  }
  return 'network';
}

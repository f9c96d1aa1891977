import { DrainError, DrainErrorCode } from '../flow/errors.js';
import { equalJitterMs, type BackoffSettings } from './backoff.js';
import { classifyTransportError, tlsFailureHint, type FusionHttp } from './fusion-http.js';
import type { FusionCredentials } from './netosecret.js';
import { signRequestJwt } from './request-jwt.js';

/**
 * Bearer tokens for the Fusion API (docs/FUSION.md, "Getting a bearer token"): mint a
 * request JWT, POST it to {base}/api/v1/auth/token, keep the access token until
 * `renewFraction` of its `expires_in` has passed (or an upload answers 401), then mint a new
 * one. The refresh endpoint is not used, as FUSION.md advises.
 *
 * Failures back off (equal jitter, so there is always a minimum wait) and while backing off
 * `token()` fails fast without touching the network: a revoked key costs one auth request per
 * backoff period, never a loop. 401/403 from the auth endpoint are credential problems
 * (reason "rejected"), reported as ERR_DRAIN_CREDENTIALS.
 */

export type AuthFailureReason = 'rejected' | 'http' | 'bad-response' | 'timeout' | 'tls' | 'pin' | 'refused' | 'reset' | 'network' | 'aborted';

export interface AuthSettings {
  /** Renew after this fraction of expires_in (0 < f ≤ 1). */
  readonly renewFraction: number;
  /** Backoff after failed auth attempts. */
  readonly backoff: BackoffSettings;
  /** Used when the response lacks a usable expires_in. */
  readonly fallbackExpiresInSec: number;
}

export const DEFAULT_AUTH_SETTINGS: AuthSettings = Object.freeze({
  renewFraction: 0.8,
  // A rejected key is not going to heal in milliseconds: start at 10 s, cap at 30 min.
  backoff: Object.freeze({ baseMs: 10_000, capMs: 30 * 60_000 }),
  fallbackExpiresInSec: 300,
});

export interface AuthStats {
  tokensIssued: number;
  failures: Record<AuthFailureReason, number>;
  /** Requests for a token refused locally because auth is backing off. */
  shortCircuited: number;
  lastError: string | null;
}

interface Cached {
  readonly token: string;
  readonly renewAtMs: number;
}

export class FusionAuth {
  private cached: Cached | null = null;
  private pending: Promise<string> | null = null;
  private consecutiveFailures = 0;
  private blockedUntilMs = 0;
  private lastFailure: DrainError | null = null;
  readonly stats: AuthStats = {
    tokensIssued: 0,
    failures: { rejected: 0, http: 0, 'bad-response': 0, timeout: 0, tls: 0, pin: 0, refused: 0, reset: 0, network: 0, aborted: 0 },
    shortCircuited: 0,
    lastError: null,
  };

  constructor(
    private readonly credentials: FusionCredentials,
    private readonly http: FusionHttp,
    private readonly settings: AuthSettings,
    private readonly now: () => number,
    private readonly random: () => number,
  ) {}

  /** A valid bearer token; concurrent callers share one auth request. */
  token(signal?: AbortSignal): Promise<string> {
    const t = this.now();
    if (this.cached !== null && t < this.cached.renewAtMs) return Promise.resolve(this.cached.token);
    if (this.pending !== null) return this.pending;
    if (t < this.blockedUntilMs && this.lastFailure !== null) {
      this.stats.shortCircuited++;
      const f = this.lastFailure;
      return Promise.reject(new DrainError(f.code, f.message, true, { ...f.context, retryAfterMs: this.blockedUntilMs - t }));
    }
    this.pending = this.fetchToken(signal).finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  /** Forgets the failure backoff (the TLS trust was reloaded): the next token request goes out at once. */
  resetBackoff(): void {
    this.consecutiveFailures = 0;
    this.blockedUntilMs = 0;
  }

  /** Drops `token` (an upload got 401 with it) so the next call mints a new one. */
  invalidate(token: string): void {
    if (this.cached?.token === token) this.cached = null;
  }

  /** Milliseconds until auth may be tried again (0 when not backing off). */
  backoffRemainingMs(): number {
    return Math.max(0, this.blockedUntilMs - this.now());
  }

  private async fetchToken(signal?: AbortSignal): Promise<string> {
    const url = this.credentials.endpoint('/auth/token');
    const jwt = signRequestJwt(this.credentials, this.now());
    let status: number;
    let body: string;
    try {
      const init: Parameters<FusionHttp['request']>[1] = {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({ jwt }),
      };
      if (signal !== undefined) init.signal = signal;
      const res = await this.http.request(url, init);
      status = res.status;
      body = res.body;
    } catch (err) {
      const kind = classifyTransportError(err);
      const hint = kind === 'tls' || kind === 'pin' ? `; ${tlsFailureHint(err)}` : '';
      throw this.fail(kind, DrainErrorCode.Auth, `Fusion auth request to ${url} failed (${kind}): ${errorText(err)}${hint}`);
    }
    if (status === 401 || status === 403) {
      throw this.fail('rejected', DrainErrorCode.Credentials,
        `Fusion rejected the API key (HTTP ${status} from ${url}${serverMessage(body)}): the netosecret is wrong, revoked, or lacks the neto_flow role; issue a new key in the Fusion portal`);
    }
    if (status < 200 || status > 299) {
      throw this.fail('http', DrainErrorCode.Auth, `Fusion auth endpoint ${url} answered HTTP ${status}${serverMessage(body)}`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = null;
    }
    const obj = (typeof parsed === 'object' && parsed !== null ? parsed : {}) as Record<string, unknown>;
    const token = obj.access_token;
    if (typeof token !== 'string' || token === '') {
      throw this.fail('bad-response', DrainErrorCode.Auth, `Fusion auth endpoint ${url} answered 200 without an access_token`);
    }
    const exp = obj.expires_in;
    const expiresInSec = typeof exp === 'number' && Number.isFinite(exp) && exp > 0 ? exp : this.settings.fallbackExpiresInSec;
    this.cached = { token, renewAtMs: this.now() + expiresInSec * 1000 * this.settings.renewFraction };
    this.consecutiveFailures = 0;
    this.blockedUntilMs = 0;
    this.lastFailure = null;
    this.stats.tokensIssued++;
    return token;
  }

  private fail(reason: AuthFailureReason, code: DrainErrorCode, message: string): DrainError {
    this.stats.failures[reason]++;
    this.stats.lastError = message;
    const err = new DrainError(code, message, true, { reason });
    if (reason !== 'aborted') {
      this.consecutiveFailures++;
      this.blockedUntilMs = this.now() + equalJitterMs(this.consecutiveFailures, this.settings.backoff, this.random);
      this.lastFailure = err;
    }
    return err;
  }
}

/** The `message` of a Fusion error body ({status, name, message}), cut short; never the request. */
export function serverMessage(body: string): string {
  try {
    const o = JSON.parse(body) as { message?: unknown };
    if (typeof o.message === 'string' && o.message !== '') return `: ${o.message.slice(0, 200)}`;
  } catch {
    // not JSON: say nothing rather than echo arbitrary bytes
  }
  return '';
}

export function errorText(err: unknown): string {
  const e = err as { code?: unknown; message?: unknown };
  const msg = typeof e.message === 'string' ? e.message : String(err);
  return typeof e.code === 'string' ? `${e.code} ${msg}` : msg;
}

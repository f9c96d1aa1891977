import { parseRetryAfterMs } from './backoff.js';
import { errorText, serverMessage } from './fusion-auth.js';
import { classifyTransportError, tlsFailureHint, type FusionHttp } from './fusion-http.js';
import type { EncodedChunk } from './upload-encoder.js';

/**
 * One upload request and the policy for its answer (shared by the drain's own thread and its
 * upload workers). What each answer means:
 *   2xx                      delivered
 *   401                      'unauthorized': the caller drops the token, mints one, resends once
 *   403                      key lacks the neto_flow role: retry after the auth backoff (not parked)
 *   408, 429, 5xx            retry with backoff; Retry-After (seconds or HTTP-date) is honoured
 *   404, 405, 1xx/3xx        wrong drain.fusion.uploadUrl: retry with backoff (parking would empty
 *                            the spool into the parked set for a config error)
 *   other 4xx (400, 413, 422 …)  the batch itself is rejected: park it with the reason
 *   network / timeout / TLS  retry with backoff; TLS and pin failures are counted apart
 */

export const USER_AGENT = 'sealflow/0.1.0';
/** The response header an upload's request id is read from (kept in the audit trail's batch.delivered). */
export const REQUEST_ID_HEADER = 'x-request-id';

function headerText(v: string | string[] | undefined): string | null {
  const s = Array.isArray(v) ? v[0] : v;
  return s === undefined || s === '' ? null : s;
}

export type RetryReason = 'timeout' | 'tls' | 'pin' | 'refused' | 'reset' | 'network' | 'aborted' | 'http-5xx' | 'http-429' | 'http-408' | 'auth' | 'forbidden' | 'endpoint' | 'encode' | 'source' | 'worker';

export type ChunkResult =
  /** 2xx: the status and Fusion's request id (x-request-id), if it sent one, for the audit trail. */
  | { readonly kind: 'ok'; readonly status: number; readonly requestId: string | null }
  | { readonly kind: 'retry'; readonly reason: RetryReason; readonly message: string; readonly retryAfterMs: number | null }
  | { readonly kind: 'park'; readonly status: number; readonly message: string };

export type UploadAnswer = ChunkResult | { readonly kind: 'unauthorized'; readonly message: string };

export interface UploadTarget {
  readonly http: FusionHttp;
  readonly uploadUrl: string;
  /** Wait suggested after a 403 (the auth backoff base). */
  readonly forbiddenRetryAfterMs: number;
}

export async function uploadChunk(target: UploadTarget, chunk: EncodedChunk, key: string, token: string, nowMs: () => number, signal: AbortSignal): Promise<UploadAnswer> {
  const url = target.uploadUrl;
  let res;
  try {
    res = await target.http.request(url, {
      method: 'POST',
      headers: { ...chunk.headers, authorization: `Bearer ${token}`, 'idempotency-key': key, 'user-agent': USER_AGENT, accept: 'application/json' },
      body: chunk.body,
      signal,
    });
  } catch (err) {
    const kind = classifyTransportError(err);
    const hint = kind === 'tls' || kind === 'pin' ? `; ${tlsFailureHint(err)}` : '';
    return { kind: 'retry', reason: kind, message: `upload to ${url} failed (${kind}): ${errorText(err)}${hint}`, retryAfterMs: null };
  }
  const s = res.status;
  if (s >= 200 && s <= 299) return { kind: 'ok', status: s, requestId: headerText(res.headers[REQUEST_ID_HEADER]) };
  const msg = `upload to ${url} answered HTTP ${s}${serverMessage(res.body)}`;
  if (s === 401) return { kind: 'unauthorized', message: msg };
  if (s === 403) return { kind: 'retry', reason: 'forbidden', message: `${msg}: the API key lacks the neto_flow role`, retryAfterMs: target.forbiddenRetryAfterMs };
  const retryAfter = parseRetryAfterMs(res.headers['retry-after'], nowMs());
  if (s === 429) return { kind: 'retry', reason: 'http-429', message: msg, retryAfterMs: retryAfter };
  if (s === 408) return { kind: 'retry', reason: 'http-408', message: msg, retryAfterMs: retryAfter };
  if (s >= 500) return { kind: 'retry', reason: 'http-5xx', message: msg, retryAfterMs: retryAfter };
  if (s >= 400 && s <= 499 && s !== 404 && s !== 405) return { kind: 'park', status: s, message: msg };
  return { kind: 'retry', reason: 'endpoint', message: `${msg}; check drain.fusion.uploadUrl`, retryAfterMs: null };
}

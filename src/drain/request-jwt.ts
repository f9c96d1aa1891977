import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';

/**
 * The request JWT of Fusion's auth flow (docs/FUSION.md, "Getting a bearer token"):
 * RFC 7519 compact form, header {"alg":"HS256","typ":"JWT"}, payload
 * {iat, jti, appname, appkey, shortname} with `iat` in Unix seconds and a random `jti`, no
 * `exp`; signature HMAC-SHA256 (RFC 7518 §3.2) keyed by the netosecret's `sharedsecret`.
 * Built with node:crypto directly: the format is three base64url segments, nothing more.
 */

export interface RequestJwtClaims {
  readonly iat: number;
  readonly jti: string;
  readonly appname: string;
  readonly appkey: string;
  readonly shortname: string;
}

const HEADER_B64 = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

export function signRequestJwt(
  secrets: { readonly sharedsecret: string; readonly appname: string; readonly appkey: string; readonly shortname: string },
  nowMs: number,
  jti: string = randomUUID(),
): string {
  const claims: RequestJwtClaims = {
    iat: Math.floor(nowMs / 1000),
    jti,
    appname: secrets.appname,
    appkey: secrets.appkey,
    shortname: secrets.shortname,
  };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  const signingInput = `${HEADER_B64}.${payload}`;
  const sig = createHmac('sha256', secrets.sharedsecret).update(signingInput).digest('base64url');
  return `${signingInput}.${sig}`;
}

export type JwtVerifyResult =
  | { readonly ok: true; readonly header: Record<string, unknown>; readonly claims: Record<string, unknown> }
  | { readonly ok: false; readonly reason: string };

/** Verifies an HS256 compact JWT's signature (constant time) and decodes it. Claims are not checked here. */
export function verifyHs256Jwt(token: string, sharedsecret: string): JwtVerifyResult {
  const parts = token.split('.');
  if (parts.length !== 3) return { ok: false, reason: 'not a compact JWT (want three dot-separated parts)' };
  const [h, p, s] = parts as [string, string, string];
  let header: unknown;
  let claims: unknown;
  try {
    header = JSON.parse(Buffer.from(h, 'base64url').toString('utf8'));
    claims = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'header or payload is not base64url JSON' };
  }
  if (typeof header !== 'object' || header === null || typeof claims !== 'object' || claims === null) {
    return { ok: false, reason: 'header or payload is not a JSON object' };
  }
  const hdr = header as Record<string, unknown>;
  if (hdr.alg !== 'HS256') return { ok: false, reason: 'alg must be HS256' };
  const want = createHmac('sha256', sharedsecret).update(`${h}.${p}`).digest();
  const got = Buffer.from(s, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: 'bad signature' };
  return { ok: true, header: hdr, claims: claims as Record<string, unknown> };
}

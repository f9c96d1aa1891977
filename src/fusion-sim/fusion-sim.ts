/**
 * A local stand-in for Fusion's API (docs/FUSION.md), for tests, demos and the daemon's
 * embedded default. Development only: it holds everything in memory and trusts loopback.
 *
 * - POST /api/v1/auth/token {"jwt"}: verifies the HS256 request JWT against its netosecret
 *   (signature, alg, iat within ±`maxClockSkewSec`, jti not replayed, appname/appkey/shortname
 *   equal) and issues a random bearer token valid `tokenExpiresInSec`.
 * - POST {uploadPath} (default /api/v1/flows): bearer token required; Content-Encoding gzip,
 *   zstd (where this Node has it) or none; NDJSON (application/x-ndjson) or a JSON array
 *   (application/json); every record is validated against the flow record schema (400 with
 *   {status, name, message} on the first invalid one, nothing stored); deduplicated by
 *   Idempotency-Key (a repeat answers 200 with "duplicate": true and stores nothing).
 * - POST /api/v1/device: validates {name, ips, samplerate, tags?, site?}, 201.
 * - /_sim/ (loopback peers only): GET /_sim/stats, POST /_sim/fault {fault} | {"fault": null}.
 *
 * Faults (setFault, a schedule, or POST /_sim/fault): refuse connections (the listener closes
 * and open sockets are destroyed), a fixed HTTP status (e.g. 503, 429 with Retry-After), slow
 * responses, reset while the body is arriving (nothing processed), reset after the body was
 * processed (the response is lost: the classic duplicate case), expired tokens (401), and
 * rejecting auth (a revoked key). A fault may be limited to `count` requests (and a status
 * fault may let the first `after` requests through).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { isIP } from 'node:net';
import { z } from 'zod';
import { encodeNetosecret, parseNetosecret, type FusionCredentials } from '../drain/netosecret.js';
import { verifyHs256Jwt } from '../drain/request-jwt.js';
import { describeIssue, fusionFlowRecordSchema } from './flow-record-schema.js';
import { parseSimFault, type ScheduledFault, type SimFault } from './sim-faults.js';
import { BodyTooLarge, gunzip, isLoopback, readBody, send, sendError, zstdDecompressor } from './sim-http.js';

export { parseSimFault, type ScheduledFault, type SimFault } from './sim-faults.js';

export const DEFAULT_SIM_UPLOAD_PATH = '/api/v1/flows';
const AUTH_PATH = '/api/v1/auth/token';
const DEVICE_PATH = '/api/v1/device';

/** Upload bodies beyond this (compressed or not) are refused with 413. */
const DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024;
/** Remembered jti values (replay check) and idempotency keys; oldest forgotten beyond. */
const MAX_REMEMBERED = 1_000_000;
/** Upload log entries kept for inspection. */
const MAX_UPLOAD_LOG = 100_000;

export interface FusionSimOptions {
  readonly host?: string;
  /** 0 = any free port. */
  readonly port?: number;
  readonly certPem: string;
  readonly keyPem: string;
  /** The netosecret to accept; generated (random secrets, url = this server) when absent. */
  readonly netosecret?: string;
  readonly uploadPath?: string;
  readonly tokenExpiresInSec?: number;
  readonly maxClockSkewSec?: number;
  /** 'all' (default), 'sample' (every 64th record; for benchmarks) or 'none'. */
  readonly validate?: 'all' | 'sample' | 'none';
  /** Keep accepted records in `records` (default true), up to `maxKeptRecords`. */
  readonly keepRecords?: boolean;
  readonly maxKeptRecords?: number;
  readonly maxBodyBytes?: number;
  /** Called with each accepted record (e.g. to print it). */
  readonly onRecord?: (record: Record<string, unknown>) => void;
  readonly schedule?: readonly ScheduledFault[];
  readonly now?: () => number;
}

export interface UploadLogEntry {
  readonly atMs: number;
  readonly idempotencyKey: string | null;
  readonly status: number;
  readonly records: number;
  readonly duplicate: boolean;
  /** Index in `records` of this upload's first record (when kept). */
  readonly firstIndex: number;
}

export interface FusionSimStats {
  connections: number;
  authRequests: number;
  tokensIssued: number;
  authRejected: number;
  uploadRequests: number;
  uploadsAccepted: number;
  duplicates: number;
  recordsAccepted: number;
  recordsRejected: number;
  recordsDropped: number;
  badRequests: number;
  unauthorized: number;
  bytesReceived: number;
  faultsInjected: number;
  devicesRegistered: number;
}

export interface FusionSim {
  /** https://host:port */
  readonly url: string;
  readonly port: number;
  readonly uploadUrl: string;
  readonly netosecret: string;
  readonly credentials: FusionCredentials;
  readonly records: Record<string, unknown>[];
  readonly uploads: UploadLogEntry[];
  readonly devices: Record<string, unknown>[];
  readonly stats: FusionSimStats;
  /** Idempotency keys seen with a 2xx answer. */
  readonly acceptedKeys: ReadonlySet<string>;
  setFault(fault: SimFault | null): Promise<void>;
  readonly fault: SimFault | null;
  close(): Promise<void>;
}

type IngestResult =
  | { readonly ok: true; readonly records: number; readonly duplicate: boolean; readonly firstIndex: number }
  | { readonly ok: false; readonly status: number; readonly message: string };

class FusionSimServer implements FusionSim {
  url = '';
  port = 0;
  uploadUrl = '';
  netosecret = '';
  credentials!: FusionCredentials;
  readonly records: Record<string, unknown>[] = [];
  readonly uploads: UploadLogEntry[] = [];
  readonly devices: Record<string, unknown>[] = [];
  readonly stats: FusionSimStats = {
    connections: 0, authRequests: 0, tokensIssued: 0, authRejected: 0, uploadRequests: 0, uploadsAccepted: 0, duplicates: 0,
    recordsAccepted: 0, recordsRejected: 0, recordsDropped: 0, badRequests: 0, unauthorized: 0, bytesReceived: 0, faultsInjected: 0,
    devicesRegistered: 0,
  };
  readonly acceptedKeys = new Set<string>();
  fault: SimFault | null = null;
  private faultRemaining = Infinity;
  /** Matching requests still to let through before the fault applies (`after`). */
  private faultSkip = 0;
  private readonly tokens = new Map<string, number>();
  private readonly jtis = new Set<string>();
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;
  private readonly host: string;
  private listening = false;
  private closed = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly now: () => number;
  private readonly uploadPath: string;
  private readonly zstd = zstdDecompressor();

  constructor(private readonly options: FusionSimOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.now = options.now ?? Date.now;
    this.uploadPath = options.uploadPath ?? DEFAULT_SIM_UPLOAD_PATH;
    this.server = createServer({ cert: options.certPem, key: options.keyPem, minVersion: 'TLSv1.2' }, (req, res) => {
      this.route(req, res).catch(() => {
        if (!res.headersSent) sendError(res, 500, 'internal error');
        else res.destroy();
      });
    });
    this.server.keepAliveTimeout = 30_000;
    this.server.on('secureConnection', (s: Socket) => {
      this.stats.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    // Handshake failures (a client refusing our certificate) are expected in tests.
    this.server.on('tlsClientError', () => undefined);
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.server.once('error', onError);
      this.server.listen(port, this.host, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
    this.listening = true;
    const addr = this.server.address();
    if (addr === null || typeof addr === 'string') throw new Error('fusion-sim: no TCP address');
    this.port = addr.port;
    const hostPart = isIP(this.host) === 6 ? `[${this.host}]` : this.host;
    this.url = `https://${hostPart}:${this.port}`;
    this.uploadUrl = `${this.url}${this.uploadPath}`;
  }

  async start(): Promise<void> {
    await this.listen(this.options.port ?? 0);
    this.netosecret = this.options.netosecret ?? encodeNetosecret({
      url: `${this.url}/api/v1`,
      shortname: 'sim',
      appname: 'sealflow-dev',
      sharedsecret: randomBytes(32).toString('base64url'),
      appkey: randomBytes(16).toString('hex'),
    });
    this.credentials = parseNetosecret(this.netosecret, 'fusion-sim netosecret');
    for (const s of this.options.schedule ?? []) {
      this.timers.push(setTimeout(() => void this.setFault(s.fault), s.atMs));
    }
  }

  async setFault(fault: SimFault | null): Promise<void> {
    if (this.closed) return;
    this.fault = fault;
    this.faultRemaining = fault !== null && 'count' in fault ? fault.count : Infinity;
    this.faultSkip = fault?.kind === 'status' ? (fault.after ?? 0) : 0;
    if (fault?.kind === 'expire-tokens') {
      this.tokens.clear();
      this.fault = null;
      return;
    }
    const refuse = fault?.kind === 'refuse';
    if (refuse && this.listening) {
      this.listening = false;
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const s of this.sockets) s.destroy();
      await closed;
    } else if (!refuse && !this.listening) {
      await this.listen(this.port);
    }
  }

  /** Returns the active fault for a request of `scope` and consumes one use of it. */
  private takeFault(scope: 'upload' | 'auth'): SimFault | null {
    const f = this.fault;
    if (f === null || f.kind === 'refuse' || f.kind === 'expire-tokens') return null;
    const fScope = f.kind === 'status' || f.kind === 'slow' ? (f.scope ?? 'upload') : f.kind === 'reject-auth' ? 'auth' : 'upload';
    if (fScope !== 'all' && fScope !== scope) return null;
    if (this.faultSkip > 0) {
      this.faultSkip--;
      return null;
    }
    this.stats.faultsInjected++;
    if (--this.faultRemaining <= 0) {
      this.fault = null;
      this.faultRemaining = Infinity;
    }
    return f;
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path.startsWith('/_sim/')) return this.control(req, res, path);
    if (req.method !== 'POST') {
      req.resume();
      sendError(res, 405, 'method not allowed');
      return;
    }
    if (path === AUTH_PATH) return this.authToken(req, res);
    if (path === this.uploadPath) return this.upload(req, res);
    if (path === DEVICE_PATH) return this.device(req, res);
    req.resume();
    sendError(res, 404, `no route for ${path}`);
  }

  private async control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (!isLoopback(req.socket.remoteAddress)) {
      req.resume();
      sendError(res, 403, 'the /_sim/ control API answers loopback clients only');
      return;
    }
    if (path === '/_sim/stats' && req.method === 'GET') {
      send(res, 200, { ...this.stats, fault: this.fault, uniqueKeys: this.acceptedKeys.size });
      return;
    }
    if (path === '/_sim/fault' && req.method === 'POST') {
      const body = await readBody(req, 64 * 1024);
      let fault: SimFault | null;
      try {
        fault = parseSimFault((JSON.parse(body.toString('utf8')) as { fault?: unknown }).fault ?? null);
      } catch {
        sendError(res, 400, 'want {"fault": {...}} or {"fault": null}; kinds: refuse, status, slow, reset-mid-body, reset-after-body, expire-tokens, reject-auth');
        return;
      }
      send(res, 200, { fault });
      // After the answer, so a 'refuse' does not cut off its own response.
      res.on('finish', () => void this.setFault(fault));
      return;
    }
    req.resume();
    sendError(res, 404, 'unknown control route');
  }

  private async applyCommonFault(f: SimFault | null, res: ServerResponse): Promise<boolean> {
    if (f === null) return false;
    if (f.kind === 'slow') {
      await new Promise((r) => setTimeout(r, f.delayMs));
      return false;
    }
    if (f.kind === 'status') {
      sendError(res, f.status, `injected fault: HTTP ${f.status}`, f.retryAfter === undefined ? {} : { 'retry-after': f.retryAfter });
      return true;
    }
    return false;
  }

  private async authToken(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.authRequests++;
    const fault = this.takeFault('auth');
    const body = await readBody(req, 64 * 1024);
    if (await this.applyCommonFault(fault, res)) return;
    if (fault?.kind === 'reject-auth') {
      this.stats.authRejected++;
      sendError(res, fault.status ?? 401, 'invalid credentials');
      return;
    }
    let jwt: unknown;
    try {
      jwt = (JSON.parse(body.toString('utf8')) as { jwt?: unknown }).jwt;
    } catch {
      jwt = undefined;
    }
    if (typeof jwt !== 'string') {
      this.stats.badRequests++;
      sendError(res, 400, 'want {"jwt": "<request JWT>"}');
      return;
    }
    const reject = (message: string): void => {
      this.stats.authRejected++;
      sendError(res, 401, message);
    };
    const c = this.credentials;
    const v = verifyHs256Jwt(jwt, c.sharedsecret);
    if (!v.ok) return reject(`invalid jwt: ${v.reason}`);
    if (v.header.typ !== undefined && v.header.typ !== 'JWT') return reject('invalid jwt: typ must be JWT');
    const { iat, jti, appname, appkey, shortname } = v.claims;
    const skew = this.options.maxClockSkewSec ?? 300;
    if (typeof iat !== 'number' || !Number.isInteger(iat) || Math.abs(iat - this.now() / 1000) > skew) return reject('invalid jwt: iat missing or too far from now');
    if (typeof jti !== 'string' || jti === '') return reject('invalid jwt: jti missing');
    if (this.jtis.has(jti)) return reject('invalid jwt: jti replayed');
    if (appname !== c.appname || appkey !== c.appkey || shortname !== c.shortname) return reject('invalid jwt: unknown application');
    remember(this.jtis, jti);
    const token = randomBytes(24).toString('base64url');
    const expiresIn = this.options.tokenExpiresInSec ?? 3600;
    this.tokens.set(token, this.now() + expiresIn * 1000);
    this.stats.tokensIssued++;
    send(res, 200, {
      access_token: token,
      expires_in: expiresIn,
      refresh_token: randomBytes(24).toString('base64url'),
      refresh_expires_in: expiresIn * 2,
      token_type: 'bearer',
      scope: 'neto_flow',
    });
  }

  private checkBearer(req: IncomingMessage, res: ServerResponse): boolean {
    const h = req.headers.authorization ?? '';
    const m = /^Bearer (\S+)$/.exec(h);
    const exp = m?.[1] === undefined ? undefined : this.tokens.get(m[1]);
    if (exp === undefined || exp <= this.now()) {
      if (m?.[1] !== undefined && exp !== undefined) this.tokens.delete(m[1]);
      this.stats.unauthorized++;
      req.resume();
      sendError(res, 401, exp === undefined ? 'missing or unknown bearer token' : 'token expired');
      return false;
    }
    return true;
  }

  private async upload(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.uploadRequests++;
    if (!this.checkBearer(req, res)) return;
    const fault = this.takeFault('upload');
    if (fault?.kind === 'reset-mid-body') {
      // Wait for the first bytes of the body, then cut the connection: nothing is processed.
      await new Promise<void>((resolve) => {
        req.once('data', () => resolve());
        req.once('end', () => resolve());
      });
      req.socket.destroy();
      return;
    }
    const key = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : null;
    const log = (status: number, records: number, duplicate: boolean, firstIndex: number): void => {
      if (this.uploads.length >= MAX_UPLOAD_LOG) this.uploads.shift();
      this.uploads.push({ atMs: this.now(), idempotencyKey: key, status, records, duplicate, firstIndex });
    };
    const max = this.options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    let body: Buffer;
    try {
      body = await readBody(req, max);
    } catch (err) {
      if (err instanceof BodyTooLarge) {
        log(413, 0, false, -1);
        sendError(res, 413, `body larger than ${max} bytes`);
      } else {
        req.socket.destroy();
      }
      return;
    }
    this.stats.bytesReceived += body.length;
    if (await this.applyCommonFault(fault, res)) {
      log(res.statusCode, 0, false, -1);
      return;
    }
    const result = await this.ingest(req, body, key, max);
    if (result.ok) log(200, result.records, result.duplicate, result.firstIndex);
    else log(result.status, 0, false, -1);
    if (fault?.kind === 'reset-after-body') {
      // Processed and stored, but the answer never arrives: the client must retry with the
      // same key and be told it is a duplicate.
      req.socket.destroy();
      return;
    }
    if (result.ok) send(res, 200, { accepted: result.records, duplicate: result.duplicate });
    else sendError(res, result.status, result.message);
  }

  private async ingest(req: IncomingMessage, body: Buffer, key: string | null, max: number): Promise<IngestResult> {
    const bad = (status: number, message: string): IngestResult => {
      this.stats.badRequests++;
      return { ok: false, status, message };
    };
    const encoding = (req.headers['content-encoding'] ?? 'identity').toLowerCase();
    let raw: Buffer;
    try {
      if (encoding === 'gzip') raw = await gunzip(body, { maxOutputLength: max });
      else if (encoding === 'zstd' && this.zstd !== null) raw = await this.zstd(body, max);
      else if (encoding === 'identity' || encoding === 'none') raw = body;
      else return bad(415, `unsupported content-encoding ${JSON.stringify(encoding)}`);
    } catch {
      return bad(400, `body is not valid ${encoding}`);
    }
    const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
    const mode = this.options.validate ?? 'all';
    if (mode === 'none' && this.options.keepRecords === false && this.options.onRecord === undefined && type === 'application/x-ndjson') {
      // Load-test fast path: count the lines, parse nothing.
      let n = 0;
      for (let i = raw.indexOf(0x0a); i !== -1; i = raw.indexOf(0x0a, i + 1)) n++;
      if (n === 0) return bad(400, 'no records');
      return this.accept(key, n, null);
    }
    let items: unknown[];
    try {
      if (type === 'application/x-ndjson' || type === 'application/ndjson') {
        items = raw.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as unknown);
      } else if (type === 'application/json') {
        const parsed = JSON.parse(raw.toString('utf8')) as unknown;
        if (!Array.isArray(parsed)) return bad(400, 'a JSON body must be an array of flow records');
        items = parsed;
      } else {
        return bad(415, 'want content-type application/x-ndjson or application/json');
      }
    } catch {
      return bad(400, 'body is not valid JSON / NDJSON');
    }
    if (items.length === 0) return bad(400, 'no records');
    if (mode !== 'none') {
      const step = mode === 'sample' ? 64 : 1;
      for (let i = 0; i < items.length; i += step) {
        const r = fusionFlowRecordSchema.safeParse(items[i]);
        if (!r.success) {
          this.stats.recordsRejected += items.length;
          return bad(400, `record ${i}: ${describeIssue(r.error)}`);
        }
      }
    }
    return this.accept(key, items.length, items);
  }

  /** Dedup by key, count, keep/print. `items` null: counted only (load-test fast path). */
  private accept(key: string | null, count: number, items: unknown[] | null): IngestResult {
    if (key !== null && this.acceptedKeys.has(key)) {
      this.stats.duplicates++;
      return { ok: true, records: count, duplicate: true, firstIndex: -1 };
    }
    if (key !== null) remember(this.acceptedKeys, key);
    this.stats.uploadsAccepted++;
    this.stats.recordsAccepted += count;
    const firstIndex = this.records.length;
    if (items === null) {
      this.stats.recordsDropped += count;
      return { ok: true, records: count, duplicate: false, firstIndex };
    }
    const keep = this.options.keepRecords ?? true;
    const maxKept = this.options.maxKeptRecords ?? 5_000_000;
    for (const item of items) {
      const rec = item as Record<string, unknown>;
      if (keep && this.records.length < maxKept) this.records.push(rec);
      else this.stats.recordsDropped++;
      this.options.onRecord?.(rec);
    }
    return { ok: true, records: count, duplicate: false, firstIndex };
  }

  private async device(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.checkBearer(req, res)) return;
    const body = await readBody(req, 64 * 1024);
    const schema = z.strictObject({
      name: z.string().min(1),
      ips: z.array(z.string().regex(/^[0-9a-fA-F:.]+\/\d{1,3}$/)).min(1),
      samplerate: z.int().min(1).max(65535),
      tags: z.array(z.string()).optional(),
      site: z.string().optional(),
      payload: z.unknown().optional(),
    });
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      parsed = undefined;
    }
    const r = schema.safeParse(parsed);
    if (!r.success) {
      this.stats.badRequests++;
      sendError(res, 400, describeIssue(r.error));
      return;
    }
    this.devices.push(r.data);
    this.stats.devicesRegistered++;
    send(res, 201, { ...r.data, id: this.devices.length });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    if (this.listening) {
      this.listening = false;
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      for (const s of this.sockets) s.destroy();
      await closed;
    }
  }
}

function remember(set: Set<string>, v: string): void {
  if (set.size >= MAX_REMEMBERED) {
    const first = set.values().next();
    if (first.done !== true) set.delete(first.value);
  }
  set.add(v);
}

export async function startFusionSim(options: FusionSimOptions): Promise<FusionSim> {
  const sim = new FusionSimServer(options);
  await sim.start();
  return sim;
}

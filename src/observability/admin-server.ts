import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { STATUS_PAGE_CSP } from './status-page.js';
import { DEFAULT_RATE_LIMIT, RateLimitedLog } from './rate-limited-log.js';
import { DEFAULTS } from '../config/defaults.js';
import { bindErrorMessage, endpointText } from '../flow/bind-error.js';
import { ConfigError, ConfigErrorCode } from '../flow/errors.js';

/**
 * The admin HTTP endpoint (node:http, loopback by default):
 *   GET /         the status page (HTML, see status-page.ts), when statusPage is given
 *   GET /healthz  200 while the process can answer at all (liveness)
 *   GET /readyz   200 when readiness() reports ready (listeners bound, spool open, drain ok),
 *                 else 503 with {"ready":false,"reasons":[...]}
 *   GET /stats    JSON of stats() (exporters, listeners, spool, drain, auth failures)
 *   GET /metrics  Prometheus text format from the Metrics registry
 * With a token configured every request must carry `Authorization: Bearer <token>`, or the
 * token as the password of HTTP Basic authentication (any user name): a browser cannot send a
 * bearer token, so `/` asks for Basic credentials and the page stays behind the same secret.
 * The comparison is constant-time over SHA-256 digests (so neither content nor length leaks
 * through timing) and the token is never logged. Only GET/HEAD are served; request bodies are
 * not read. Limits (headers timeout, connection cap) keep a stray scanner from holding it.
 */

export interface Readiness {
  readonly ready: boolean;
  /** Why not ready (empty when ready), e.g. "listener udp-4739 not bound". */
  readonly reasons: readonly string[];
}

export interface AdminServerOptions {
  /** Bind address. Default 127.0.0.1. */
  readonly address?: string;
  /** TCP port; 0 picks a free one (tests). */
  readonly port: number;
  /** Required bearer token (already resolved from its secret source); undefined = no authentication. */
  readonly token?: Buffer | undefined;
  readonly metrics: Metrics;
  readonly stats: () => unknown;
  /** The status page's HTML; without it `/` answers 404. */
  readonly statusPage?: () => string;
  readonly readiness: () => Readiness | Promise<Readiness>;
  readonly logger: Logger;
}

/** A scrape or a curl needs a handful of connections; more is a scanner or a leak. */
const MAX_CONNECTIONS = 32;
/** Requests are tiny GETs: a client slower than this to send headers is dropped (slow-loris). */
const HEADERS_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** Idle keep-alive connections are closed quickly: scrapers reconnect cheaply. */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;

/** JSON with bigint counters as numbers while exact, else decimal strings (like the Fusion encoding). */
export function statsJson(value: unknown): string {
  return JSON.stringify(
    value,
    (_key, v: unknown) => {
      if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v.toString();
      if (v instanceof Map) return Object.fromEntries(v as Map<PropertyKey, unknown>) as Record<string, unknown>;
      if (v instanceof Set) return Array.from(v as Set<unknown>);
      return v;
    },
    2,
  );
}

function digest(b: Buffer): Buffer {
  return createHash('sha256').update(b).digest();
}

export class AdminServer {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly tokenDigest: Buffer | null;
  private closing: Promise<void> | null = null;
  private listening = false;
  private readonly rejectedLog: RateLimitedLog;

  constructor(private readonly options: AdminServerOptions) {
    this.tokenDigest = options.token === undefined ? null : digest(options.token);
    this.rejectedLog = new RateLimitedLog(options.logger, DEFAULT_RATE_LIMIT);
    this.server = createServer({ headersTimeout: HEADERS_TIMEOUT_MS, requestTimeout: REQUEST_TIMEOUT_MS, keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS }, (req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.options.logger.error({ err, path: pathOf(req) }, 'admin request failed');
        if (!res.headersSent) send(res, 500, 'text/plain; charset=utf-8', 'internal error\n');
        else res.destroy();
      });
    });
    this.server.maxConnections = MAX_CONNECTIONS;
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Binds and starts serving. Rejects with ConfigError ERR_CONFIG_BIND (naming admin.port) when the address/port is unusable. */
  start(): Promise<{ address: string; port: number }> {
    const host = this.options.address ?? DEFAULTS.admin.address;
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(new ConfigError(ConfigErrorCode.Bind, 'admin.port', `admin: ${bindErrorMessage(err, endpointText('TCP', host, this.options.port), 'admin')}`, {}, { cause: err }));
      };
      this.server.once('error', onError);
      this.server.listen({ host, port: this.options.port, exclusive: true }, () => {
        this.server.off('error', onError);
        this.listening = true;
        const a = this.server.address() as AddressInfo;
        this.options.logger.info({ address: a.address, port: a.port, auth: this.tokenDigest !== null }, 'admin endpoint listening');
        resolve({ address: a.address, port: a.port });
      });
    });
  }

  /** Stops accepting, ends idle connections, waits for in-flight requests. Idempotent. */
  close(): Promise<void> {
    this.rejectedLog.flush();
    this.closing ??= new Promise<void>((resolve) => {
      if (!this.listening) {
        resolve();
        return;
      }
      this.server.close(() => {
        resolve();
      });
      this.server.closeIdleConnections();
      // A scrape in flight finishes within REQUEST_TIMEOUT_MS; sockets that linger after that are cut.
      const timer = setTimeout(() => {
        for (const s of this.sockets) s.destroy();
      }, REQUEST_TIMEOUT_MS);
      timer.unref();
    });
    return this.closing;
  }

  private authorized(req: IncomingMessage): boolean {
    if (this.tokenDigest === null) return true;
    const header = req.headers.authorization;
    if (typeof header !== 'string') return false;
    const bearer = /^Bearer[ ]+(\S+)\s*$/i.exec(header)?.[1];
    if (bearer !== undefined) return timingSafeEqual(digest(Buffer.from(bearer, 'utf8')), this.tokenDigest);
    const basic = /^Basic[ ]+([A-Za-z0-9+/]+={0,2})\s*$/i.exec(header)?.[1];
    if (basic === undefined) return false;
    const userPass = Buffer.from(basic, 'base64').toString('utf8');
    const colon = userPass.indexOf(':');
    return colon >= 0 && timingSafeEqual(digest(Buffer.from(userPass.slice(colon + 1), 'utf8')), this.tokenDigest);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, 405, 'text/plain; charset=utf-8', 'method not allowed\n');
      return;
    }
    if (!this.authorized(req)) {
      // The header value is deliberately not logged: a wrong token may be a near-miss of the right one.
      const remoteAddress = req.socket.remoteAddress ?? 'unknown';
      this.rejectedLog.log('warn', remoteAddress, { path, remoteAddress, hadCredentials: req.headers.authorization !== undefined }, 'admin request rejected: missing or wrong bearer token');
      // Browsers ask for a password only on a Basic challenge: the page gets one, the API the bearer scheme.
      res.setHeader('WWW-Authenticate', path === '/' && this.options.statusPage !== undefined ? 'Basic realm="sealflow", charset="UTF-8"' : 'Bearer realm="sealflow"');
      send(res, 401, 'text/plain; charset=utf-8', 'unauthorized\n');
      return;
    }
    switch (path) {
      case '/':
        if (this.options.statusPage === undefined) break;
        res.setHeader('Content-Security-Policy', STATUS_PAGE_CSP);
        res.setHeader('X-Content-Type-Options', 'nosniff');
        res.setHeader('Referrer-Policy', 'no-referrer');
        send(res, 200, 'text/html; charset=utf-8', this.options.statusPage());
        return;
      case '/healthz':
        send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
        return;
      case '/readyz': {
        let r: Readiness;
        try {
          r = await this.options.readiness();
        } catch (err) {
          r = { ready: false, reasons: [`readiness check failed: ${err instanceof Error ? err.message : String(err)}`] };
        }
        send(res, r.ready ? 200 : 503, 'application/json', statsJson({ ready: r.ready, reasons: r.reasons }) + '\n');
        return;
      }
      case '/stats':
        send(res, 200, 'application/json', statsJson(this.options.stats()) + '\n');
        return;
      case '/metrics':
        send(res, 200, this.options.metrics.contentType, await this.options.metrics.render());
        return;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found: try /, /healthz, /readyz, /stats, /metrics\n');
  }
}

function pathOf(req: IncomingMessage): string {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  return q >= 0 ? url.slice(0, q) : url;
}

function send(res: ServerResponse, status: number, contentType: string, body: string): void {
  res.writeHead(status, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), 'Cache-Control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

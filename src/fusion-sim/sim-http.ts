import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import * as zlib from 'node:zlib';
import { promisify } from 'node:util';

/** The stand-in's HTTP plumbing: request bodies (bounded), decompression, JSON answers in Fusion's error shape, the loopback check of /_sim/. */

export const gunzip = promisify(zlib.gunzip) as (b: Buffer, o: zlib.ZlibOptions) => Promise<Buffer>;

export function zstdDecompressor(): ((b: Buffer, max: number) => Promise<Buffer>) | null {
  const fn = (zlib as unknown as Record<string, unknown>).zstdDecompress;
  if (typeof fn !== 'function') return null;
  const p = promisify(fn as (b: Buffer, o: object, cb: (e: Error | null, r: Buffer) => void) => void);
  return (b, max) => p(b, { maxOutputLength: max });
}

export function isLoopback(addr: string | undefined): boolean {
  if (addr === undefined) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.writableEnded || res.destroyed) return;
  const text = JSON.stringify(body);
  // Every answer carries a request id, as API gateways do: the drain keeps a delivery's in the audit trail.
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'x-request-id': `sim-${randomUUID()}`, ...headers });
  res.end(text);
}

const STATUS_NAMES: Record<number, string> = {
  400: 'BadRequest', 401: 'Unauthorized', 403: 'Forbidden', 404: 'NotFound', 405: 'MethodNotAllowed', 413: 'PayloadTooLarge',
  415: 'UnsupportedMediaType', 422: 'UnprocessableEntity', 429: 'TooManyRequests', 500: 'InternalServerError', 503: 'ServiceUnavailable',
};

export function sendError(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}): void {
  send(res, status, { status, name: STATUS_NAMES[status] ?? 'Error', message }, headers);
}

export class BodyTooLarge extends Error {}

export function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > max) {
        reject(new BodyTooLarge());
        req.removeAllListeners('data');
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
    req.on('aborted', () => reject(new Error('aborted')));
  });
}

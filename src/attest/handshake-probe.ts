import { execFile } from 'node:child_process';
import { connect } from 'node:tls';

/**
 * Live checks of the transport floors: a client offering only versions below the floor — TLS
 * 1.0/1.1 to the TLS listener, DTLS 1.0 to the DTLS listener — must be refused with a
 * protocol_version alert (alert 70: RFC 5246 §7.2.2, RFC 8446 §6.2) before the server sends
 * its certificate. A server that answers the old version instead (its certificate, or a later
 * alert such as handshake_failure for the missing client certificate) accepted it.
 *
 * The client side needs the old versions enabled: OpenSSL's security level 0
 * (`DEFAULT:@SECLEVEL=0`). Node's TLS client does TLS; DTLS needs `openssl s_client` (Node has
 * no DTLS client): without it the DTLS check is inconclusive, never passed.
 */

export type ProbeResult = 'refused' | 'accepted' | 'unreachable' | 'inconclusive';

export interface ProbeOutcome {
  readonly result: ProbeResult;
  readonly detail: string;
}

/** Long enough for a loaded host; a handshake on loopback takes milliseconds. */
const PROBE_TIMEOUT_MS = 5_000;
const OLD_CIPHERS = 'DEFAULT:@SECLEVEL=0';

/** Where to reach a listener bound to `address` from this host (a wildcard bind answers on loopback). */
export function probeHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::' || address === '[::]') return '::1';
  return address;
}

/** OpenSSL error codes Node reports when the server refused the offered version. */
const REFUSED_CODES = new Set(['ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_UNSUPPORTED_PROTOCOL', 'ERR_SSL_WRONG_VERSION_NUMBER']);
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);
/** The client could not offer the old versions, or the connection broke before any answer. */
const INCONCLUSIVE_CODES = new Set(['ERR_SSL_NO_PROTOCOLS_AVAILABLE', 'ECONNRESET', 'EPIPE']);

/** Offers only TLS 1.0 and 1.1 to host:port (no client certificate). */
export function probeOldTls(host: string, port: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeOutcome> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: ProbeOutcome): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve(o);
    };
    const socket = connect({ host, port, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: OLD_CIPHERS, rejectUnauthorized: false, servername: host.includes(':') ? '' : host });
    socket.setTimeout(timeoutMs, () => finish({ result: 'unreachable', detail: `no answer from ${host}:${port} within ${timeoutMs} ms` }));
    socket.on('secureConnect', () => finish({ result: 'accepted', detail: `a ${socket.getProtocol() ?? 'TLS < 1.2'} handshake completed` }));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? 'unknown';
      if (REFUSED_CODES.has(code)) finish({ result: 'refused', detail: `TLS 1.0/1.1 refused (${code})` });
      else if (UNREACHABLE_CODES.has(code)) finish({ result: 'unreachable', detail: `${host}:${port}: ${code}` });
      else if (INCONCLUSIVE_CODES.has(code)) finish({ result: 'inconclusive', detail: `${host}:${port}: ${code}` });
      else finish({ result: 'accepted', detail: `the server went on with TLS < 1.2 and failed later (${code})` });
    });
  });
}

/** Offers only DTLS 1.0 to host:port with `openssl s_client` (no client certificate). */
export function probeOldDtls(host: string, port: number, timeoutMs = PROBE_TIMEOUT_MS): Promise<ProbeOutcome> {
  const target = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new Promise((resolve) => {
    const child = execFile('openssl', ['s_client', '-dtls1', '-connect', target, '-cipher', OLD_CIPHERS], { timeout: timeoutMs, maxBuffer: 1024 * 1024 }, (err, stdout, stderr) => {
      const out = `${stdout}\n${stderr}`;
      if ((err as NodeJS.ErrnoException | null)?.code === 'ENOENT') resolve({ result: 'inconclusive', detail: 'openssl not installed: DTLS versions not probed' });
      else if (/alert protocol version|unsupported protocol|wrong version number/i.test(out)) resolve({ result: 'refused', detail: 'DTLS 1.0 refused (protocol_version alert)' });
      else if (/errno=111|connection refused/i.test(out)) resolve({ result: 'unreachable', detail: `${target}: connection refused (ICMP port unreachable)` });
      else if (/no protocols available|unknown option/i.test(out)) resolve({ result: 'inconclusive', detail: 'this openssl cannot offer DTLS 1.0' });
      else if (/verify error|Server certificate|Certificate chain|alert handshake failure|SSL handshake has read [1-9]/i.test(out)) resolve({ result: 'accepted', detail: 'the server answered a DTLS 1.0 handshake' });
      else resolve({ result: 'unreachable', detail: `no DTLS answer from ${target} within ${timeoutMs} ms` });
    });
    child.stdin?.end();
  });
}

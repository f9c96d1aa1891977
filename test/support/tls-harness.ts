/**
 * Helpers for TLS ingest tests on loopback: a PacketSink that records sessions and can apply
 * backpressure, real clients (openssl s_client, socat, node:tls) and a listener factory over
 * the throwaway test PKI.
 */
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { ExporterPacket } from '../../src/flow/exporter-packet.js';
import type { PacketSink } from '../../src/flow/pipeline.js';
import { TlsListener, type TlsListenerLimits, type TlsListenerOptions } from '../../src/ingest/tls/tls-listener.js';
import type { ExporterIdentitySettings } from '../../src/ingest/trust/exporter-policy.js';
import type { TestCertificate, TestPki } from './test-pki.js';
import { testLogger, type LogLine } from './udp-harness.js';

/** Records packets and ended sessions; `accepting = false` makes submit() report backpressure. */
export class SessionSink implements PacketSink {
  readonly packets: ExporterPacket[] = [];
  readonly ended: string[] = [];
  accepting = true;
  private drainListeners: (() => void)[] = [];
  submit(p: ExporterPacket): boolean {
    this.packets.push(p);
    return this.accepting;
  }
  endSession(sessionKey: string): void {
    this.ended.push(sessionKey);
  }
  onDrain(listener: () => void): void {
    this.drainListeners.push(listener);
  }
  /** Back below the low-water mark: tell the listeners. */
  drain(): void {
    this.accepting = true;
    for (const l of this.drainListeners) l();
  }
}

export interface Harness {
  readonly listener: TlsListener;
  readonly sink: SessionSink;
  readonly lines: LogLine[];
  readonly port: number;
  close(): Promise<void>;
}

/** The allowlist the tests use: exporter1 bound to 127.0.0.1 and ODIDs 42 (OpenBSD pflow) and 1..4. */
export function testExporters(): ExporterIdentitySettings[] {
  return [
    { name: 'exporter1.test', sources: ['127.0.0.1/32', '::1'], observationDomainIds: [42, 1, 2, 3, 4] },
    { name: 'exporter2.test' },
    { name: 'exporter3.test' },
    { name: 'revoked.test' },
    { name: 'expired.test' },
    { name: 'future.test' },
    { name: 'cnonly.test' },
    { name: 'serveronly.test' },
  ];
}

export async function startListener(
  pki: TestPki,
  o: { limits?: Partial<TlsListenerLimits>; exporters?: ExporterIdentitySettings[]; crlFiles?: readonly string[]; watchFiles?: boolean; now?: () => number; host?: string } = {},
): Promise<Harness> {
  const { logger, lines } = testLogger();
  const sink = new SessionSink();
  const options: TlsListenerOptions = {
    host: o.host ?? '127.0.0.1',
    port: 0,
    trust: {
      caFile: pki.caFile,
      crlFiles: o.crlFiles ?? pki.crlFiles,
      certFile: pki.collector.certFile,
      keyFile: pki.collector.keyFile,
      exporters: o.exporters ?? testExporters(),
    },
    watchFiles: o.watchFiles ?? false,
    ...(o.limits === undefined ? {} : { limits: o.limits }),
  };
  const listener = new TlsListener(options, { sink, logger, ...(o.now === undefined ? {} : { now: o.now }) });
  await listener.start();
  return { listener, sink, lines, port: listener.address().port, close: () => listener.close() };
}

export function haveTool(name: string): boolean {
  const r = spawnSync(name, name === 'socat' ? ['-V'] : ['version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

export interface ClientResult {
  readonly code: number | null;
  readonly stderr: string;
}

/**
 * Runs `openssl s_client` against 127.0.0.1:port with `extra` args, writes `payload` after the
 * connection is up and closes stdin (so s_client sends close_notify and exits). Resolves when
 * the process exits (bounded by `timeoutMs`, then killed).
 */
export function sClient(port: number, pki: TestPki, cert: TestCertificate | null, payload: Buffer, extra: readonly string[] = [], timeoutMs = 5000): Promise<ClientResult> {
  const args = [
    's_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', pki.caFile, '-verify_return_error',
    '-quiet', '-no_ign_eof', '-nocommands',
    ...(cert === null ? [] : ['-cert', cert.certFile, '-key', cert.keyFile]),
    ...extra,
  ];
  return runClient('openssl', args, payload, timeoutMs);
}

/** `socat -u STDIN OPENSSL:127.0.0.1:port,...` with a client certificate. */
export function socatClient(port: number, pki: TestPki, cert: TestCertificate, payload: Buffer, timeoutMs = 5000): Promise<ClientResult> {
  const address = `OPENSSL:127.0.0.1:${port},cert=${cert.certFile},key=${cert.keyFile},cafile=${pki.caFile},commonname=localhost,verify=1`;
  return runClient('socat', ['-u', 'STDIN', address], payload, timeoutMs);
}

function runClient(cmd: string, args: readonly string[], payload: Buffer, timeoutMs: number): Promise<ClientResult> {
  return new Promise((resolve) => {
    const child = spawn(cmd, [...args], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdin.on('error', () => {
      // The server may close before we finish writing (a rejected client).
    });
    child.stdin.end(payload);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

/**
 * A node:tls client (needed where s_client cannot: binding the local address, presenting a
 * chain). Resolves with the socket once the handshake is done, or rejects with its error.
 */
export function nodeClient(port: number, pki: TestPki, cert: TestCertificate | null, o: { localAddress?: string; chain?: boolean; host?: string } = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({
      host: o.host ?? '127.0.0.1',
      port,
      servername: 'localhost',
      ca: readFileSync(pki.caFile),
      ...(cert === null ? {} : { cert: readFileSync(o.chain === true ? cert.chainFile : cert.certFile), key: readFileSync(cert.keyFile) }),
      ...(o.localAddress === undefined ? {} : { localAddress: o.localAddress }),
    });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** Sends `payload` on a connected node:tls socket and waits until it is flushed to the kernel. */
export function write(s: tls.TLSSocket, payload: Buffer): Promise<void> {
  return new Promise((resolve, reject) => s.write(payload, (err) => (err ? reject(err) : resolve())));
}

/** Resolves when the socket is closed (by either side), or after `timeoutMs` with false. */
export function closed(s: net.Socket, timeoutMs = 5000): Promise<boolean> {
  if (s.destroyed && s.closed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    s.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    s.on('error', () => {
      // Expected when the server resets a rejected client.
    });
  });
}

/** A plain TCP connection to the port (no TLS). */
export function tcpConnect(port: number, localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', ...(localAddress === undefined ? {} : { localAddress }) }, () => resolve(s));
    s.once('error', reject);
  });
}

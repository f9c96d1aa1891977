/**
 * Runs the real daemon (`sealflow run`) as a child process for end-to-end tests, waits until
 * its admin endpoint says it is ready, and stops it with a signal, returning the exit code.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { repoRoot } from './softflowd.js';

export interface RunningProbe {
  readonly child: ChildProcess;
  readonly adminUrl: string;
  /** Everything the probe wrote to stdout and stderr so far. */
  output(): string;
  /** GET a JSON document from the admin endpoint. */
  getJson(path: string): Promise<unknown>;
  /** How the process ended, or null while it runs. */
  exitStatus(): { readonly code: number | null; readonly signal: NodeJS.Signals | null } | null;
  /** Sends `signal` and resolves with the exit code (null when killed by a signal). */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

/** A free UDP port on 127.0.0.1 (bound and released; fine for tests on loopback). */
export async function freeUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const port = s.address().port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

export async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const addr = srv.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    const st = statSync(p);
    newest = Math.max(newest, st.isDirectory() ? newestMtime(p) : st.mtimeMs);
  }
  return newest;
}

/** The compiled CLI (bin/sealflow.js) runs dist/: build it when it is missing or older than the sources. */
export function ensureBuilt(): void {
  const main = path.join(repoRoot, 'dist/main.js');
  if (existsSync(main) && statSync(main).mtimeMs >= newestMtime(path.join(repoRoot, 'src'))) return;
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: repoRoot, stdio: 'inherit' });
  assert.equal(r.status, 0, 'build (tsc -p tsconfig.build.json)');
}

export interface StartProbeOptions {
  readonly args: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  readonly adminPort: number;
  /** Run the compiled CLI (bin/sealflow.js → dist) instead of the sources under tsx. */
  readonly compiled?: boolean;
  readonly readyTimeoutMs?: number;
  /** Working directory of the probe (default: the checkout), e.g. where `npm start` runs. */
  readonly cwd?: string;
  /** Starts this command instead of node with `args` (e.g. a sandbox launcher); `env` is then its whole environment. */
  readonly command?: { readonly file: string; readonly args: readonly string[]; readonly env: NodeJS.ProcessEnv; readonly cwd?: string };
}

export async function startProbe(o: StartProbeOptions): Promise<RunningProbe> {
  const argv = o.compiled === true ? [path.join(repoRoot, 'bin/sealflow.js'), 'run', ...o.args] : ['--import', 'tsx', path.join(repoRoot, 'src/main.ts'), 'run', ...o.args];
  const child =
    o.command === undefined
      ? spawn(process.execPath, argv, { cwd: o.cwd ?? repoRoot, env: { ...process.env, ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(o.command.file, o.command.args, { cwd: o.command.cwd ?? '/', env: o.command.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (out += b.toString()));
  const adminUrl = `http://127.0.0.1:${o.adminPort}`;
  let exitSignal: NodeJS.Signals | null = null;
  const exited = new Promise<number | null>((resolve) =>
    child.on('exit', (code, signal) => {
      exitSignal = signal;
      resolve(code);
    }),
  );
  let exitCode: number | null | undefined;
  void exited.then((c) => (exitCode = c));

  const getJson = async (path: string): Promise<unknown> => {
    const res = await fetch(`${adminUrl}${path}`);
    return res.json();
  };
  const deadline = Date.now() + (o.readyTimeoutMs ?? 60_000);
  for (;;) {
    if (exitCode !== undefined) throw new Error(`probe exited with ${exitCode ?? `signal ${String(exitSignal)}`} before it was ready:\n${out}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`probe not ready in time:\n${out}`);
    }
    try {
      const res = await fetch(`${adminUrl}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    child,
    adminUrl,
    output: () => out,
    getJson,
    exitStatus: () => (exitCode === undefined ? null : { code: exitCode, signal: exitSignal }),
    stop: async (signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000) => {
      if (exitCode !== undefined) return exitCode;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

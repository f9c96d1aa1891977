/**
 * Shared pieces of the drain and stand-in tests: a real encrypted spool in a temp dir, the
 * stand-in on loopback with a throwaway PKI, and records numbered through `input` (ifIndex)
 * so a test can check order and exactly-once delivery from what the stand-in received.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FlowRecord } from '../../src/flow/flow-record.js';
import { Spool } from '../../src/spool/spool.js';
import { startFusionSim, type FusionSim, type FusionSimOptions } from '../../src/fusion-sim/fusion-sim.js';
import { parseNetosecret } from '../../src/drain/netosecret.js';
import { Drain, resolveDrainSettings, type DeepPartial, type DrainOptions, type DrainSettings } from '../../src/drain/drain.js';
import { ipv4Records } from './spool-fixtures.js';
import { readFileSync, rmSync } from 'node:fs';
import { createTestPki, type TestPki } from './test-pki.js';
import { appendRecords } from './spool-records.js';

/** `n` records whose `inputIf` is start, start+1, …: the Fusion record's `input` carries it. */
export function numberedRecords(start: number, n: number, seed = start + 1): FlowRecord[] {
  const rs = ipv4Records(n, seed);
  rs.forEach((r, i) => {
    r.inputIf = start + i;
  });
  return rs;
}

export interface TempSpool {
  readonly dir: string;
  readonly kek: Uint8Array;
  spool: Spool;
  reopen(): Promise<Spool>;
  cleanup(): Promise<void>;
}

export async function openTempSpool(): Promise<TempSpool> {
  const dir = await mkdtemp(join(tmpdir(), 'sealflow-drain-'));
  const kek = new Uint8Array(randomBytes(32));
  const t: TempSpool = {
    dir,
    kek,
    spool: await Spool.open({ dir, kek, synchronous: 'normal' }),
    async reopen() {
      try {
        t.spool.close();
      } catch {
        // already closed
      }
      t.spool = await Spool.open({ dir, kek, synchronous: 'normal' });
      return t.spool;
    },
    async cleanup() {
      try {
        t.spool.close();
      } catch {
        // already closed
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  return t;
}

/** Appends `batches` batches of `perBatch` numbered records; returns the total. */
export function fillSpool(spool: Spool, batches: number, perBatch: number, start = 0): number {
  for (let b = 0; b < batches; b++) {
    const res = appendRecords(spool.writer, numberedRecords(start + b * perBatch, perBatch));
    if (res.id === null) throw new Error(`append dropped a batch: ${String(res.dropReason)}`);
  }
  return batches * perBatch;
}

export interface PemPair {
  readonly certPem: string;
  readonly keyPem: string;
}

export interface SimEnv {
  readonly pki: TestPki;
  /** PEM of the CA that issued the stand-in's certificate (the drain's extra CA). */
  readonly caPem: string;
  readonly server: PemPair;
  sim: FusionSim;
  cleanup(): Promise<void>;
}

let sharedPki: Promise<{ pki: TestPki; server: PemPair; caPem: string }> | null = null;

export function pemPair(files: { certFile: string; keyFile: string }): PemPair {
  return { certPem: readFileSync(files.certFile, 'utf8'), keyPem: readFileSync(files.keyFile, 'utf8') };
}

/** One PKI per test process (making it takes a few seconds of openssl). */
export function testPki(): Promise<{ pki: TestPki; server: PemPair; caPem: string }> {
  sharedPki ??= (async () => {
    const pki = await createTestPki();
    process.once('exit', () => {
      // Synchronous: nothing async runs in an exit handler. Throwaway test keys only.
      rmSync(pki.dir, { recursive: true, force: true });
    });
    return { pki, server: pemPair(pki.collector), caPem: readFileSync(pki.caFile, 'utf8') };
  })();
  return sharedPki;
}

export async function startTestSim(options: Partial<FusionSimOptions> = {}): Promise<SimEnv> {
  const { pki, server, caPem } = await testPki();
  const sim = await startFusionSim({ certPem: server.certPem, keyPem: server.keyPem, ...options });
  return { pki, server, caPem, sim, cleanup: () => sim.close() };
}

/** Drain settings that reach `sim` and trust the test CA; fast backoff, and uploads on the drain's own thread, unless overridden. */
export function settingsFor(env: SimEnv, overrides: DeepPartial<DrainSettings> = {}): DrainSettings {
  return resolveDrainSettings({
    uploadWorkers: 0,
    ...overrides,
    uploadUrl: overrides.uploadUrl ?? env.sim.uploadUrl,
    tls: { caPem: env.caPem, ...(overrides.tls ?? {}) },
    backoff: { baseMs: 20, capMs: 200, ...(overrides.backoff ?? {}) },
    auth: { ...(overrides.auth ?? {}), backoff: { baseMs: 50, capMs: 500, ...(overrides.auth?.backoff ?? {}) } },
    idlePollMs: overrides.idlePollMs ?? 20,
  });
}

export function drainFor(env: SimEnv, source: DrainOptions['source'], overrides: DeepPartial<DrainSettings> = {}, extra: Partial<DrainOptions> = {}): Drain {
  return new Drain({ source, credentials: parseNetosecret(env.sim.netosecret, 'test'), settings: settingsFor(env, overrides), ...extra });
}

/** The `input` sequence numbers the stand-in received, in arrival order. */
export function receivedSeq(sim: FusionSim): number[] {
  return sim.records.map((r) => r.input as number);
}

/** Polls `cond` every 10 ms until true or `timeoutMs` passes; returns whether it became true. */
export async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return cond();
}

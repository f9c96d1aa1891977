/**
 * Crash-consistency soak of the real probe, black-box: only the CLI, sockets and files.
 *
 * One run is many cycles of: start `sealflow run --config F` (the compiled CLI, as it ships),
 * let it receive, spool and drain for a random time, then SIGKILL it at a random moment (during
 * start-up and recovery, appends, group commits, checkpoints, leases, acks, shredding, and a
 * `sealflow rekey` running beside it, which is killed with it). Meanwhile:
 *
 *  - a UDP sender on 127.0.0.1 sends NetFlow v5 records without pause (also while the probe is
 *    down), each with a unique id in its source address;
 *  - the Fusion stand-in (real HTTPS, JWT auth, schema validation, Idempotency-Key dedup) runs
 *    in this process and counts every id it stores;
 *  - after each kill, `sealflow spool export` on a copy of the spool directory lists the ids
 *    the dead probe had committed and not yet delivered (the copy leaves the real files for the
 *    next start to recover, untouched).
 *
 * At the end the probe runs once more without a kill until the spool is empty and stops on
 * SIGTERM. Then every id ever seen committed must have been delivered (committed-lost = 0), and
 * every start must have come up (crash loops = 0: a probe that exits by itself or is not ready
 * in time). Records never committed (sent while the probe was down, or held in memory or the
 * socket buffer at a kill) are reported as lost-while-down: UDP has no retransmission.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket, type Socket } from 'node:dgram';
import { cpSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { createDevCertificate } from '../../src/fusion-sim/dev-certificate.js';
import { startFusionSim, type FusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { ensureBuilt, freeTcpPort, freeUdpPort } from './probe.js';
import { repoRoot } from './softflowd.js';
import { prng } from './spool-fixtures.js';

export interface CrashSoakOptions {
  readonly dir: string;
  readonly kills: number;
  readonly seed: number;
  /** Share of kills aimed at start-up and recovery: uniformly within the start-up time seen so far. */
  readonly startupKillShare?: number;
  /** Other kills land uniformly in [0, runMs] after the probe said it is ready. */
  readonly runMs?: number;
  /** Pause between a kill and the next start (the sender keeps sending). */
  readonly maxDownMs?: number;
  /** Records per second the sender sends. */
  readonly recordsPerSecond?: number;
  /** Probability that a cycle runs `sealflow rekey` beside the probe. */
  readonly rekeyProbability?: number;
  /** The stand-in holds each upload this long before answering. */
  readonly uploadDelayMs?: number;
  /** The stand-in answers every upload 503 until the final run, so committed records stay in the spool across the kills. */
  readonly refuseUploadsUntilFinal?: boolean;
  /** A start not ready in this long counts as a crash loop. */
  readonly readyTimeoutMs?: number;
  readonly onCycle?: (c: CycleReport) => void;
  /** Checked before each kill cycle: true ends the cycles early (time budget, SIGINT); the final drain and checks still run. */
  readonly stopRequested?: () => boolean;
  /** Called after each kill once the committed ids are read; a test of the soak itself breaks things here. */
  readonly afterKill?: (files: { readonly dataDir: string; readonly kekFiles: readonly string[] }) => void;
}

export type KillPhase = 'startup' | 'upload-in-flight' | 'rekey' | 'after-shred' | 'steady';

export interface CycleReport {
  readonly cycle: number;
  readonly killAfterMs: number;
  readonly phase: KillPhase;
  readonly committedInSpool: number;
  readonly delivered: number;
  readonly sent: number;
}

export interface CrashSoakReport {
  /** Kills done (fewer than asked when stopped early). */
  readonly kills: number;
  readonly seed: number;
  readonly sent: number;
  /** Ids seen in the spool after a kill or delivered (delivery implies a commit). */
  readonly committed: number;
  readonly delivered: number;
  /** Records stored more than once at the stand-in (an upload repeated under a new key). */
  readonly duplicates: number;
  /** Uploads the stand-in recognised by Idempotency-Key and stored nothing for. */
  readonly dedupedUploads: number;
  readonly lostWhileDown: number;
  readonly committedLost: number;
  readonly crashLoops: number;
  /** Delivered ids never sent (must be 0: a corrupted record). */
  readonly unknownDelivered: number;
  readonly exportFailures: number;
  readonly killsByPhase: Readonly<Record<KillPhase, number>>;
  readonly rekeys: { readonly attempted: number; readonly completed: number; readonly killed: number; readonly failed: number };
  readonly shreddedEpochs: number;
  readonly finalSpoolRecords: number;
  readonly finalExitCode: number | null;
  /** `sealflow audit verify` on the data directory after the final run: null when it passed, else its failures. */
  readonly auditFailures: string | null;
  /** probe.crash_recovered events in the audit trail (a kill after the trail recorded a start). */
  readonly crashRecoveries: number;
  readonly seconds: number;
}

const RECORDS_PER_PACKET = 30;

const V5_HEADER = 24;
const V5_RECORD = 48;
/** Ids start here so that a record's source address is never 0.0.0.0. */
const FIRST_ID = 1;

/** A NetFlow v5 packet whose records carry ids first..first+n-1 as their source address. */
function v5Packet(first: number, n: number, sequence: number, uptimeMs: number): Buffer {
  const b = Buffer.alloc(V5_HEADER + n * V5_RECORD);
  const now = Date.now();
  b.writeUInt16BE(5, 0);
  b.writeUInt16BE(n, 2);
  b.writeUInt32BE(uptimeMs >>> 0, 4);
  b.writeUInt32BE(Math.floor(now / 1000), 8);
  b.writeUInt32BE((now % 1000) * 1_000_000, 12);
  b.writeUInt32BE(sequence >>> 0, 16);
  for (let i = 0; i < n; i++) {
    const o = V5_HEADER + i * V5_RECORD;
    b.writeUInt32BE((first + i) >>> 0, o); // srcaddr = id
    b.writeUInt32BE(0x0a000001, o + 4); // dstaddr 10.0.0.1
    b.writeUInt16BE(1, o + 12); // input
    b.writeUInt16BE(2, o + 14); // output
    b.writeUInt32BE(1, o + 16); // dPkts
    b.writeUInt32BE(100, o + 20); // dOctets
    b.writeUInt32BE(Math.max(0, uptimeMs - 1000) >>> 0, o + 24); // first
    b.writeUInt32BE(uptimeMs >>> 0, o + 28); // last
    b.writeUInt16BE(40_000, o + 32);
    b.writeUInt16BE(443, o + 34);
    b[o + 38] = 6; // TCP
  }
  return b;
}

function idOf(srcip: string): number {
  const p = srcip.split('.');
  if (p.length !== 4) return -1;
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

const SRCIP = /"srcip":"(\d+\.\d+\.\d+\.\d+)"/;

/** A count per id, growing as ids grow. */
class IdCounts {
  private a = new Uint8Array(1 << 16);
  get(id: number): number {
    return id < this.a.length ? (this.a[id] ?? 0) : 0;
  }
  inc(id: number): number {
    if (id >= this.a.length) {
      let n = this.a.length;
      while (n <= id) n *= 2;
      const b = new Uint8Array(n);
      b.set(this.a);
      this.a = b;
    }
    const v = Math.min(255, (this.a[id] ?? 0) + 1);
    this.a[id] = v;
    return v;
  }
}

class Sender {
  nextId = FIRST_ID;
  private sequence = 0;
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private constructor(private readonly socket: Socket, private readonly port: number) {}

  static async open(port: number): Promise<Sender> {
    const s = createSocket('udp4');
    await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
    // Nothing listens while the probe is down: ICMP port unreachable comes back as an error.
    s.on('error', () => undefined);
    return new Sender(s, port);
  }

  /** Sends `perSecond` records a second in ticks of 10 ms. */
  start(perSecond: number): void {
    let due = 0;
    let last = Date.now();
    this.timer = setInterval(() => {
      const now = Date.now();
      due += ((now - last) * perSecond) / 1000;
      last = now;
      while (due >= RECORDS_PER_PACKET) {
        due -= RECORDS_PER_PACKET;
        const p = v5Packet(this.nextId, RECORDS_PER_PACKET, this.sequence, now - this.startedAt);
        this.nextId += RECORDS_PER_PACKET;
        this.sequence += RECORDS_PER_PACKET;
        this.socket.send(p, this.port, '127.0.0.1');
      }
    }, 10);
  }

  get sent(): number {
    return this.nextId - FIRST_ID;
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    // Let the last sends leave the socket.
    await new Promise((r) => setTimeout(r, 50));
  }

  close(): void {
    this.socket.close();
  }
}

interface Probe {
  readonly child: ChildProcess;
  readonly startedAt: number;
  readyAt: number | null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  readonly exited: Promise<void>;
  out: string;
  /** Time of the last spool.epoch_shredded line. */
  lastShredAt: number;
  shreds: number;
}

const node = process.execPath;
const cli = join(repoRoot, 'bin/sealflow.js');

function spawnProbe(configFile: string): Probe {
  const child = spawn(node, [cli, 'run', '--config', configFile], { cwd: repoRoot, env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  const p: Probe = {
    child,
    startedAt: Date.now(),
    readyAt: null,
    exit: null,
    exited: new Promise((resolve) => child.once('close', (code, signal) => {
      p.exit = { code, signal };
      resolve();
    })),
    out: '',
    lastShredAt: 0,
    shreds: 0,
  };
  let partial = '';
  const onData = (d: Buffer): void => {
    const lines = (partial + d.toString()).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      if (l.includes('"spool.epoch_shredded"')) {
        p.lastShredAt = Date.now();
        p.shreds++;
      }
      // Keep the tail only (for error reports).
      p.out = (p.out + l + '\n').slice(-8000);
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return p;
}

async function ready(adminPort: number): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/readyz`, { signal: AbortSignal.timeout(1000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

async function spoolRecords(adminPort: number): Promise<number | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/stats`, { signal: AbortSignal.timeout(2000) });
    const s = (await res.json()) as { spool?: { records?: number; batches?: number } | null };
    return s.spool?.records ?? null;
  } catch {
    return null;
  }
}

interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

function runCli(args: readonly string[], env: Record<string, string>, onStdoutLine?: (l: string) => void): { child: ChildProcess; done: Promise<CliResult> } {
  const child = spawn(node, [cli, ...args], { cwd: repoRoot, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    if (onStdoutLine === undefined) {
      stdout += d;
      return;
    }
    const lines = (partial + d).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) onStdoutLine(l);
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const done = new Promise<CliResult>((resolve) => child.once('close', (code, signal) => {
    if (partial !== '' && onStdoutLine !== undefined) onStdoutLine(partial);
    resolve({ code, signal, stdout, stderr });
  }));
  return { child, done };
}

/** Runs the soak; resolves with the figures (it does not judge them: see crashSoakProblems). */
export async function runCrashSoak(o: CrashSoakOptions): Promise<CrashSoakReport> {
  const started = Date.now();
  ensureBuilt();
  // Deterministic, so a run's kill times reproduce from its seed.
  const rand = prng(o.seed);
  const startupShare = o.startupKillShare ?? 0.15;
  const runMs = o.runMs ?? 2500;
  let startupMs = 1500;
  const maxDown = o.maxDownMs ?? 300;
  const readyTimeout = o.readyTimeoutMs ?? 30_000;
  const rekeyP = o.rekeyProbability ?? 0.3;
  const dir = o.dir;
  mkdirSync(join(dir, 'keks'), { recursive: true });
  const dataDir = join(dir, 'data');
  const spoolDir = join(dataDir, 'spool');
  const copyDir = join(dir, 'spool-copy');

  const delivered = new IdCounts();
  const committed = new IdCounts();
  let deliveredCount = 0;
  let duplicates = 0;
  let unknownDelivered = 0;
  let sender: Sender | null = null;
  const cert = await createDevCertificate();
  const sim: FusionSim = await startFusionSim({
    host: '127.0.0.1',
    port: 0,
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    keepRecords: false,
    onRecord: (r) => {
      const id = typeof r.srcip === 'string' ? idOf(r.srcip) : -1;
      if (id < FIRST_ID || sender === null || id >= sender.nextId) {
        unknownDelivered++;
        return;
      }
      if (delivered.inc(id) === 1) deliveredCount++;
      else duplicates++;
    },
  });

  // KEKs: the probe runs with keys[gen + 1] as current and keys[gen] as previous; a rekey
  // rewraps everything under keys[gen + 1] and, once it has exited 0, the next start moves on
  // (so the spool never holds keys under more than the two the CLI can be given).
  const keyFile = (i: number): string => {
    const f = join(dir, 'keks', `k${i}`);
    writeFileSync(f, randomBytes(32).toString('base64'), { mode: 0o600, flag: 'wx' });
    return f;
  };
  const keys: string[] = [keyFile(0), keyFile(1)];
  let gen = 0;
  const cliKeys = (): Record<string, string> => ({ SEALFLOW_SPOOL_KEK_FILE: keys[gen + 1] ?? '', SEALFLOW_SPOOL_PREVIOUS_KEK_FILE: keys[gen] ?? '' });

  writeFileSync(join(dir, 'ca.pem'), cert.certPem);
  const signingKey = join(dir, 'signing-key');
  writeFileSync(signingKey, randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(join(dir, 'netosecret'), sim.netosecret, { mode: 0o600 });
  const udpPort = await freeUdpPort();
  const adminPort = await freeTcpPort();
  const configFile = join(dir, 'sealflow.yaml');
  const writeConfig = (synchronous: 'full' | 'normal'): void => {
    writeFileSync(configFile, stringify({
      dataDir,
      log: { level: 'info', format: 'json' },
      listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 4 * 1024 * 1024 }] },
      // Small batches and a short age: many appends and commits a second, each a kill point.
      spool: { kek: { file: keys[gen + 1] }, previousKeks: [{ file: keys[gen] }], batch: { maxRecords: 300, maxAgeMs: 100 }, synchronous, epochSeconds: 60 },
      drain: {
        fusion: { uploadUrl: sim.uploadUrl, caFile: join(dir, 'ca.pem'), netosecret: { file: join(dir, 'netosecret') }, maxRecordsPerRequest: 300 },
        concurrency: 2,
        retry: { initialDelayMs: 50, maxDelayMs: 500 },
      },
      admin: { port: adminPort },
      audit: { signingKey: { file: signingKey } },
      stats: { intervalSeconds: 0 },
    }));
  };

  const killsByPhase: Record<KillPhase, number> = { startup: 0, 'upload-in-flight': 0, rekey: 0, 'after-shred': 0, steady: 0 };
  const rekeys = { attempted: 0, completed: 0, killed: 0, failed: 0 };
  let crashLoops = 0;
  let exportFailures = 0;
  let shreds = 0;
  // Requests the stand-in has not answered; those cut by a kill stay in it, hence the baseline per cycle.
  const openRequests = (): number => sim.stats.uploadRequests - sim.stats.uploadsAccepted - sim.stats.duplicates - sim.stats.badRequests - sim.stats.unauthorized;

  /** Ids in a copy of the spool (the probe is dead): each is committed. */
  const exportCommitted = async (): Promise<number> => {
    rmSync(copyDir, { recursive: true, force: true });
    cpSync(spoolDir, copyDir, { recursive: true });
    let n = 0;
    const r = runCli(['spool', 'export', '--format', 'ndjson', '--spool-dir', copyDir], cliKeys(), (line) => {
      const m = SRCIP.exec(line);
      if (m?.[1] === undefined) return;
      const id = idOf(m[1]);
      if (committed.get(id) === 0) committed.inc(id);
      n++;
    });
    const res = await r.done;
    if (res.code !== 0) {
      exportFailures++;
      process.stderr.write(`crash soak: spool export failed (${String(res.code)}): ${res.stderr.slice(-2000)}\n`);
    }
    return n;
  };

  // Each upload is held a little, so that kills land between a lease and its ack too.
  await sim.setFault(
    o.refuseUploadsUntilFinal === true ? { kind: 'status', status: 503, scope: 'upload' } : { kind: 'slow', delayMs: o.uploadDelayMs ?? 40, scope: 'upload' },
  );
  sender = await Sender.open(udpPort);
  sender.start(o.recordsPerSecond ?? 2000);
  let finalExitCode: number | null = null;
  let finalSpoolRecords = -1;
  let kills = 0;
  let auditFailures: string | null = 'not checked';
  let crashRecoveries = 0;
  try {
    for (let cycle = 1; cycle <= o.kills && o.stopRequested?.() !== true; cycle++) {
      writeConfig(cycle % 2 === 0 ? 'full' : 'normal');
      const atStartup = rand() < startupShare;
      const killDelayMs = Math.floor(rand() * (atStartup ? startupMs : runMs));
      // A rekey takes a few hundred ms (most of it CLI start-up): start it shortly before the kill.
      const rekeyAtMs = !atStartup && rand() < rekeyP ? Math.max(0, Math.floor(killDelayMs - rand() * 1000)) : -1;
      const openBefore = openRequests();
      const probe = spawnProbe(configFile);
      let killAt = atStartup ? probe.startedAt + killDelayMs : Infinity;
      let rekey: { child: ChildProcess; done: Promise<CliResult> } | null = null;
      let rekeyRunningAtKill = false;
      let rekeyStartedGen = -1;
      // Poll readiness and start the rekey, until the kill time.
      while (Date.now() < killAt && probe.exit === null) {
        if (probe.readyAt === null && (await ready(adminPort))) {
          probe.readyAt = Date.now();
          startupMs = 0.8 * startupMs + 0.2 * (probe.readyAt - probe.startedAt);
          if (!atStartup) killAt = probe.readyAt + killDelayMs;
        }
        if (probe.readyAt === null && Date.now() - probe.startedAt > readyTimeout) break;
        if (rekey === null && rekeyAtMs >= 0 && probe.readyAt !== null && Date.now() >= probe.readyAt + rekeyAtMs) {
          rekeys.attempted++;
          rekeyStartedGen = gen;
          keys[gen + 2] ??= keyFile(gen + 2);
          rekey = runCli(['rekey', '--new-kek-file', keys[gen + 1] ?? '', '--data-dir', dataDir], { SEALFLOW_SPOOL_KEK_FILE: keys[gen] ?? '' });
        }
        await new Promise((r) => setTimeout(r, Math.max(0, Math.min(25, killAt - Date.now()))));
      }
      // The phase: what was under way at the kill, as seen from outside.
      const inFlight = openRequests() - openBefore;
      if (rekey !== null && rekey.child.exitCode === null && rekey.child.signalCode === null) rekeyRunningAtKill = true;
      const phase: KillPhase = probe.readyAt === null ? 'startup' : rekeyRunningAtKill ? 'rekey' : inFlight > 0 ? 'upload-in-flight' : Date.now() - probe.lastShredAt < 500 ? 'after-shred' : 'steady';
      if (probe.exit !== null) {
        crashLoops++;
        process.stderr.write(`crash soak: cycle ${cycle}: the probe exited by itself (${JSON.stringify(probe.exit)}):\n${probe.out}\n`);
      } else if (probe.readyAt === null && !atStartup) {
        crashLoops++;
        process.stderr.write(`crash soak: cycle ${cycle}: the probe was not ready in ${readyTimeout} ms:\n${probe.out}\n`);
      }
      const killAfterMs = Date.now() - probe.startedAt;
      probe.child.kill('SIGKILL');
      rekey?.child.kill('SIGKILL');
      await probe.exited;
      kills++;
      shreds += probe.shreds;
      killsByPhase[phase]++;
      if (rekey !== null) {
        const r = await rekey.done;
        if (r.code === 0) {
          rekeys.completed++;
          if (gen === rekeyStartedGen) gen++;
        } else if (r.signal === 'SIGKILL') rekeys.killed++;
        else {
          rekeys.failed++;
          process.stderr.write(`crash soak: cycle ${cycle}: rekey failed (${String(r.code)}): ${r.stderr.slice(-500)}\n`);
        }
      }
      const inSpool = await exportCommitted();
      o.afterKill?.({ dataDir, kekFiles: [...keys] });
      o.onCycle?.({ cycle, killAfterMs, phase, committedInSpool: inSpool, delivered: deliveredCount, sent: sender.sent });
      await new Promise((r) => setTimeout(r, Math.floor(rand() * maxDown)));
    }

    // Final run: stop sending, drain everything, stop cleanly.
    await sender.stop();
    if (o.refuseUploadsUntilFinal === true) await sim.setFault(null);
    writeConfig('full');
    const probe = spawnProbe(configFile);
    const deadline = Date.now() + 120_000;
    while (probe.exit === null && Date.now() < deadline) {
      if (probe.readyAt === null && (await ready(adminPort))) probe.readyAt = Date.now();
      if (probe.readyAt !== null && (await spoolRecords(adminPort)) === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (probe.readyAt === null) crashLoops++;
    if (probe.exit === null) probe.child.kill('SIGTERM');
    const force = setTimeout(() => probe.child.kill('SIGKILL'), 30_000);
    await probe.exited;
    clearTimeout(force);
    shreds += probe.shreds;
    finalExitCode = probe.exit?.code ?? null;
    finalSpoolRecords = await exportCommitted();
    // The audit trail survived every kill: it verifies with the public key, and recorded the crashes.
    const pub = (await runCli(['audit', 'pubkey', '--config', configFile], {}).done).stdout.split('\n')[0] ?? '';
    const verify = await runCli(['audit', 'verify', '--pubkey', pub, '--config', configFile, '--json'], {}).done;
    try {
      const report = JSON.parse(verify.stdout) as { ok: boolean; failures: { message: string }[]; kinds: Record<string, number> };
      auditFailures = report.ok ? null : report.failures.map((f) => f.message).join('; ');
      crashRecoveries = report.kinds['probe.crash_recovered'] ?? 0;
    } catch {
      auditFailures = `audit verify exited ${String(verify.code)}: ${verify.stderr.slice(-500)}`;
    }
  } finally {
    await sender.stop();
    sender.close();
    await sim.close();
  }
  // Delivery implies a commit.
  let committedCount = 0;
  let committedLost = 0;
  for (let id = FIRST_ID; id < sender.nextId; id++) {
    const d = delivered.get(id) > 0;
    if (d || committed.get(id) > 0) committedCount++;
    if (!d && committed.get(id) > 0) committedLost++;
  }
  return {
    kills,
    seed: o.seed,
    sent: sender.sent,
    committed: committedCount,
    delivered: deliveredCount,
    duplicates,
    dedupedUploads: sim.stats.duplicates,
    lostWhileDown: sender.sent - committedCount,
    committedLost,
    crashLoops,
    unknownDelivered,
    exportFailures,
    killsByPhase,
    rekeys,
    shreddedEpochs: shreds,
    finalSpoolRecords,
    finalExitCode,
    auditFailures,
    crashRecoveries,
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

/** What must hold; an empty list means the run passed. */
export function crashSoakProblems(r: CrashSoakReport): string[] {
  const p: string[] = [];
  if (r.committedLost !== 0) p.push(`${r.committedLost} committed records never delivered`);
  if (r.crashLoops !== 0) p.push(`${r.crashLoops} crash loops`);
  if (r.unknownDelivered !== 0) p.push(`${r.unknownDelivered} delivered records with an id never sent`);
  if (r.exportFailures !== 0) p.push(`${r.exportFailures} spool exports failed`);
  if (r.rekeys.failed !== 0) p.push(`${r.rekeys.failed} rekeys failed (not killed)`);
  if (r.finalSpoolRecords !== 0) p.push(`${r.finalSpoolRecords} records left in the spool after the final drain`);
  if (r.finalExitCode !== 0) p.push(`the final run exited with ${String(r.finalExitCode)} on SIGTERM`);
  if (r.delivered === 0) p.push('nothing was delivered');
  if (r.auditFailures !== null) p.push(`the audit trail does not verify: ${r.auditFailures}`);
  return p;
}

export function formatCrashSoakReport(r: CrashSoakReport): string {
  const rows: [string, string | number][] = [
    ['kills (SIGKILL)', r.kills],
    ['  during start-up/recovery', r.killsByPhase.startup],
    ['  with an upload in flight (lease→ack)', r.killsByPhase['upload-in-flight']],
    ['  during a rekey (killed with it)', r.killsByPhase.rekey],
    ['  < 500 ms after a shred', r.killsByPhase['after-shred']],
    ['  appending/committing/checkpointing', r.killsByPhase.steady],
    ['rekeys attempted / completed / killed / failed', `${r.rekeys.attempted} / ${r.rekeys.completed} / ${r.rekeys.killed} / ${r.rekeys.failed}`],
    ['epochs shredded', r.shreddedEpochs],
    ['sent', r.sent],
    ['committed', r.committed],
    ['delivered', r.delivered],
    ['duplicates (records stored twice)', r.duplicates],
    ['uploads de-duplicated by Idempotency-Key', r.dedupedUploads],
    ['lost-while-down (never committed)', r.lostWhileDown],
    ['committed-lost (must be 0)', r.committedLost],
    ['crash loops (must be 0)', r.crashLoops],
    ['spool exports failed', r.exportFailures],
    ['left in spool after final drain', r.finalSpoolRecords],
    ['final SIGTERM exit code', String(r.finalExitCode)],
    ['audit trail verifies / crash recoveries recorded', `${r.auditFailures === null ? 'yes' : `NO: ${r.auditFailures}`} / ${r.crashRecoveries}`],
    ['seed', r.seed],
    ['seconds', r.seconds],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${String(v)}`).join('\n') + '\n';
}

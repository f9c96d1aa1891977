import { Drain, type DrainStats } from '../drain/drain.js';
import { drainSettingsFromConfig, fusionCredentialsFromConfig, NETOSECRET_SETTING, type DrainRuntimeExtras } from '../drain/drain-config.js';
import type { FusionCredentials } from '../drain/netosecret.js';
import { ConfigError, ConfigErrorCode, isSealflowError } from '../flow/errors.js';
import { startEmbeddedFusionSim, type EmbeddedFusionSim } from '../fusion-sim/embedded-fusion-sim.js';
import { createLogger } from '../observability/logger.js';
import type { Spool } from '../spool/spool.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { isSpoolAccessProblem, loadSpoolCommandConfig, openConfiguredSpool, SPOOL_KEY_HELP, SPOOL_LOCATION_ARGS, SPOOL_LOCATION_OPTIONS, spoolCommandExit } from './spool-access.js';

const HELP = `usage: sealflow drain --once [options]

Drains what the encrypted spool holds now to Fusion, then exits with a summary (a live
progress line on a terminal, one summary line otherwise). Uses the same configuration as
\`sealflow run\` (drain.fusion.*: upload URL, framing, compression, TLS, proxy, rate caps).

options:
  --once               drain what is spooled now, then exit (required)
${SPOOL_LOCATION_OPTIONS}
  --max-failures N     give up after N consecutive failed attempts (default 5)
  --json               print the final statistics as JSON
  -h, --help

The Fusion API key comes from ${NETOSECRET_SETTING} or SEALFLOW_FUSION_NETOSECRET[_FILE|_COMMAND]
(the development setup drains to its embedded local stand-in, as \`npm start\` does).
${SPOOL_KEY_HELP}
Exit codes: 0 all delivered, 1 something was parked or not delivered, 64 usage, 66 no spool,
78 configuration/key problem.
`;

const PROGRESS_INTERVAL_MS = 250;

function summary(s: DrainStats, elapsedMs: number, complete: boolean): string {
  const secs = Math.max(elapsedMs / 1000, 0.001);
  const retries = Object.entries(s.retries).filter(([, n]) => n > 0).map(([k, n]) => `${k}=${n}`).join(' ');
  const left = s.spool === null ? '?' : `${s.spool.batches} batches / ${s.spool.records} records`;
  return [
    `drain: ${complete ? 'done' : 'GAVE UP'}`,
    `delivered ${s.deliveredRecords} records in ${s.deliveredBatches} batches (${s.deliveredBytes} bytes sent) in ${secs.toFixed(1)} s`,
    `${Math.round(s.deliveredRecords / secs)} records/s`,
    `parked ${s.parkedBatches} batches (${s.parkedRecords} records)`,
    `retries ${retries === '' ? 0 : retries}`,
    `left in spool ${left}`,
    ...(s.lastError !== null && (!complete || s.parkedBatches > 0) ? [`last error: ${s.lastError}`] : []),
  ].join(', ');
}

export const main: CommandMain = async (argv, io: CommandIo) => {
  const parsed = parseCommandArgs('drain', HELP, argv, io, {
    once: { type: 'boolean', default: false },
    ...SPOOL_LOCATION_ARGS,
    'max-failures': { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (!values.once) {
    io.stderr.write(`sealflow drain: only --once is supported here; the continuous drain runs inside \`sealflow run\`\n\n${HELP}`);
    return ExitCode.Usage;
  }
  const maxFailures = values['max-failures'] === undefined ? 5 : Number(values['max-failures']);
  if (!Number.isInteger(maxFailures) || maxFailures < 1) {
    io.stderr.write('sealflow drain: --max-failures wants a positive integer\n');
    return ExitCode.Usage;
  }

  let spool: Spool | null = null;
  let drain: Drain | null = null;
  let sim: EmbeddedFusionSim | null = null;
  try {
    const loaded = await loadSpoolCommandConfig(values, io, true);
    const config = loaded.config;
    // Open the spool first: without one there is nothing to drain and no key to ask for.
    spool = await openConfiguredSpool(loaded, io, { readOnly: false });
    let extras: DrainRuntimeExtras = {};
    let credentials: FusionCredentials | null;
    if (config.drain.fusion.embeddedSim) {
      sim = await startEmbeddedFusionSim();
      credentials = sim.credentials;
      extras = sim.extras;
      io.stderr.write(`sealflow drain: draining to the EMBEDDED LOCAL FUSION STAND-IN at ${sim.sim.url} (development setup): records are counted, not sent anywhere\n`);
    } else {
      credentials = await fusionCredentialsFromConfig(config.drain, { env: io.env, warn: (m) => io.stderr.write(`sealflow drain: warning: ${m}\n`) });
    }
    if (credentials === null) {
      throw new ConfigError(ConfigErrorCode.Secret, NETOSECRET_SETTING, `${NETOSECRET_SETTING}: no Fusion API key; set SEALFLOW_FUSION_NETOSECRET, SEALFLOW_FUSION_NETOSECRET_FILE or _COMMAND`);
    }
    const settings = drainSettingsFromConfig(config.drain, extras);

    const logger = createLogger({ level: 'warn', pretty: false }, { write: (line: string) => io.stderr.write(line) });
    drain = new Drain({ source: spool.reader, credentials, settings, logger });
    const tty = (io.stderr as { isTTY?: boolean }).isTTY ?? false;
    const started = Date.now();
    let lastDraw = 0;
    const onProgress = (s: DrainStats): void => {
      const now = Date.now();
      if (!tty || now - lastDraw < PROGRESS_INTERVAL_MS) return;
      lastDraw = now;
      const left = s.spool?.records ?? 0;
      const eta = s.etaMs === null ? '-' : `${Math.ceil(s.etaMs / 1000)} s`;
      io.stderr.write(`\r\x1b[Kdrain: ${s.deliveredRecords} delivered, ${left} left, ${Math.round(s.recordsPerSec)} rec/s, eta ${eta}, parked ${s.parkedBatches}, retries ${Object.values(s.retries).reduce((a, b) => a + b, 0)}`);
    };
    const res = await drain.drainOnce({ maxConsecutiveFailures: maxFailures, onProgress });
    if (tty) io.stderr.write('\r\x1b[K');
    const elapsed = Date.now() - started;
    if (values.json) io.stdout.write(JSON.stringify({ complete: res.complete, elapsedMs: elapsed, ...res.stats }) + '\n');
    else io.stdout.write(summary(res.stats, elapsed, res.complete) + '\n');
    return res.complete && res.stats.parkedBatches === 0 ? ExitCode.Ok : ExitCode.Failure;
  } catch (err) {
    if (isSpoolAccessProblem(err)) return spoolCommandExit('drain', io, err);
    if (isSealflowError(err)) {
      io.stderr.write(`sealflow drain: ${err.message}\n`);
      return ExitCode.Failure;
    }
    throw err;
  } finally {
    await drain?.close(1000);
    spool?.close();
    await sim?.sim.close();
  }
};

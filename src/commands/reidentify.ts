import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { auditingPrivacyEventSink } from '../audit/privacy-events.js';
import { AuditTrail } from '../audit/trail.js';
import { NO_AUDIT, type AuditLog } from '../flow/audit.js';
import { SPOOL_DB_FILE } from '../spool/spool.js';
import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { loadConfig } from '../config/load.js';
import { isSealflowError } from '../flow/errors.js';
import { ipToString, parseIp } from '../flow/ip.js';
import { createLogger, loggerSettingsFromConfig } from '../observability/logger.js';
import { syslogDestinationFromConfig } from '../observability/syslog-destination.js';
import { loggingPrivacyEventSink } from '../privacy/events.js';
import { resolvePseudonymizeKey } from '../privacy/key-source.js';
import { keyFingerprint } from '../privacy/key-schedule.js';
import { compilePseudonymPolicy } from '../privacy/policy.js';
import { cryptoPanAt, reversePseudonym } from '../privacy/reverse.js';

const HELP = `usage: sealflow reidentify ADDRESS [--at TIME] [--config PATH]

Prints the real address behind pseudonym ADDRESS (as found in the spool export or at Fusion),
for incident response on site. Needs the probe's configuration (privacy.pseudonymize: its rules,
rotation and key source) and access to the master pseudonymisation key.
  --at TIME       when the pseudonym was produced: ISO 8601 (2026-12-08T14:03:00Z) or Unix
                  seconds; selects the key period (rotation daily/epoch). Default: now.
                  \`sealflow spool export\` says which key period wrote which batches.
  --config PATH   configuration file (default: $SEALFLOW_CONFIG, else the embedded setup)
Every use is logged and recorded in the audit trail (pseudonym_key.reidentification: the
pseudonym, the key period, the user; never the real address); a use that cannot be recorded
prints nothing and exits 70. Exit 0 with the address on stdout; 1 when ADDRESS is
not a pseudonym under the policy (kept in clear or outside every pseudonymised prefix); 64 usage;
78 configuration or key problem.
`;

/** Parses --at: ISO 8601 text or Unix seconds; null when neither. */
export function parseAt(text: string): number | null {
  if (/^\d{1,12}(\.\d+)?$/.test(text)) return Math.floor(Number(text) * 1000);
  const ms = Date.parse(text);
  return Number.isNaN(ms) ? null : ms;
}

export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs('reidentify', HELP, argv, io, { at: { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, true);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const text = positionals[0];
  const pseudonym = text === undefined ? null : parseIp(text);
  if (positionals.length !== 1 || pseudonym === null) {
    io.stderr.write(`sealflow reidentify: give exactly one IPv4 or IPv6 address${text === undefined ? '' : `, got ${JSON.stringify(positionals.join(' '))}`}\n\n${HELP}`);
    return ExitCode.Usage;
  }
  const atMs = values.at === undefined ? Date.now() : parseAt(values.at);
  if (atMs === null) {
    io.stderr.write(`sealflow reidentify: --at must be an ISO 8601 time or Unix seconds, got ${JSON.stringify(values.at)}\n`);
    return ExitCode.Usage;
  }
  try {
    const { config } = await loadConfig({ configPath: values.config, env: io.env, embeddedWhenNoFile: true });
    const pz = config.privacy.pseudonymize;
    if (pz === undefined) {
      io.stderr.write('sealflow reidentify: privacy.pseudonymize is not configured, so this probe stores no pseudonyms; give the configuration the probe runs with (--config or SEALFLOW_CONFIG)\n');
      return ExitCode.Config;
    }
    const syslog = syslogDestinationFromConfig(config.log.syslog);
    const logger = createLogger({ ...loggerSettingsFromConfig(config.log), ...(syslog === undefined ? {} : { syslog }) }).child({ component: 'reidentify' });
    // The audit trail in the spool database (when the probe has run here): a use that cannot be recorded is refused.
    const dbPath = join(config.spool.dir, SPOOL_DB_FILE);
    const db = existsSync(dbPath) ? new Database(dbPath, { fileMustExist: true }) : null;
    let trail: AuditLog = NO_AUDIT;
    const recordErrors: Error[] = [];
    const audit = auditingPrivacyEventSink(() => trail, loggingPrivacyEventSink(logger), (err) => recordErrors.push(err));
    const policy = compilePseudonymPolicy({ fields: pz.fields, rules: pz.rules });
    const master = await resolvePseudonymizeKey(pz.key, { env: io.env, warn: (m) => logger.warn(m) });
    const { cp, startS, lengthS } = cryptoPanAt(master, pz.rotation, config.spool.epochSeconds, atMs);
    const fingerprint = Buffer.from(keyFingerprint(master)).toString('hex');
    master.fill(0);
    const real = reversePseudonym(policy, cp, pseudonym);
    try {
      if (db !== null) {
        db.pragma('busy_timeout = 5000');
        trail = new AuditTrail(db);
      } else {
        io.stderr.write(`sealflow reidentify: no spool database at ${dbPath}: this use is recorded in the log only, not in an audit trail\n`);
      }
    } catch (err) {
      recordErrors.push(err as Error);
    }
    audit({
      kind: 'pseudonym_key.reidentification',
      atMs: Date.now(),
      fingerprint,
      periodStartS: startS,
      periodLengthS: lengthS,
      pseudonym: ipToString(pseudonym),
      user: safeUser(),
      outcome: real === null ? 'not_a_pseudonym' : 'reidentified',
    });
    db?.close();
    logger.flush();
    await syslog?.close();
    if (recordErrors.length > 0) {
      io.stderr.write(`sealflow reidentify: could not record this use in the audit trail (${recordErrors[0]?.message ?? 'unknown error'}): not re-identified\n`);
      return ExitCode.Software;
    }
    if (real === null) {
      io.stderr.write(`sealflow reidentify: ${ipToString(pseudonym)} is not a pseudonym under privacy.pseudonymize (no pseudonymising rule contains it: it is stored in clear, or was never pseudonymised)\n`);
      return ExitCode.Failure;
    }
    io.stdout.write(`${ipToString(real)}\n`);
    return ExitCode.Ok;
  } catch (err) {
    io.stderr.write(`sealflow reidentify: ${(err as Error).message}\n`);
    return isSealflowError(err) && err.code.startsWith('ERR_CONFIG') ? ExitCode.Config : ExitCode.Software;
  }
};

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return `uid ${process.getuid?.() ?? -1}`;
  }
}

import { join } from 'node:path';
import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';
import { batchKeyStamp, decodeBatch } from '../batch/decoder.js';
import { stampText } from '../privacy/key-schedule.js';
import type { FlowRecord } from '../flow/flow-record.js';
import { toFusionRecord } from '../flow/fusion-record.js';
import { totalLost } from '../flow/loss.js';
import { LOSS_LEDGER_FILE, readLedgerFile, type LedgerRead } from '../observability/loss-ledger-file.js';
import type { Spool, SpoolStatus, VerifyFailure, VerifyReport } from '../spool/spool.js';
import { loadSpoolCommandConfig, openConfiguredSpool, SPOOL_KEY_HELP, SPOOL_LOCATION_ARGS, SPOOL_LOCATION_OPTIONS, spoolCommandExit } from './spool-access.js';

const HELP = `usage: sealflow spool <status|verify|export> [options]

  status                 batches, records, bytes, oldest age, epochs, quota use, and the
                         loss ledger: records and packets lost by reason (no flow data)
  verify                 checks every batch's tag, the hash chain, the anchor and the
                         high-water mark; lists gaps and tampering; exit 65 when anything fails
  export --format ndjson decrypts every batch and prints Fusion records as NDJSON on stdout
                         (nothing is written to disk); failing batches are listed on stderr,
                         and which pseudonymisation key (fingerprint, period) wrote which batches

options:
${SPOOL_LOCATION_OPTIONS}
  --json           status/verify: print JSON instead of text
  -h, --help

${SPOOL_KEY_HELP}
Exit codes: 0 ok, 64 usage, 65 verification failed, 66 no spool, 74 I/O, 78 key/config problem.
`;

/** Writes lines to a stream honouring backpressure. */
class LineWriter {
  private chunk: string[] = [];
  private size = 0;
  constructor(private readonly out: NodeJS.WritableStream) {}

  async line(s: string): Promise<void> {
    this.chunk.push(s);
    this.size += s.length + 1;
    if (this.size >= 64 * 1024) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.chunk.length === 0) return;
    const text = this.chunk.join('\n') + '\n';
    this.chunk = [];
    this.size = 0;
    if (!this.out.write(text)) await new Promise<void>((resolve) => this.out.once('drain', resolve));
  }
}

function jsonReplacer(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

function formatAge(ms: number | null): string {
  if (ms === null) return '-';
  const min = Math.floor(ms / 60_000);
  if (min < 60) return `${min} min`;
  const h = Math.floor(min / 60);
  return h < 48 ? `${h} h ${min % 60} min` : `${Math.floor(h / 24)} d ${h % 24} h`;
}

/** The loss ledger as `status --json` shows it: totals by reason since it was created, or why there are none. */
type LossSection = { readonly createdAt: string; readonly updatedAt: string; readonly records: Readonly<Record<string, number>>; readonly packets: Readonly<Record<string, number>> } | { readonly problem: string };

function lossSection(read: LedgerRead): LossSection {
  if (read.state === null) {
    const problem = {
      missing: `no loss ledger (${LOSS_LEDGER_FILE}) yet: \`sealflow run\` writes it`,
      damaged: `${LOSS_LEDGER_FILE} is damaged (both slots fail their check); the probe moves it aside at its next start`,
      unreadable: `${LOSS_LEDGER_FILE} cannot be read (${read.code ?? 'unknown'})`,
    }[read.problem];
    return { problem };
  }
  const { sinceMs, updatedMs, counts } = read.state;
  return { createdAt: new Date(sinceMs).toISOString(), updatedAt: new Date(updatedMs).toISOString(), records: counts.records, packets: counts.packets };
}

/** `  disk_full 320000, quota_eviction 40000` (non-zero reasons, largest first). */
function reasonsText(counts: Readonly<Record<string, number>>): string {
  const nonZero = Object.entries(counts).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  return nonZero.length === 0 ? '' : ` (${nonZero.map(([r, n]) => `${r} ${n}`).join(', ')})`;
}

function statusText(s: SpoolStatus, loss: LossSection): string {
  const parked = Object.entries(s.parkedByReason).map(([r, n]) => `${r || '(none)'}: ${n}`).join(', ');
  const lines = [
    `spool ${s.spoolId}`,
    `  batches         ${s.batches} (${s.records} records)`,
    `  bytes           ${s.bytes} of quota ${s.quotaBytes} (${(s.quotaUsed * 100).toFixed(1)}%), files ${s.fileBytes}`,
    `  oldest batch    ${formatAge(s.oldestAgeMs)} (minute resolution)${s.maxAgeMs === null ? ', no age limit' : `, limit ${formatAge(s.maxAgeMs)} (spool.maxAgeSeconds)${s.oldestAgeMs !== null && s.oldestAgeMs >= s.maxAgeMs ? ': OVER THE LIMIT, shredded at the next retention pass' : ''}`}`,
    `  key epochs      ${s.epochs} (shredded so far: ${s.shreddedEpochs})`,
    `  parked          ${s.parkedBatches} batches, ${s.parkedRecords} records${parked ? ` (${parked})` : ''}`,
    `  last batch id   ${s.lastBatchId}`,
  ];
  if ('problem' in loss) lines.push(`  lost            unknown: ${loss.problem}`);
  else {
    lines.push(`  records lost    ${totalLost(loss.records)}${reasonsText(loss.records)}`);
    lines.push(`  packets lost    ${totalLost(loss.packets)}${reasonsText(loss.packets)}`);
    lines.push(`                  (loss ledger since ${loss.createdAt}, updated ${loss.updatedAt})`);
  }
  if (s.rollback !== null) lines.push(`  ROLLBACK        database older than its high-water mark (expected id ≥ ${s.rollback.expectedAtLeast}, found ${s.rollback.found})`);
  return lines.join('\n') + '\n';
}

function verifyText(r: VerifyReport): string {
  const lines = [`verify: ${r.ok ? 'OK' : 'FAILED'} — ${r.verified}/${r.batches - r.tombstones} batches verified (${r.records} records), ${r.tombstones} acknowledged tombstones`];
  if (!r.anchorOk) lines.push('  chain anchor: MAC does not verify (batches removed from the front without the key)');
  for (const g of r.gaps) lines.push(`  gap: batch ${g.beforeId} follows batch ${g.expectedPrevId}, but the batch before it is ${g.afterId} (batches missing)`);
  for (const f of r.failures) if (f.id !== 0) lines.push(`  batch ${f.id}: ${f.reason}`);
  if (r.rollback !== null) lines.push(`  rollback: the database is older than its high-water mark (expected batch id ≥ ${r.rollback.expectedAtLeast}, found ${r.rollback.found}): an older copy was restored`);
  if (r.hwmProblem !== null) lines.push(`  high-water mark: ${r.hwmProblem}`);
  return lines.join('\n') + '\n';
}

export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs(
    'spool',
    HELP,
    argv,
    io,
    {
      ...SPOOL_LOCATION_ARGS,
      format: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const sub = positionals[0];
  if (positionals.length !== 1 || (sub !== 'status' && sub !== 'verify' && sub !== 'export')) {
    io.stderr.write(`sealflow spool: expected one of status, verify, export\n\n${HELP}`);
    return ExitCode.Usage;
  }
  if (sub === 'export' && values.format !== 'ndjson') {
    io.stderr.write('sealflow spool export: --format ndjson is required (the only export format)\n');
    return ExitCode.Usage;
  }
  let spool: Spool;
  let spoolDir: string;
  try {
    const loaded = await loadSpoolCommandConfig(values, io, false);
    spoolDir = loaded.config.spool.dir;
    spool = await openConfiguredSpool(loaded, io, { readOnly: true });
  } catch (err) {
    return spoolCommandExit('spool', io, err);
  }
  try {
    if (sub === 'status') {
      const s = spool.inspector.status();
      const loss = lossSection(readLedgerFile(join(spoolDir, LOSS_LEDGER_FILE)));
      io.stdout.write(values.json === true ? `${JSON.stringify({ ...s, loss })}\n` : statusText(s, loss));
      return ExitCode.Ok;
    }
    if (sub === 'verify') {
      const integrity = spool.inspector.integrityCheck();
      const r = spool.inspector.verify();
      const ok = r.ok && integrity === 'ok';
      if (values.json === true) io.stdout.write(`${JSON.stringify({ ...r, ok, integrityCheck: integrity })}\n`);
      else io.stdout.write(verifyText(r) + (integrity === 'ok' ? '' : `  sqlite integrity_check: ${integrity}\n`));
      return ok ? ExitCode.Ok : ExitCode.DataErr;
    }
    const out = new LineWriter(io.stdout);
    const failures: VerifyFailure[] = [];
    let n = 0;
    // Which pseudonymisation key wrote which batches (for `sealflow reidentify --at`), one line per run of batches.
    const keyRun = { text: '', first: 0, last: 0 };
    const reportKeyRun = (): void => {
      if (keyRun.text !== '') io.stderr.write(`sealflow spool export: batches ${keyRun.first}–${keyRun.last}: addresses ${keyRun.text}\n`);
    };
    for (const { id, batch } of spool.inspector.exportBatches((f) => failures.push(f))) {
      let records: FlowRecord[];
      try {
        const stamp = batchKeyStamp(batch);
        const text = stamp === null ? 'as decoded (not pseudonymised)' : `pseudonymised with ${stampText(stamp)}`;
        if (keyRun.text === text) keyRun.last = id;
        else {
          reportKeyRun();
          Object.assign(keyRun, { text, first: id, last: id });
        }
        records = decodeBatch(batch);
      } catch (err) {
        failures.push({ id, reason: `authenticated but undecodable: ${(err as Error).message}` });
        continue;
      }
      for (const record of records) {
        await out.line(JSON.stringify(toFusionRecord(record), jsonReplacer));
        n++;
      }
    }
    await out.flush();
    reportKeyRun();
    for (const f of failures) io.stderr.write(`sealflow spool export: batch ${f.id} skipped: ${f.reason}\n`);
    io.stderr.write(`sealflow spool export: ${n} records${failures.length > 0 ? `, ${failures.length} batches failed verification` : ''}\n`);
    return failures.length > 0 ? ExitCode.DataErr : ExitCode.Ok;
  } catch (err) {
    return spoolCommandExit('spool', io, err);
  } finally {
    spool.close();
  }
};

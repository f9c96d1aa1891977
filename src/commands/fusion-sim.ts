import { readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDevCertificate } from '../fusion-sim/dev-certificate.js';
import { DEFAULT_SIM_UPLOAD_PATH, startFusionSim, type FusionSimOptions } from '../fusion-sim/fusion-sim.js';
import { isSealflowError } from '../flow/errors.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const HELP = `usage: sealflow fusion-sim [options]

A local Fusion stand-in for tests and demos (DEVELOPMENT ONLY): HTTPS, the documented auth
flow (request JWT → bearer token), uploads at ${DEFAULT_SIM_UPLOAD_PATH} (gzip/none, NDJSON or JSON
array) validated against the flow record schema and deduplicated by Idempotency-Key. Records
are kept in memory only. Runs until SIGINT/SIGTERM.

options:
  --host ADDR              bind address (default 127.0.0.1)
  --port N                 TCP port (default 8443; 0 = any free port)
  --netosecret-file F      accept this netosecret (default: generate one and print it on stdout)
  --cert F --key F         server certificate and key (PEM); default: a generated self-signed one
  --ca-out F               where to write the generated certificate for clients to trust
                           (default: <tmp>/sealflow-fusion-sim-<port>.pem)
  --upload-path P          upload path (default ${DEFAULT_SIM_UPLOAD_PATH})
  --token-expires-in S     bearer token lifetime in seconds (default 3600)
  --print                  print every accepted record as NDJSON on stdout
  --validate MODE          all (default): every record against the schema; sample: every
                           64th; none: count NDJSON lines only (load tests)
  -h, --help

Faults on command (loopback only): curl --cacert CA -X POST https://HOST:PORT/_sim/fault \\
  -d '{"fault":{"kind":"status","status":503}}'   kinds: refuse, status (+retryAfter, count,
  after), slow (delayMs), reset-mid-body, reset-after-body, expire-tokens, reject-auth;
  '{"fault":null}' clears. GET /_sim/stats shows the counters.
`;

/** Default port: 8443 is the conventional alternative HTTPS port. */
const DEFAULT_PORT = 8443;

export const main: CommandMain = async (argv, io: CommandIo) => {
  const parsed = parseCommandArgs('fusion-sim', HELP, argv, io, {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    'netosecret-file': { type: 'string' },
    cert: { type: 'string' },
    key: { type: 'string' },
    'ca-out': { type: 'string' },
    'upload-path': { type: 'string' },
    'token-expires-in': { type: 'string' },
    print: { type: 'boolean', default: false },
    validate: { type: 'string', default: 'all' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const port = values.port === undefined ? DEFAULT_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.stderr.write('sealflow fusion-sim: --port wants 0–65535\n');
    return ExitCode.Usage;
  }
  const expiresIn = values['token-expires-in'] === undefined ? 3600 : Number(values['token-expires-in']);
  if (!Number.isInteger(expiresIn) || expiresIn < 1) {
    io.stderr.write('sealflow fusion-sim: --token-expires-in wants a positive number of seconds\n');
    return ExitCode.Usage;
  }
  if ((values.cert === undefined) !== (values.key === undefined)) {
    io.stderr.write('sealflow fusion-sim: give both --cert and --key, or neither\n');
    return ExitCode.Usage;
  }
  const validate = values.validate;
  if (validate !== 'all' && validate !== 'sample' && validate !== 'none') {
    io.stderr.write('sealflow fusion-sim: --validate wants all, sample or none\n');
    return ExitCode.Usage;
  }
  const uploadPath = values['upload-path'] ?? DEFAULT_SIM_UPLOAD_PATH;
  if (!uploadPath.startsWith('/')) {
    io.stderr.write('sealflow fusion-sim: --upload-path must start with /\n');
    return ExitCode.Usage;
  }

  try {
    let certPem: string;
    let keyPem: string;
    let generated = false;
    if (values.cert !== undefined && values.key !== undefined) {
      certPem = await readFile(values.cert, 'utf8');
      keyPem = await readFile(values.key, 'utf8');
    } else {
      const dev = await createDevCertificate(values.host === '127.0.0.1' || values.host === '::1' ? [] : [values.host]);
      certPem = dev.certPem;
      keyPem = dev.keyPem;
      generated = true;
    }
    const netosecret = values['netosecret-file'] === undefined ? undefined : (await readFile(values['netosecret-file'], 'utf8')).trim();
    const options: FusionSimOptions = {
      host: values.host,
      port,
      certPem,
      keyPem,
      uploadPath,
      tokenExpiresInSec: expiresIn,
      validate,
      // Counted, not kept: a long-running stand-in must not grow without bound.
      keepRecords: false,
      ...(netosecret === undefined ? {} : { netosecret }),
      ...(values.print ? { onRecord: (r: Record<string, unknown>) => io.stdout.write(JSON.stringify(r) + '\n') } : {}),
    };
    const sim = await startFusionSim(options);
    let caOut: string | null = null;
    if (generated) {
      caOut = values['ca-out'] ?? join(tmpdir(), `sealflow-fusion-sim-${sim.port}.pem`);
      // The certificate is public; its key stays in this process's memory.
      await writeFile(caOut, certPem, { mode: 0o644 });
    }
    io.stderr.write(
      [
        '',
        '  *** sealflow fusion-sim: DEVELOPMENT ONLY — not Fusion, keeps records in memory ***',
        `  listening     ${sim.url}`,
        `  upload URL    ${sim.uploadUrl}   (drain.fusion.uploadUrl)`,
        ...(caOut === null ? [] : [`  certificate   ${caOut}   (drain.fusion.caFile; self-signed, generated now)`]),
        ...(netosecret === undefined ? ['  netosecret    generated for this run, printed on stdout (a throwaway dev key)'] : ['  netosecret    from --netosecret-file']),
        '',
      ].join('\n') + '\n',
    );
    // Printing a secret is acceptable only here: a generated throwaway key of a dev tool.
    if (netosecret === undefined) io.stdout.write(`SEALFLOW_FUSION_NETOSECRET=${sim.netosecret}\n`);

    await new Promise<void>((resolve) => {
      const stop = (): void => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        resolve();
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    await sim.close();
    const s = sim.stats;
    io.stderr.write(`fusion-sim: ${s.recordsAccepted} records in ${s.uploadsAccepted} uploads, ${s.duplicates} duplicates, ${s.badRequests} bad requests, ${s.tokensIssued} tokens, ${s.authRejected} auth rejections\n`);
    return ExitCode.Ok;
  } catch (err) {
    if (isSealflowError(err)) {
      io.stderr.write(`sealflow fusion-sim: ${err.message}\n`);
      return err.code.startsWith('ERR_CONFIG') ? ExitCode.Config : ExitCode.Failure;
    }
    const e = err as NodeJS.ErrnoException;
    if (typeof e.code === 'string') {
      io.stderr.write(`sealflow fusion-sim: ${e.code}: ${e.message}\n`);
      return e.code === 'EADDRINUSE' || e.code === 'EACCES' ? ExitCode.IoErr : ExitCode.Failure;
    }
    throw err;
  }
};

import { request } from 'node:http';
import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const HELP = `usage: sealflow health [--url URL] [--timeout-ms N]

Asks a running probe's admin endpoint for /healthz (the container HEALTHCHECK uses this,
since the distroless image has no curl). Exit 0 when healthy, 1 otherwise.
  --url URL        admin endpoint (default http://127.0.0.1:9180, or $SEALFLOW_ADMIN_URL)
  --timeout-ms N   give up after N ms (default 3000)
An admin bearer token is read from $SEALFLOW_ADMIN_TOKEN or the file in $SEALFLOW_ADMIN_TOKEN_FILE.
`;

export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs('health', HELP, argv, io, { url: { type: 'string' }, 'timeout-ms': { type: 'string' }, help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const base = values.url ?? io.env.SEALFLOW_ADMIN_URL ?? 'http://127.0.0.1:9180';
  const timeoutMs = Number(values['timeout-ms'] ?? '3000');
  let token = io.env.SEALFLOW_ADMIN_TOKEN;
  const tokenFile = io.env.SEALFLOW_ADMIN_TOKEN_FILE;
  if (token === undefined && tokenFile !== undefined) {
    const { readFile } = await import('node:fs/promises');
    token = (await readFile(tokenFile, 'utf8')).trim();
  }
  const url = new URL('/healthz', base);
  const status = await new Promise<number>((resolve) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs, headers: token ? { authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
    req.end();
  });
  if (status === 200) {
    io.stdout.write('healthy\n');
    return ExitCode.Ok;
  }
  io.stderr.write(`sealflow health: ${url.origin} answered ${status === 0 ? 'nothing (not running?)' : `HTTP ${status}`}\n`);
  return ExitCode.Failure;
};

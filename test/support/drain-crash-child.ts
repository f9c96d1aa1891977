/**
 * Child process of the drain crash test: drains a real spool into the stand-in until it is
 * killed. Configuration comes from the environment (the KEK and netosecret are throwaway test
 * values). Prints "draining" once the drain runs.
 */
import { readFileSync } from 'node:fs';
import { Spool } from '../../src/spool/spool.js';
import { Drain, resolveDrainSettings } from '../../src/drain/drain.js';
import { parseNetosecret } from '../../src/drain/netosecret.js';

const env = process.env;
const need = (k: string): string => {
  const v = env[k];
  if (v === undefined) throw new Error(`missing ${k}`);
  return v;
};
const spool = await Spool.open({ dir: need('CRASH_SPOOL_DIR'), kek: new Uint8Array(Buffer.from(need('CRASH_KEK'), 'base64')), synchronous: 'normal' });
const drain = new Drain({
  source: spool.reader,
  credentials: parseNetosecret(need('CRASH_NETOSECRET'), 'CRASH_NETOSECRET'),
  settings: resolveDrainSettings({
    uploadUrl: need('CRASH_UPLOAD_URL'),
    concurrency: 2,
    uploadWorkers: 0,
    tls: { caPem: readFileSync(need('CRASH_CA_FILE'), 'utf8') },
    backoff: { baseMs: 20, capMs: 200 },
    idlePollMs: 20,
  }),
});
drain.start();
process.stdout.write('draining\n');

/**
 * `npm run bench [-- NAME ...]`: runs the benchmarks and prints their figures. Each bench/NAME.ts
 * exports `run(): Promise<void>`. Speed and memory targets live here, never in unit tests.
 *   decode    records/s decoding IPFIX (15-field IPv4 template) on one core
 *   spool     serialize / compress / encrypt / append rates, bytes per record, RSS
 *   udp-load  raw UDP listener receive rate
 *   pipeline  whole ingest path: UDP load → listener → worker decode → batch → encrypt → SQLite
 *   tls       IPFIX over TLS ingest, 1 and several connections
 *   dtls      IPFIX over DTLS ingest, 1 and 8 sessions
 *   drain     spool → Fusion stand-in over HTTPS with gzip
 *   privacy   pseudonymisation cost per address on the ingest worker (policy off/on)
 */
import { existsSync } from 'node:fs';

const ORDER = ['decode', 'spool', 'udp-load', 'pipeline', 'tls', 'dtls', 'drain', 'privacy'] as const;

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : [...ORDER];
let failed = false;
for (const name of names) {
  const url = new URL(`./${name}.ts`, import.meta.url);
  if (!existsSync(url)) {
    console.log(`\n== ${name}: no benchmark file bench/${name}.ts`);
    failed = true;
    continue;
  }
  console.log(`\n== ${name}`);
  const mod = (await import(url.href)) as { run?: () => Promise<void> };
  if (typeof mod.run !== 'function') {
    console.log(`bench/${name}.ts does not export run()`);
    failed = true;
    continue;
  }
  try {
    await mod.run();
  } catch (err) {
    failed = true;
    console.log(`${name} failed: ${(err as Error).stack ?? String(err)}`);
  }
}
process.exitCode = failed ? 1 : 0;

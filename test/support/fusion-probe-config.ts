/**
 * A `sealflow run` configuration for end-to-end tests that drain to a real Fusion stand-in:
 * one UDP listener on a free loopback port, a fresh KEK and the stand-in's netosecret in
 * files (0600) under `dir`, the admin endpoint on a free port, no stats line.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import type { FusionSim } from '../../src/fusion-sim/fusion-sim.js';
import { freeTcpPort, freeUdpPort } from './probe.js';

export interface FusionProbeConfig {
  /** The YAML file to pass as `--config`. */
  readonly file: string;
  readonly udpPort: number;
  readonly adminPort: number;
}

export async function fusionProbeConfig(
  dir: string,
  sim: FusionSim,
  drain: { readonly caFile: string; readonly retry: { readonly initialDelayMs: number; readonly maxDelayMs: number } },
): Promise<FusionProbeConfig> {
  writeFileSync(path.join(dir, 'kek'), randomBytes(32).toString('base64'), { mode: 0o600 });
  writeFileSync(path.join(dir, 'netosecret'), sim.netosecret, { mode: 0o600 });
  const udpPort = await freeUdpPort();
  const adminPort = await freeTcpPort();
  const config = {
    dataDir: path.join(dir, 'data'),
    log: { level: 'info', format: 'json' },
    listeners: { allowlist: ['127.0.0.1'], udp: [{ name: 'flows', address: '127.0.0.1', port: udpPort, receiveBufferBytes: 4 * 1024 * 1024 }] },
    spool: { kek: { file: path.join(dir, 'kek') }, batch: { maxAgeMs: 200 } },
    drain: { fusion: { uploadUrl: sim.uploadUrl, caFile: drain.caFile, netosecret: { file: path.join(dir, 'netosecret') } }, retry: drain.retry },
    admin: { port: adminPort },
    stats: { intervalSeconds: 0 },
  };
  const file = path.join(dir, 'sealflow.yaml');
  writeFileSync(file, stringify(config));
  return { file, udpPort, adminPort };
}

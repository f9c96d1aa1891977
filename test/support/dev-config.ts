/** The embedded development configuration (dev PKI, dev key, Fusion stand-in) as a file with free ports, so a test can run beside the `npm start` test, which owns the fixed ones. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { embeddedDefaults } from '../../src/config/embedded-defaults.js';
import { freeTcpPort, freeUdpPort } from './probe.js';

export async function devConfigFile(dir: string, adminPort: number, statsIntervalSeconds: number): Promise<string> {
  const c = embeddedDefaults(dir) as { listeners: { udp: { port: number }[]; tls: { port: number }; dtls: { port: number } }; admin: Record<string, unknown>; stats: Record<string, unknown> };
  for (const u of c.listeners.udp) u.port = await freeUdpPort();
  c.listeners.tls.port = await freeTcpPort();
  c.listeners.dtls.port = await freeUdpPort();
  c.admin.port = adminPort;
  c.stats.intervalSeconds = statsIntervalSeconds;
  const file = path.join(dir, 'sealflow.yaml');
  writeFileSync(file, stringify(c));
  return file;
}

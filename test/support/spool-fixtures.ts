/**
 * Record builders shared by the spool tests, the crash child and bench/spool.ts: realistic
 * IPv4 flow records (15 fields set) and edge-case records (IPv6, counters beyond 2^53, nulls).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { newFlowRecord, type FlowRecord } from '../../src/flow/flow-record.js';

/** Deterministic PRNG (mulberry32) so failures reproduce from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A typical IPFIX-derived IPv4 record with the 15 fields of bench/decode.ts's template:
 * addresses, ports, protocol, tos, TCP flags, interfaces, 64-bit counters, millisecond times,
 * next hop and source mask. Addresses come from a few subnets, as on a real edge router.
 */
export function ipv4Record(rand: () => number, i: number, baseSec = 1_763_800_000): FlowRecord {
  const r = newFlowRecord('netflow', 10, 'udp', '192.0.2.10', null, 1, baseSec + (i >> 10));
  r.ipVersion = 4;
  r.srcAddr = (0x0a000000 + Math.floor(rand() * 0xffff)) >>> 0;
  r.dstAddr = (0xc6336400 + Math.floor(rand() * 0xff)) >>> 0;
  r.srcPort = 1024 + Math.floor(rand() * 60000);
  r.dstPort = [443, 80, 53, 22, 123][Math.floor(rand() * 5)] ?? 443;
  r.protocol = rand() < 0.8 ? 6 : 17;
  r.tos = rand() < 0.9 ? 0 : 0xb8;
  r.tcpFlags = r.protocol === 6 ? 0x1b : 0;
  r.inputIf = 1 + Math.floor(rand() * 8);
  r.outputIf = 1 + Math.floor(rand() * 8);
  r.octets = 40 + Math.floor(rand() * 1_500_000);
  r.packets = 1 + Math.floor(rand() * 1000);
  r.startMs = (baseSec + (i >> 10)) * 1000 - Math.floor(rand() * 60_000);
  r.endMs = r.startMs + Math.floor(rand() * 30_000);
  r.nextHop = 0xc0000201 + Math.floor(rand() * 4);
  r.srcMask = 24;
  return r;
}

export function ipv4Records(n: number, seed = 1): FlowRecord[] {
  const rand = prng(seed);
  const out: FlowRecord[] = [];
  for (let i = 0; i < n; i++) out.push(ipv4Record(rand, i));
  return out;
}

export function v6(text: string): Uint8Array {
  const groups = text.split(':');
  const out = new Uint8Array(16);
  // Only full (uncompressed) notation here: tests spell addresses out.
  groups.forEach((g, i) => {
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

/** Records exercising every representation: IPv6, bigint counters, nulls, identities, odd numbers. */
export function edgeRecords(): FlowRecord[] {
  const a = newFlowRecord('netflow', 10, 'tls', 'exporter-a.example', 'CN=router-a', 4294967295, 1_763_800_123);
  a.ipVersion = 6;
  a.srcAddr = v6('2001:0db8:0000:0000:0000:0000:0000:0001');
  a.dstAddr = v6('fe80:0000:0000:0000:0202:b3ff:fe1e:8329');
  a.nextHop = v6('2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff');
  a.bgpNextHop = 0xffffffff;
  a.octets = 18446744073709551615n;
  a.packets = 9007199254740993n;
  a.srcPort = 0;
  a.dstPort = 65535;
  a.protocol = 58;
  a.icmpType = 128;
  a.icmpCode = 0;
  a.startMs = 1_763_800_000_123;
  a.endMs = 1_763_800_000_999;
  a.uptimeMs = 4_294_967_295_000;
  a.samplingInterval = 1000;
  a.srcVlan = 4095;
  a.dstVlan = 0;
  a.srcMask = 128;
  a.dstMask = 64;
  a.tos = 0xb8;
  a.tcpFlags = 0x1ff;
  a.srcAs = 4294967295;
  a.dstAs = 0;
  a.inputIf = 2147483648;
  a.outputIf = 0;
  const b = newFlowRecord('sflow', 5, 'udp', 'ünïcode-exporter', null, 0, 0);
  b.octets = Number.MAX_SAFE_INTEGER;
  b.packets = 0n;
  b.samplingInterval = 0.5;
  b.startMs = -1;
  b.endMs = 1.25;
  const c = newFlowRecord('netflow', 5, 'file', '', 'CN=x', 256, 2 ** 40);
  c.srcAddr = 0;
  c.dstAddr = 0x7f000001;
  c.octets = 2 ** 53;
  c.packets = 18446744073709551615n;
  c.uptimeMs = -0;
  return [a, b, c];
}


export const repoRoot = resolve(fileURLToPath(new URL('../..', import.meta.url)));

/** A fresh temp directory and its removal. */
export function tempDir(prefix = 'sealflow-spool-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A deterministic test KEK (never a real one). */
export function testKek(fill: number): Uint8Array {
  return new Uint8Array(32).fill(fill);
}

export function kekBase64(kek: Uint8Array): string {
  return Buffer.from(kek).toString('base64');
}

/**
 * Canary flows for the no-plaintext-at-rest test: unmistakable addresses, ports and exporter
 * name that must never be found on disk or in logs in any encoding.
 */
export const CANARY = {
  srcV4: 0xcb00714d, // 203.0.113.77
  srcV4Text: '203.0.113.77',
  dstV6Text: '2001:db8:c0ff:ee00:dead:beef:cafe:f00d',
  dstV6: v6('2001:0db8:c0ff:ee00:dead:beef:cafe:f00d'),
  srcPort: 47123,
  dstPort: 31337,
  exporter: 'canary-exporter-7f3a9e',
} as const;

export function canaryRecords(n: number): FlowRecord[] {
  const out: FlowRecord[] = [];
  for (let i = 0; i < n; i++) {
    const r = newFlowRecord('netflow', 10, 'udp', CANARY.exporter, null, 1, 1_763_800_000 + i);
    r.ipVersion = i % 2 === 0 ? 4 : 6;
    r.srcAddr = i % 2 === 0 ? CANARY.srcV4 : CANARY.dstV6;
    r.dstAddr = i % 2 === 0 ? CANARY.srcV4 : CANARY.dstV6;
    r.srcPort = CANARY.srcPort;
    r.dstPort = CANARY.dstPort;
    r.protocol = 6;
    r.octets = 1000 + i;
    r.packets = 3;
    out.push(r);
  }
  return out;
}

/** Runs the sealflow CLI from source in a child process (the real entry point, real exit code). */
export function runSealflow(args: readonly string[], env: Readonly<Record<string, string>> = {}, input?: string): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(repoRoot, 'src/main.ts'), ...args], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
    maxBuffer: 256 * 1024 * 1024,
    ...(input !== undefined ? { input } : {}),
  });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

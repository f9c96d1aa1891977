/**
 * Debian's softflowd as a real exporter in tests: it replays a pcap and exports the flows it
 * builds as NetFlow v5, v9 or IPFIX to a UDP port on loopback, then exits at end of file.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { corpora } from './corpora.js';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export { corpora };

export type { TruthFlow } from './traffic-truth.js';

export function haveSoftflowd(): boolean {
  return spawnSync('softflowd', ['-h'], { stdio: 'ignore' }).error === undefined;
}

/**
 * Skips the test when an external tool is missing, except in CI (CI=true), where
 * .ci/install-deps must have installed it and its absence is a failure.
 */
export function requireTool(t: TestContext, present: boolean, what: string): boolean {
  if (present) return true;
  if (process.env.CI !== undefined) assert.fail(`${what} is required in CI (.ci/install-deps installs it)`);
  t.skip(`${what} is not installed`);
  return false;
}

/** Replays `pcap` (default traffic.pcap) through softflowd to 127.0.0.1:port (with `extraArgs`, e.g. `-b` for biflows); resolves when it exits 0. */
export async function softflowdReplay(port: number, version: '5' | '9' | '10' | 'psamp', pcap = path.join(corpora, 'synthetic/traffic.pcap'), extraArgs: readonly string[] = []): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-softflowd-'));
  try {
    // softflowd 1.1.0 silently reads nothing from a long -r path: run it in the directory.
    copyFileSync(pcap, path.join(dir, 't.pcap'));
    const child = spawn('softflowd', ['-d', '-r', 't.pcap', '-n', `127.0.0.1:${port}`, '-v', version, '-c', 'c.ctl', '-p', 'p.pid', ...extraArgs], { cwd: dir, stdio: 'ignore' });
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill();
        reject(new Error('softflowd did not exit after the end of the capture'));
      }, 15_000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    assert.equal(code, 0, 'softflowd exit status');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

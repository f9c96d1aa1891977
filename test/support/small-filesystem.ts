/**
 * A small real filesystem for disk-full tests: a tmpfs of a few MiB mounted on a fresh
 * directory (root only; the test skips with the reason otherwise), removed at the end. ENOSPC
 * comes from the kernel exactly as on a full disk: SQLite sees SQLITE_FULL, other writes ENOSPC.
 * `fill()` takes the remaining space with a ballast file and `free()` gives it back, so a test
 * can make the disk full at the step it means to test.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestContext } from 'node:test';

export interface SmallFilesystem {
  readonly dir: string;
  /** Bytes free now. */
  available(): number;
  /** Writes a ballast file until the filesystem is full (ENOSPC), leaving `leaveBytes` free at most. */
  fill(leaveBytes?: number): void;
  /** Removes the ballast. */
  free(): void;
  /** Unmounts and removes the mount point. Idempotent. */
  remove(): void;
}

const BALLAST = '.ballast';
const CHUNK = 4096;

/** Skips the test saying why (fails it in CI, which runs as root and must run it). */
function unavailable(t: TestContext, why: string): null {
  if (process.env.CI !== undefined) assert.fail(`${why}: CI runs the disk-full tests as root`);
  t.skip(why);
  return null;
}

/** Mounts a tmpfs of `bytes` (rounded up to pages by the kernel), or skips the test saying why and returns null. */
export function smallFilesystem(t: TestContext, bytes: number): SmallFilesystem | null {
  if (process.getuid?.() !== 0) return unavailable(t, 'needs root to mount a small tmpfs');
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-smallfs-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes},mode=0700`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return unavailable(t, `cannot mount a tmpfs here: ${(r.stderr || r.error?.message || '').trim()}`);
  }
  let mounted = true;
  const ballast = path.join(dir, BALLAST);
  return {
    dir,
    available: () => {
      const s = statfsSync(dir);
      return s.bavail * s.bsize;
    },
    fill: (leaveBytes = 0) => {
      const fd = openSync(ballast, 'a');
      const chunk = Buffer.alloc(CHUNK, 0xa5);
      try {
        for (;;) {
          const s = statfsSync(dir);
          if (s.bavail * s.bsize <= leaveBytes) break;
          writeSync(fd, chunk);
        }
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      } finally {
        closeSync(fd);
      }
    },
    free: () => rmSync(ballast, { force: true }),
    remove: () => {
      if (!mounted) return;
      mounted = false;
      const u = spawnSync('umount', [dir], { encoding: 'utf8' });
      if (u.status !== 0) spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

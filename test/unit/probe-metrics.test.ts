import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { buildInfo, SEALFLOW_VERSION } from '../../src/observability/build-info.js';
import { F } from '../../src/observability/probe-metrics.js';
import { readableTimes, timeToEmptySeconds } from '../../src/observability/stats-document.js';
import { repoRoot } from '../support/softflowd.js';

test('the version in sealflow_build_info is package.json\'s', () => {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  assert.equal(SEALFLOW_VERSION, pkg.version);
  assert.equal(buildInfo().openssl, process.versions.openssl);
});

test('every family is declared once', () => {
  const names = Object.values(F).map((f) => f.name);
  assert.equal(new Set(names).size, names.length);
});

test('/stats times: instants as ISO 8601, durations in seconds, nulls kept', () => {
  const at = Date.UTC(2026, 0, 2, 3, 4, 5, 600);
  assert.deepEqual(readableTimes({ lastSeenMs: at, drain: { lastSuccessAtMs: null, backoffRemainingMs: 1500, retries: { tls: 2 } }, list: [{ oldestAgeMs: 250 }] }), {
    lastSeen: '2026-01-02T03:04:05.600Z',
    drain: { lastSuccessAt: null, backoffRemainingSeconds: 1.5, retries: { tls: 2 } },
    list: [{ oldestAgeSeconds: 0.25 }],
  });
});

test('time to empty: 0 when empty, unknown while nothing is delivered', () => {
  assert.equal(timeToEmptySeconds(0, 0), 0);
  assert.equal(timeToEmptySeconds(1000, 0), null);
  assert.equal(timeToEmptySeconds(1000, 40), 25);
});

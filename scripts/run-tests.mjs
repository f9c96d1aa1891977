#!/usr/bin/env node
// Runs the test suite with node:test through tsx, listing every test file explicitly:
// on Node 20, `tsx --test` with no file arguments runs zero tests and exits 0, so an empty
// or mistyped selection must fail here instead of passing silently.
//
// Usage: node scripts/run-tests.mjs [GROUP|FILE ...]   (GROUP: unit, integration, e2e, fuzz)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const testRoot = join(root, 'test');

/** @param {string} dir @returns {string[]} */
function findTests(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...findTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
let files = [];
if (args.length === 0) {
  files = findTests(testRoot);
} else {
  for (const arg of args) {
    if (arg.endsWith('.ts')) files.push(join(root, arg));
    else files.push(...findTests(join(testRoot, arg)));
  }
}
if (files.length === 0) {
  console.error(`run-tests: no test files found for ${args.length ? args.join(' ') : 'test/'}; refusing to report success`);
  process.exit(1);
}
console.error(`run-tests: ${files.length} test files`);
const concurrency = process.env.SEALFLOW_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-timeout=600000', ...files.map((f) => relative(root, f))],
  { cwd: root, stdio: 'inherit' },
);
process.exit(result.status ?? 1);

/**
 * The repository is self-contained: a clone passes its tests with nothing beside it. `.ci/run`
 * proves that by running the suite from a fresh clone in a temporary directory; this test
 * catches a new reference to a folder outside the repository before CI does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { corpora } from '../support/corpora.js';

const repoRoot = path.resolve(import.meta.dirname, '../..');
/** A sibling folder named shared (where the captures were gathered), relative or absolute. */
const OUTSIDE = /\.\.\/shared\b|\/work\/shared\b/;
/** This file and .ci/run name that folder to check that it is not used. */
const CHECKERS = new Set(['test/unit/repo-self-contained.test.ts', '.ci/run']);

test('no tracked file refers to a folder outside the repository', (t) => {
  const ls = spawnSync('git', ['ls-files', '-z'], { cwd: repoRoot, encoding: 'utf8' });
  if (ls.status !== 0) {
    t.skip('not a git checkout');
    return;
  }
  const files = ls.stdout.split('\0').filter((f) => f !== '' && !f.startsWith('test/fixtures/corpora/') && !CHECKERS.has(f));
  assert.ok(files.length > 100, `git ls-files listed ${String(files.length)} files`);
  const offenders = files.filter((f) => {
    const text = readFileSync(path.join(repoRoot, f));
    return !text.includes(0) && OUTSIDE.test(text.toString('utf8'));
  });
  assert.deepEqual(offenders, []);
});

test('the corpora and IE definitions the tests and the generator read are in the repository', () => {
  assert.equal(corpora, path.join(repoRoot, 'test/fixtures/corpora'));
  for (const f of ['manifest.tsv', 'expected.json', 'synthetic/traffic.pcap', 'synthetic/traffic_truth.json']) readFileSync(path.join(corpora, f));
  for (const dir of ['goflow2', 'ipfixcol2', 'logstash-codec-netflow', 'logstash-codec-sflow', 'synthetic']) {
    assert.match(readFileSync(path.join(corpora, dir, 'LICENSE'), 'utf8'), /licen[cs]e|CC0/i, `${dir}/LICENSE`);
  }
  assert.match(readFileSync(path.join(repoRoot, 'scripts/information-elements/LICENSE-libfds'), 'utf8'), /CESNET/);
});

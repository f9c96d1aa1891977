import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CompressionLevel } from '../../src/drain/compression-level.js';

test('compression-bound batches step the gzip level down to 1, one step per decision', () => {
  const c = new CompressionLevel(6, true);
  assert.equal(c.level, 6, 'starts at the configured level');
  const seen: number[] = [];
  // Loopback or a fast link: requests take a third of the compression time.
  for (let i = 0; i < 10; i++) {
    c.observe(30, 10);
    seen.push(c.level);
  }
  // Two observations per decision: 6, 3 after the second, 1 after the fourth.
  assert.deepEqual(seen.slice(0, 5), [6, 3, 3, 1, 1]);
  assert.equal(c.level, 1);
});

test('network-bound batches step back up, never above the configured level', () => {
  const c = new CompressionLevel(6, true);
  for (let i = 0; i < 5; i++) c.observe(30, 10);
  assert.equal(c.level, 1);
  // A slow uplink (or a rate cap): requests take 20× the compression time.
  for (let i = 0; i < 10; i++) c.observe(10, 200);
  assert.equal(c.level, 6);
  const nine = new CompressionLevel(9, true);
  for (let i = 0; i < 10; i++) nine.observe(10, 500);
  assert.equal(nine.level, 9);
});

test('between the thresholds the level holds (no oscillation); smoothing ignores a single outlier', () => {
  const c = new CompressionLevel(6, true);
  for (let i = 0; i < 20; i++) c.observe(10, 25);
  assert.equal(c.level, 6, 'ratio 2.5 sits between the thresholds');
  c.observe(10, 30);
  c.observe(10, 5); // one quick request: smoothed ratio 0.7·3 + 0.3·0.5 > 1
  assert.equal(c.level, 6);
  // Moderately network-bound at level 1: one step up to 3 costs ~10 % more CPU, so a ratio
  // of 2.5 takes it; 3 → 6 would double the CPU and needs a ratio above 4.
  const low = new CompressionLevel(6, true);
  for (let i = 0; i < 10; i++) low.observe(30, 1);
  assert.equal(low.level, 1);
  for (let i = 0; i < 10; i++) low.observe(10, 25);
  assert.equal(low.level, 3);
  // At level 3 the same link shows about the same ratio, below the bar for 6: it stays.
  for (let i = 0; i < 10; i++) low.observe(11, 25);
  assert.equal(low.level, 3);
});

test('fixed when not adaptive; odd ceilings are kept; meaningless observations are ignored', () => {
  const fixed = new CompressionLevel(6, false);
  for (let i = 0; i < 10; i++) fixed.observe(30, 1);
  assert.equal(fixed.level, 6);
  const two = new CompressionLevel(2, true);
  assert.equal(two.level, 2);
  two.observe(30, 1);
  assert.equal(two.level, 2, 'one observation decides nothing');
  for (let i = 0; i < 5; i++) two.observe(30, 1);
  assert.equal(two.level, 1);
  for (let i = 0; i < 5; i++) two.observe(1, 100);
  assert.equal(two.level, 2);
  const one = new CompressionLevel(1, true);
  one.observe(30, 1);
  assert.equal(one.level, 1);
  const c = new CompressionLevel(6, true);
  for (const [cm, nm] of [[0, 0], [0.1, 100], [Number.NaN, 1], [10, Number.NaN], [10, -5]] as const) c.observe(cm, nm);
  assert.equal(c.level, 6);
});

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { OverloadGauge } from '../../src/ingest-worker/overload.js';

test('overload gauge: enters above the high threshold, leaves below the low one, reports transitions only', () => {
  const changes: [boolean, number][] = [];
  const g = new OverloadGauge(250, 50, (on, lag) => changes.push([on, lag]));
  for (const lag of [3, 5, 249, 250, 120]) g.observe(lag);
  assert.equal(g.overloaded, false, 'at or below the enter threshold nothing changes');
  g.observe(251);
  assert.equal(g.overloaded, true);
  for (const lag of [900, 300, 120, 50]) g.observe(lag);
  assert.equal(g.overloaded, true, 'stays on until the lag is below the leave threshold (hysteresis)');
  g.observe(49);
  assert.equal(g.overloaded, false);
  g.observe(10);
  assert.deepEqual(changes, [
    [true, 251],
    [false, 49],
  ]);
  assert.throws(() => new OverloadGauge(50, 50, () => undefined), RangeError);
});

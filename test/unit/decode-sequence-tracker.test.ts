import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { FLOW_SEQUENCE_OPTIONS, newSequenceState, PACKET_SEQUENCE_OPTIONS, SequenceTracker } from '../../src/decode/template/sequence-tracker.js';

describe('SequenceTracker', () => {
  const tracker = new SequenceTracker({ maxGap: 1000, reorderWindow: 10 });

  test('first packet sets the baseline; in-order packets lose nothing', () => {
    const s = newSequenceState();
    assert.equal(tracker.observe(s, 500, 3), 0);
    assert.equal(tracker.observe(s, 503, 3), 0);
    assert.equal(s.expected, 506);
    assert.equal(s.lost, 0);
  });

  test('a forward gap counts lost units', () => {
    const s = newSequenceState();
    tracker.observe(s, 0, 10);
    assert.equal(tracker.observe(s, 25, 10), 15);
    assert.equal(s.lost, 15);
  });

  test('wraps modulo 2^32', () => {
    const s = newSequenceState();
    tracker.observe(s, 0xfffffffe, 1);
    assert.equal(tracker.observe(s, 0xffffffff, 1), 0);
    assert.equal(tracker.observe(s, 2, 1), 2, '0 and 1 missing across the wrap');
  });

  test('late packets are reordered, not loss, and do not move the baseline', () => {
    const s = newSequenceState();
    tracker.observe(s, 100, 1);
    tracker.observe(s, 103, 1); // 101, 102 missing
    assert.equal(tracker.observe(s, 101, 1), 0);
    assert.equal(s.reordered, 1);
    assert.equal(tracker.observe(s, 104, 1), 0);
    assert.equal(s.lost, 2);
  });

  test('a lone wild jump is held; the old stream continues unharmed', () => {
    const s = newSequenceState();
    tracker.observe(s, 10, 1);
    assert.equal(tracker.observe(s, 0x90000000, 1), 0);
    assert.equal(s.jumps, 1);
    assert.equal(s.expected, 11);
    assert.equal(tracker.observe(s, 11, 1), 0);
    assert.equal(s.candidate, -1);
    assert.equal(tracker.observe(s, 13, 1), 1);
  });

  test('a jump confirmed by a second consistent packet resynchronises', () => {
    const s = newSequenceState();
    tracker.observe(s, 10, 1);
    tracker.observe(s, 50_000, 5);
    assert.equal(tracker.observe(s, 50_005, 5), 0);
    assert.equal(s.resyncs, 1);
    assert.equal(tracker.observe(s, 50_012, 1), 2);
  });

  test('an exporter restart to 0 is recognised when the next packet continues from it', () => {
    const s = newSequenceState();
    tracker.observe(s, 0, 59);
    tracker.observe(s, 59, 0);
    assert.equal(tracker.observe(s, 0, 60), 0); // looks late at first
    assert.equal(tracker.observe(s, 60, 60), 0, 'continues from the restart: no loss');
    assert.equal(s.lost, 0);
  });

  test('an unknown increment makes the next packet a fresh baseline', () => {
    const s = newSequenceState();
    tracker.observe(s, 0, 0, false);
    assert.equal(tracker.observe(s, 500, 1), 0);
    assert.equal(tracker.observe(s, 502, 1), 1);
  });

  test('preset options for packets and flows', () => {
    assert.ok(PACKET_SEQUENCE_OPTIONS.maxGap < FLOW_SEQUENCE_OPTIONS.maxGap);
    const s = newSequenceState();
    const v5 = new SequenceTracker(FLOW_SEQUENCE_OPTIONS);
    v5.observe(s, 1000, 30);
    assert.equal(v5.observe(s, 1060, 30), 30, 'one v5 packet of 30 flows lost');
  });
});

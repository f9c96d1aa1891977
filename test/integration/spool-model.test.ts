/**
 * The spool against a model (Vector's disk buffer tests in manner): random sequences of
 * append, lease, ack, release, park, unpark and reopen on a real spool file, each step
 * compared with a plain FIFO. After every step: lease hands out exactly the oldest ready
 * batches not leased, with the bytes appended; status() counts what the model holds; and the
 * whole chain verifies (anchor, tags, tombstones, no gap).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBatch } from '../../src/batch/decoder.js';
import { encodeBatch } from '../../src/batch/encoder.js';
import { Spool } from '../../src/spool/spool.js';
import { ipv4Records, tempDir, testKek } from '../support/spool-fixtures.js';

interface ModelBatch {
  readonly id: number;
  readonly records: number;
  readonly seed: number;
  state: 'ready' | 'leased' | 'parked';
}

interface Model {
  batches: ModelBatch[];
  nextId: number;
}

interface Real {
  spool: Spool;
  readonly dir: string;
}

type Command = fc.AsyncCommand<Model, Real>;

const KEK = testKek(5);

function open(dir: string): Promise<Spool> {
  return Spool.open({ dir, kek: KEK, synchronous: 'normal', quotaBytes: 1 << 30 });
}

/** What the model says status() and a verify() must show. */
function check(m: Model, r: Real): void {
  const st = r.spool.inspector.status();
  const live = m.batches;
  assert.equal(st.batches, live.length, 'live batches');
  assert.equal(st.records, live.reduce((s, b) => s + b.records, 0), 'live records');
  assert.equal(st.parkedBatches, live.filter((b) => b.state === 'parked').length, 'parked');
  assert.equal(st.leased, live.filter((b) => b.state === 'leased').length, 'leased');
  assert.equal(st.lastBatchId, m.nextId - 1, 'last id');
  const v = r.spool.inspector.verify();
  assert.equal(v.ok, true, JSON.stringify(v));
}

class Append implements Command {
  constructor(readonly records: number, readonly seed: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const res = r.spool.writer.append(encodeBatch(ipv4Records(this.records, this.seed)), this.records);
    assert.equal(res.id, m.nextId);
    m.batches.push({ id: m.nextId++, records: this.records, seed: this.seed, state: 'ready' });
    check(m, r);
    await Promise.resolve();
  }
  toString(): string {
    return `append(${this.records})`;
  }
}

class Lease implements Command {
  constructor(readonly n: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const got = r.spool.reader.lease(this.n);
    const want = m.batches.filter((b) => b.state === 'ready').slice(0, this.n);
    assert.deepEqual(got.map((b) => b.id), want.map((b) => b.id), 'the oldest ready batches not leased, in order');
    for (const [i, b] of got.entries()) {
      const w = want[i]!;
      assert.equal(b.recordCount, w.records);
      assert.deepStrictEqual(decodeBatch(b.batch), ipv4Records(w.records, w.seed).map((x) => ({ ...x, raw: null })));
      w.state = 'leased';
    }
    check(m, r);
    await Promise.resolve();
  }
  toString(): string {
    return `lease(${this.n})`;
  }
}

/** ack / release / park of the `pick`-th leased batch (modulo how many are leased). */
class Settle implements Command {
  constructor(readonly how: 'ack' | 'release' | 'park', readonly pick: number) {}
  check(m: Model): boolean {
    return m.batches.some((b) => b.state === 'leased');
  }
  async run(m: Model, r: Real): Promise<void> {
    const leased = m.batches.filter((b) => b.state === 'leased');
    const b = leased[this.pick % leased.length]!;
    if (this.how === 'ack') {
      r.spool.reader.ack(b.id);
      m.batches = m.batches.filter((x) => x !== b);
    } else if (this.how === 'release') {
      r.spool.reader.release(b.id);
      b.state = 'ready';
    } else {
      r.spool.reader.park(b.id, 'rejected');
      b.state = 'parked';
    }
    check(m, r);
    await Promise.resolve();
  }
  toString(): string {
    return `${this.how}(#${this.pick})`;
  }
}

class Unpark implements Command {
  check(m: Model): boolean {
    return m.batches.some((b) => b.state === 'parked');
  }
  async run(m: Model, r: Real): Promise<void> {
    const n = m.batches.filter((b) => b.state === 'parked').length;
    assert.equal(r.spool.reader.unpark(), n);
    for (const b of m.batches) if (b.state === 'parked') b.state = 'ready';
    check(m, r);
    await Promise.resolve();
  }
  toString(): string {
    return 'unpark';
  }
}

/** Close and open again: leases are in memory, so every leased batch is ready again. */
class Reopen implements Command {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.spool.close();
    r.spool = await open(r.dir);
    for (const b of m.batches) if (b.state === 'leased') b.state = 'ready';
    check(m, r);
  }
  toString(): string {
    return 'reopen';
  }
}

test('the spool behaves as a FIFO with leases, acks out of order, parking and reopening; its chain verifies after every step', async () => {
  const commands = fc.commands(
    [
      fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 1000 })).map(([n, seed]) => new Append(n, seed)),
      fc.integer({ min: 1, max: 4 }).map((n) => new Lease(n)),
      fc.tuple(fc.constantFrom('ack' as const, 'release' as const, 'park' as const), fc.nat(8)).map(([how, pick]) => new Settle(how, pick)),
      fc.constant(new Unpark()),
      fc.constant(new Reopen()),
    ],
    { maxCommands: 40, size: 'max' },
  );
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      const { dir, cleanup } = tempDir();
      const real: Real = { spool: await open(dir), dir };
      try {
        await fc.asyncModelRun(() => ({ model: { batches: [], nextId: 1 }, real }), cmds);
      } finally {
        real.spool.close();
        cleanup();
      }
    }),
    { numRuns: 40 },
  );
});

/**
 * The Fusion stand-in on its own, driven by a plain HTTPS client: the auth flow of FUSION.md
 * (and its rejections), upload framing/compression, schema validation, deduplication, the
 * /_sim/ control API, refusing connections and scheduled faults.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { signRequestJwt } from '../../src/drain/request-jwt.js';
import { toFusionRecord } from '../../src/flow/fusion-record.js';
import { edgeRecords } from '../support/spool-fixtures.js';
import { numberedRecords, startTestSim, type SimEnv } from '../support/drain-fixtures.js';

interface Reply {
  status: number;
  body: Record<string, unknown>;
}

async function post(env: SimEnv, agent: Agent, path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  const res = await request(`${env.sim.url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers }, dispatcher: agent });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? {} : (JSON.parse(text) as Record<string, unknown>) };
}

async function withSim(fn: (env: SimEnv, agent: Agent) => Promise<void>, options = {}): Promise<void> {
  const env = await startTestSim(options);
  const agent = new Agent({ connect: { ca: env.caPem } });
  try {
    await fn(env, agent);
  } finally {
    await agent.destroy();
    await env.cleanup();
  }
}

async function token(env: SimEnv, agent: Agent): Promise<string> {
  const r = await post(env, agent, '/api/v1/auth/token', JSON.stringify({ jwt: signRequestJwt(env.sim.credentials, Date.now()) }));
  assert.equal(r.status, 200);
  return r.body.access_token as string;
}

const ndjson = (records: unknown[]): Buffer => gzipSync(Buffer.from(records.map((r) => JSON.stringify(r)).join('\n') + '\n'));

test('auth: a valid request JWT gets a bearer token; bad ones get 401 {status, name, message}', () =>
  withSim(async (env, agent) => {
    const c = env.sim.credentials;
    const ok = await post(env, agent, '/api/v1/auth/token', JSON.stringify({ jwt: signRequestJwt(c, Date.now(), 'j1') }));
    assert.equal(ok.status, 200);
    assert.equal(ok.body.token_type, 'bearer');
    assert.equal(ok.body.expires_in, 3600);
    assert.equal(typeof ok.body.access_token, 'string');
    const cases: [string, string, RegExp][] = [
      ['replayed jti', signRequestJwt(c, Date.now(), 'j1'), /replayed/],
      ['wrong secret', signRequestJwt({ sharedsecret: 'nope', appname: c.appname, appkey: c.appkey, shortname: c.shortname }, Date.now()), /signature/],
      ['stale iat', signRequestJwt(c, Date.now() - 3_600_000), /iat/],
      ['wrong appkey', signRequestJwt({ sharedsecret: c.sharedsecret, appname: c.appname, appkey: 'other', shortname: c.shortname }, Date.now()), /application/],
      ['not a JWT', 'abc', /compact/],
    ];
    for (const [name, jwt, re] of cases) {
      const r = await post(env, agent, '/api/v1/auth/token', JSON.stringify({ jwt }));
      assert.equal(r.status, 401, name);
      assert.equal(r.body.status, 401);
      assert.equal(r.body.name, 'Unauthorized');
      assert.match(r.body.message as string, re, name);
    }
    assert.equal((await post(env, agent, '/api/v1/auth/token', 'not json')).status, 400);
    assert.equal(env.sim.stats.tokensIssued, 1);
  }));

test('upload: bearer required; NDJSON+gzip and JSON array accepted; the schema accepts every record shape sealflow sends', () =>
  withSim(async (env, agent) => {
    // The first edge record is the realistic extreme (IPv6, counters beyond 2^53, every flag);
    // the others are codec torture values (samplerate 0.5, start -1) no decoder produces.
    const edge = edgeRecords()[0]!;
    const recs = [...numberedRecords(0, 50), edge].map(toFusionRecord);
    assert.equal(typeof recs[50]?.bits, 'string', 'a beyond-2^53 counter is in the upload');
    assert.equal((await post(env, agent, '/api/v1/flows', ndjson(recs), { 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip' })).status, 401);
    const auth = { authorization: `Bearer ${await token(env, agent)}` };
    const a = await post(env, agent, '/api/v1/flows', ndjson(recs), { ...auth, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', 'idempotency-key': 'k1' });
    assert.deepEqual([a.status, a.body], [200, { accepted: recs.length, duplicate: false }]);
    const b = await post(env, agent, '/api/v1/flows', JSON.stringify(recs), { ...auth, 'idempotency-key': 'k2' });
    assert.equal(b.status, 200);
    assert.equal(env.sim.records.length, recs.length * 2);
    assert.deepEqual(env.sim.records[recs.length + 3], JSON.parse(JSON.stringify(recs[3])));
    const dup = await post(env, agent, '/api/v1/flows', ndjson(recs), { ...auth, 'content-type': 'application/x-ndjson', 'content-encoding': 'gzip', 'idempotency-key': 'k1' });
    assert.deepEqual([dup.status, dup.body], [200, { accepted: recs.length, duplicate: true }]);
    assert.equal(env.sim.records.length, recs.length * 2, 'a duplicate stores nothing');
    assert.equal(env.sim.stats.duplicates, 1);
  }));

test('upload: invalid records are rejected whole with 400 naming the field; bad encodings and types too', () =>
  withSim(async (env, agent) => {
    const auth = { authorization: `Bearer ${await token(env, agent)}` };
    const good = toFusionRecord(numberedRecords(0, 1)[0]!);
    const bads: [Record<string, unknown>, RegExp][] = [
      [{ ...good, srcport: 70000 }, /srcport/],
      [{ ...good, extra: 1 }, /extra|unrecognized/i],
      [{ ...good, srcip: '999.1.1.1' }, /srcip/],
      [Object.fromEntries(Object.entries(good).filter(([k]) => k !== 'timestamp')), /timestamp/],
      [{ ...good, bits: 1.5 }, /bits/],
    ];
    for (const [rec, re] of bads) {
      const r = await post(env, agent, '/api/v1/flows', JSON.stringify([good, rec]), auth);
      assert.equal(r.status, 400);
      assert.equal(r.body.name, 'BadRequest');
      assert.match(r.body.message as string, /^record 1: /);
      assert.match(r.body.message as string, re);
    }
    assert.equal(env.sim.records.length, 0, 'nothing stored from a rejected upload');
    assert.equal((await post(env, agent, '/api/v1/flows', 'x', { ...auth, 'content-encoding': 'br' })).status, 415);
    assert.equal((await post(env, agent, '/api/v1/flows', 'x', { ...auth, 'content-encoding': 'gzip' })).status, 400);
    assert.equal((await post(env, agent, '/api/v1/flows', '{}', auth)).status, 400);
    assert.equal((await post(env, agent, '/api/v1/flows', '[]', { ...auth, 'content-type': 'text/plain' })).status, 415);
  }));

test('control API: faults on command, stats; refuse closes the port and reopens it', () =>
  withSim(async (env, agent) => {
    const auth = { authorization: `Bearer ${await token(env, agent)}` };
    const body = JSON.stringify([toFusionRecord(numberedRecords(0, 1)[0]!)]);
    const set = await post(env, agent, '/_sim/fault', JSON.stringify({ fault: { kind: 'status', status: 503, retryAfter: '7', count: 1 } }));
    assert.equal(set.status, 200);
    const res = await request(env.sim.uploadUrl, { method: 'POST', body, headers: { ...auth, 'content-type': 'application/json' }, dispatcher: agent });
    await res.body.text();
    assert.equal(res.statusCode, 503);
    assert.equal(res.headers['retry-after'], '7');
    assert.equal((await post(env, agent, '/api/v1/flows', body, auth)).status, 200, 'count: 1 used up');
    assert.equal((await post(env, agent, '/_sim/fault', JSON.stringify({ fault: { kind: 'nonsense' } }))).status, 400);
    const stats = await request(`${env.sim.url}/_sim/stats`, { dispatcher: agent });
    const s = (await stats.body.json()) as { recordsAccepted: number; faultsInjected: number };
    assert.equal(s.recordsAccepted, 1);
    assert.equal(s.faultsInjected, 1);

    await post(env, agent, '/_sim/fault', JSON.stringify({ fault: { kind: 'refuse' } }));
    await new Promise((r) => setTimeout(r, 100));
    const fresh = new Agent({ connect: { ca: env.caPem } });
    await assert.rejects(request(`${env.sim.url}/_sim/stats`, { dispatcher: fresh }), (e: unknown) => JSON.stringify(e, Object.getOwnPropertyNames(e)).includes('ECONNREFUSED') || String((e as { cause?: unknown }).cause).includes('ECONNREFUSED'));
    await env.sim.setFault(null);
    const back = await request(`${env.sim.url}/_sim/stats`, { dispatcher: fresh });
    assert.equal(back.statusCode, 200);
    await back.body.text();
    await fresh.destroy();
  }));

test('scheduled faults switch on and off by themselves', () =>
  withSim(
    async (env, agent) => {
      const auth = { authorization: `Bearer ${await token(env, agent)}` };
      const body = JSON.stringify([toFusionRecord(numberedRecords(0, 1)[0]!)]);
      // The statuses seen in order, repeats collapsed: polled (bounded), since on a loaded machine one
      // request can take longer than any fixed gap between the scheduled switches.
      const seen = [(await post(env, agent, '/api/v1/flows', body, auth)).status];
      for (const deadline = Date.now() + 15_000; seen.length < 3 && Date.now() < deadline; ) {
        await new Promise((r) => setTimeout(r, 50));
        const s = (await post(env, agent, '/api/v1/flows', body, auth)).status;
        if (seen.at(-1) !== s) seen.push(s);
      }
      assert.deepEqual(seen, [200, 500, 200]);
    },
    { schedule: [{ atMs: 2000, fault: { kind: 'status', status: 500 } }, { atMs: 3500, fault: null }] },
  ));

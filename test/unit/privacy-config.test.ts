import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { InvalidConfigError } from '../../src/config/invalid-config-error.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/flow/errors.js';
import { resolvePseudonymizeKey } from '../../src/privacy/key-source.js';
import { main as keygen } from '../../src/commands/keygen.js';
import { Writable } from 'node:stream';

/*
 * privacy.pseudonymize and spool.maxAgeSeconds at the configuration's front door: defaults,
 * policy errors naming the exact setting, the key as a secret source only (never inline), the
 * SEALFLOW_PSEUDONYMIZE_KEY* shortcut, redaction, and `keygen --purpose pseudonymize`.
 */

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealflow-privacy-config-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BASE = { spool: { kek: { env: 'K' } }, drain: { enabled: false } };
const RULES = [{ action: 'keep', prefixes: ['10.20.0.0/16'] }, { action: 'pseudonymize', prefixes: ['10.0.0.0/8'] }];

async function loadWith(doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) {
  const file = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  await writeFile(file, stringify(doc));
  return loadConfig({ configPath: file, cwd: dir, env, compileFilters: null });
}

async function problems(doc: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  try {
    await loadWith(doc, env);
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw err;
  }
  assert.fail('expected the configuration to be rejected');
}

test('defaults: no pseudonymisation and no age limit unless configured; daily rotation and all four fields when it is', async () => {
  const plain = await loadWith(BASE);
  assert.equal(plain.config.privacy.pseudonymize, undefined);
  assert.equal(plain.config.spool.maxAgeSeconds, undefined);
  const on = await loadWith({ ...BASE, spool: { ...BASE.spool, maxAgeSeconds: 604_800 }, privacy: { pseudonymize: { key: { file: 'pz.key' }, rules: RULES } } });
  const pz = on.config.privacy.pseudonymize;
  assert.ok(pz !== undefined);
  assert.equal(pz.rotation, 'daily');
  assert.deepEqual(pz.fields, ['srcip', 'dstip', 'nexthop', 'bgpnexthop']);
  assert.deepEqual(pz.key, { file: join(dir, 'pz.key') }, 'a relative key file resolves against the working directory');
  assert.equal(on.config.spool.maxAgeSeconds, 604_800);
});

test('policy errors name the exact setting', async () => {
  const doc = (rules: unknown) => ({ ...BASE, privacy: { pseudonymize: { key: { env: 'PZ' }, rules } } });
  assert.deepEqual(await problems(doc([{ action: 'pseudonymize', prefixes: ['10.0.0.0/8', 'ten'] }])), [
    'privacy.pseudonymize.rules[0].prefixes[1]: must be an IP address or CIDR prefix (e.g. 10.0.0.0/8, 2001:db8:100::/40); got "ten"',
  ]);
  const shadowed = await problems(doc([{ name: 'all', action: 'keep', prefixes: ['10.0.0.0/8'] }, { action: 'pseudonymize', prefixes: ['10.1.0.0/16'] }]));
  assert.match(shadowed.join('\n'), /privacy\.pseudonymize\.rules\[1\]\.prefixes\[0\]: 10\.1\.0\.0\/16 never applies: the earlier all prefix 10\.0\.0\.0\/8 covers it/);
  assert.match((await problems(doc([]))).join('\n'), /privacy\.pseudonymize\.rules/);
  assert.match((await problems({ ...BASE, privacy: { pseudonymize: { rules: RULES } } })).join('\n'), /privacy\.pseudonymize\.key/);
  assert.match((await problems({ ...BASE, spool: { ...BASE.spool, maxAgeSeconds: 10 } })).join('\n'), /spool\.maxAgeSeconds/);
});

test('the key is a secret source: inline values are refused; SEALFLOW_PSEUDONYMIZE_KEY_FILE works; a bad key is named', async () => {
  const inline = await problems({ ...BASE, privacy: { pseudonymize: { key: 'c2VjcmV0', rules: RULES } } });
  assert.match(inline.join('\n'), /privacy\.pseudonymize\.key: inline secret values are not accepted/);
  const keyFile = join(dir, 'pz.key');
  await writeFile(keyFile, `# a banner line\n${Buffer.alloc(32, 7).toString('base64')}\n`, { mode: 0o600 });
  const viaEnv = await loadWith({ ...BASE, privacy: { pseudonymize: { rules: RULES } } }, { SEALFLOW_PSEUDONYMIZE_KEY_FILE: keyFile });
  const pz = viaEnv.config.privacy.pseudonymize;
  assert.ok(pz !== undefined);
  assert.deepEqual(pz.key, { file: keyFile });
  assert.deepEqual(await resolvePseudonymizeKey(pz.key), new Uint8Array(32).fill(7));
  await writeFile(keyFile, 'not a key', { mode: 0o600 });
  await assert.rejects(resolvePseudonymizeKey(pz.key), (err: unknown) => err instanceof ConfigError && err.message.includes('privacy.pseudonymize.key: not a valid pseudonymisation key') && !err.message.includes('not a key'));
});

test('sealflow keygen --purpose pseudonymize prints a 32-byte key; an unknown purpose is a usage error', async () => {
  const sink = (): { stream: Writable; text: () => string } => {
    let text = '';
    return { stream: new Writable({ write: (c: Buffer, _e, cb) => ((text += c.toString()), cb()) }), text: () => text };
  };
  const out = sink();
  const err = sink();
  assert.equal(await keygen(['--purpose', 'pseudonymize'], { stdout: out.stream, stderr: err.stream, env: {} }), 0);
  assert.equal(Buffer.from(out.text().trim(), 'base64').length, 32);
  assert.match(err.text(), /pseudonymisation key/);
  assert.equal(await keygen(['--purpose', 'bogus'], { stdout: sink().stream, stderr: sink().stream, env: {} }), 64);
});

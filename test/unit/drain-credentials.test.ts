import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect } from 'node:util';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/load.js';
import { drainSettingsFromConfig } from '../../src/drain/drain-config.js';
import { ConfigError } from '../../src/flow/errors.js';
import { apiBaseOf, encodeNetosecret, NETOSECRET_ENV, NETOSECRET_FILE_ENV, parseNetosecret, resolveNetosecret } from '../../src/drain/netosecret.js';
import { signRequestJwt, verifyHs256Jwt } from '../../src/drain/request-jwt.js';

const FIELDS = { url: 'https://api.example.test/api/v1', shortname: 'acme', appname: 'probe', sharedsecret: 'S3cr3t-shared-value', appkey: 'K3y-app-value' };
const json = JSON.stringify(FIELDS);

test('netosecret: padded, unpadded, base64url and wrapped forms all decode', () => {
  const std = Buffer.from(json).toString('base64');
  const forms = [std, std.replace(/=+$/, ''), Buffer.from(json).toString('base64url'), std.replace(/(.{20})/g, '$1\n')];
  for (const f of forms) {
    const c = parseNetosecret(f, 'X');
    assert.equal(c.apiBase, 'https://api.example.test');
    assert.equal(c.sharedsecret, FIELDS.sharedsecret);
    assert.equal(c.appkey, FIELDS.appkey);
    assert.equal(c.endpoint('/auth/token'), 'https://api.example.test/api/v1/auth/token');
  }
  assert.equal(parseNetosecret(encodeNetosecret(FIELDS), 'X').shortname, 'acme');
});

test('API base: with or without /api/v1 and trailing slash, never doubled', () => {
  for (const [u, want] of [
    ['https://h.test', 'https://h.test'],
    ['https://h.test/', 'https://h.test'],
    ['https://h.test/api/v1', 'https://h.test'],
    ['https://h.test/api/v1/', 'https://h.test'],
    ['https://h.test:8443/prefix/api/v1', 'https://h.test:8443/prefix'],
  ] as const) assert.equal(apiBaseOf(u, 's'), want, u);
  assert.throws(() => apiBaseOf('http://h.test', 's'), ConfigError);
  assert.throws(() => apiBaseOf('not a url', 's'), ConfigError);
});

test('bad netosecrets: ConfigError naming the setting and the problem, never the value', () => {
  const cases: [string, RegExp][] = [
    ['', /empty/],
    ['!!!not-base64!!!', /base64/],
    [Buffer.from('not json at all S3cr3t').toString('base64'), /JSON object/],
    [Buffer.from(JSON.stringify({ ...FIELDS, appkey: undefined, sharedsecret: '' })).toString('base64'), /"sharedsecret", "appkey"/],
    [Buffer.from(JSON.stringify({ ...FIELDS, url: 'ftp://x' })).toString('base64'), /https/],
    ['A', /length/],
  ];
  for (const [text, re] of cases) {
    try {
      parseNetosecret(text, NETOSECRET_ENV);
      assert.fail(`accepted ${JSON.stringify(text)}`);
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.setting, NETOSECRET_ENV);
      assert.match(err.message, new RegExp(NETOSECRET_ENV));
      assert.match(err.message, re);
      assert.ok(!err.message.includes('S3cr3t') && !err.message.includes('K3y'), err.message);
      if (text.length > 8) assert.ok(!err.message.includes(text.slice(0, 8)), 'no part of the value');
    }
  }
});

test('credentials never print their secrets', () => {
  const c = parseNetosecret(encodeNetosecret(FIELDS), 'X');
  for (const s of [JSON.stringify(c), inspect(c), String(c), inspect({ nested: c }, { depth: 5 })]) {
    assert.ok(!s.includes(FIELDS.sharedsecret) && !s.includes(FIELDS.appkey), s);
  }
});

test('resolveNetosecret: env value, env file, config; both env forms is an error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealflow-neto-'));
  try {
    const file = join(dir, 'neto');
    writeFileSync(file, encodeNetosecret(FIELDS) + '\n', { mode: 0o600 });
    assert.equal(resolveNetosecret({ env: { [NETOSECRET_ENV]: encodeNetosecret(FIELDS) } })?.appname, 'probe');
    assert.equal(resolveNetosecret({ env: { [NETOSECRET_FILE_ENV]: file } })?.appname, 'probe');
    assert.equal(resolveNetosecret({ env: {}, value: encodeNetosecret(FIELDS) })?.appname, 'probe');
    assert.equal(resolveNetosecret({ env: {}, file })?.appname, 'probe');
    assert.equal(resolveNetosecret({ env: {} }), null);
    assert.throws(() => resolveNetosecret({ env: { [NETOSECRET_ENV]: 'x', [NETOSECRET_FILE_ENV]: file } }), /set only one/);
    assert.throws(() => resolveNetosecret({ env: { [NETOSECRET_FILE_ENV]: join(dir, 'missing') } }), (e: unknown) => e instanceof ConfigError && e.setting === NETOSECRET_FILE_ENV && e.message.includes('ENOENT'));
    assert.throws(() => resolveNetosecret({ env: {}, value: 'garbage!' }), (e: unknown) => e instanceof ConfigError && e.setting === 'drain.fusion.netosecret');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('request JWT: HS256 with the FUSION.md claims, verifiable, tamper-evident', () => {
  const c = parseNetosecret(encodeNetosecret(FIELDS), 'X');
  const jwt = signRequestJwt(c, 1_763_800_000_999, 'jti-1');
  const [h, p] = jwt.split('.') as [string, string, string];
  assert.deepEqual(JSON.parse(Buffer.from(h, 'base64url').toString()), { alg: 'HS256', typ: 'JWT' });
  assert.deepEqual(JSON.parse(Buffer.from(p, 'base64url').toString()), { iat: 1_763_800_000, jti: 'jti-1', appname: 'probe', appkey: FIELDS.appkey, shortname: 'acme' });
  const v = verifyHs256Jwt(jwt, FIELDS.sharedsecret);
  assert.equal(v.ok, true);
  assert.equal(verifyHs256Jwt(jwt, 'other secret').ok, false);
  const tampered = `${h}.${Buffer.from(JSON.stringify({ iat: 1, jti: 'x', appname: 'probe', appkey: FIELDS.appkey, shortname: 'evil' })).toString('base64url')}.${jwt.split('.')[2] ?? ''}`;
  assert.equal(verifyHs256Jwt(tampered, FIELDS.sharedsecret).ok, false);
  assert.notEqual(signRequestJwt(c, 0), signRequestJwt(c, 0), 'a fresh jti each time');
});

test('drain settings from the configuration: upload workers, gzip level, adaptive gzip and the request byte cap reach the drain', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sealflow-drain-config-'));
  try {
    // Names only: loading checks that the secrets are configured, not their values.
    const keys = { SEALFLOW_SPOOL_KEK: 'k', SEALFLOW_FUSION_NETOSECRET: 'n' };
    const env = {
      ...keys,
      SEALFLOW_DRAIN__UPLOAD_WORKERS: '3',
      SEALFLOW_DRAIN__CONCURRENCY: '2',
      SEALFLOW_DRAIN__FUSION__GZIP_LEVEL: '9',
      SEALFLOW_DRAIN__FUSION__ADAPTIVE_GZIP: 'false',
      SEALFLOW_DRAIN__FUSION__MAX_BYTES_PER_REQUEST: '65536',
    };
    const { config } = await loadConfig({ cwd: dir, env, compileFilters: null });
    const s = drainSettingsFromConfig(config.drain);
    assert.equal(s.uploadWorkers, 3);
    assert.equal(s.concurrency, 3, 'raised to one batch per worker');
    assert.equal(s.encoder.gzipLevel, 9);
    assert.equal(s.encoder.adaptiveGzip, false);
    assert.equal(s.encoder.maxBytesPerRequest, 65_536);
    const defaults = drainSettingsFromConfig((await loadConfig({ cwd: dir, env: keys, compileFilters: null })).config.drain);
    assert.equal(defaults.uploadWorkers, 1);
    assert.equal(defaults.encoder.gzipLevel, 6);
    assert.equal(defaults.encoder.adaptiveGzip, true);
    for (const [name, value] of [['SEALFLOW_DRAIN__FUSION__GZIP_LEVEL', '0'], ['SEALFLOW_DRAIN__UPLOAD_WORKERS', '33'], ['SEALFLOW_DRAIN__FUSION__MAX_BYTES_PER_REQUEST', '100']] as const) {
      const setting = name.toLowerCase().split('__').at(-1) ?? '';
      await assert.rejects(loadConfig({ cwd: dir, env: { ...keys, [name]: value }, compileFilters: null }), (e: unknown) => e instanceof Error && e.message.includes('drain.') && e.message.toLowerCase().includes(setting.replaceAll('_', '')), name);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

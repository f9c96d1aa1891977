import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { devFiles, embeddedDefaults, DEV_EXPORTER_IDENTITY } from '../../src/config/embedded-defaults.js';
import { envSettings, readEnvLayer } from '../../src/config/env-layer.js';
import { InvalidConfigError } from '../../src/config/invalid-config-error.js';
import { loadConfig, type LoadConfigOptions } from '../../src/config/load.js';
import { redactConfig } from '../../src/config/redact-config.js';
import { ConfigSchema } from '../../src/config/schema.js';
import { settingsMarkdown } from '../../src/config/settings-table.js';
import { ConfigError } from '../../src/flow/errors.js';
import { createLogger } from '../../src/observability/logger.js';

const repoRoot = resolve(import.meta.dirname, '../..');
const valid = join(repoRoot, 'test/fixtures/config/valid.yaml');
const KEYS = { SEALFLOW_SPOOL_KEK: 'k', SEALFLOW_FUSION_NETOSECRET: 'n' };

let dir = '';
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sealflow-config-load-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(opts: LoadConfigOptions) {
  return loadConfig({ cwd: dir, compileFilters: null, ...opts });
}

async function problems(opts: LoadConfigOptions): Promise<string[]> {
  try {
    await load(opts);
  } catch (err) {
    if (err instanceof InvalidConfigError) return err.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    if (err instanceof ConfigError) return [err.message];
    throw err;
  }
  assert.fail('expected the configuration to be rejected');
}

describe('layering', () => {
  test('file < environment < flags, each replacing only what it sets', async () => {
    const file = await load({ configPath: valid, env: KEYS });
    assert.equal(file.config.spool.quotaBytes, 2147483648);
    assert.equal(file.config.admin.port, 9181);

    const env = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_SPOOL__QUOTA_BYTES: '3000000000', SEALFLOW_ADMIN__PORT: '9300' } });
    assert.equal(env.config.spool.quotaBytes, 3000000000);
    assert.equal(env.config.admin.port, 9300);
    assert.equal(env.config.spool.batch.maxRecords, 2000, 'sibling keys from the file survive');
    assert.equal(env.origins.get('spool.quotaBytes'), 'SEALFLOW_SPOOL__QUOTA_BYTES');

    const flags = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_ADMIN__PORT: '9300' }, overrides: { admin: { port: 9400 }, log: { level: 'trace' } } });
    assert.equal(flags.config.admin.port, 9400, 'flags override env');
    assert.equal(flags.config.admin.address, '127.0.0.1');
    assert.equal(flags.config.log.level, 'trace');
    assert.equal(flags.origins.get('admin.port'), 'command-line flags');
  });

  test('a list in a later layer replaces the whole list', async () => {
    const r = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_LISTENERS__UDP: '[{"port":9995,"address":"127.0.0.1"}]', SEALFLOW_TEES: '[]' } });
    assert.deepEqual(
      r.config.listeners.udp.map((u) => [u.port, u.address, u.receiveBufferBytes]),
      [[9995, '127.0.0.1', 33554432]],
    );
  });

  test('a secret source in a later layer replaces the earlier one whole', async () => {
    const r = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_SPOOL_KEK: '', SEALFLOW_SPOOL_KEK_COMMAND: 'systemd-creds cat kek' } });
    assert.deepEqual(r.config.spool.kek, { command: ['systemd-creds', 'cat', 'kek'] });
    const json = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_ADMIN_TOKEN_COMMAND: '["/usr/bin/vault","read","-field=token","x y"]' } });
    assert.deepEqual(json.config.admin.token, { command: ['/usr/bin/vault', 'read', '-field=token', 'x y'] });
  });

  test('SEALFLOW_CONFIG names the file when no path is given', async () => {
    const r = await load({ env: { ...KEYS, SEALFLOW_CONFIG: valid } });
    assert.equal(r.configPath, valid);
    assert.equal(r.config.admin.port, 9181);
  });

  test('environment values are converted by the type of their setting', async () => {
    const r = await load({
      configPath: valid,
      env: {
        ...KEYS,
        SEALFLOW_DRAIN__ENABLED: 'no',
        SEALFLOW_DECODE__PENDING_HOLD_MS: '0',
        SEALFLOW_DRAIN__FUSION__PIN_SHA256: 'n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=',
        SEALFLOW_LISTENERS__TLS__CRL_FILES: '["a.pem","b.pem"]',
        SEALFLOW_FILTERS__RULES: '[{"action":"drop","dstports":[53,"1000-2000"]}]',
      },
    });
    assert.equal(r.config.drain.enabled, false);
    assert.equal(r.config.decode.pendingHoldMs, 0);
    assert.deepEqual(r.config.drain.fusion.pinSha256, ['n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=']);
    assert.deepEqual(r.config.listeners.tls.crlFiles, [join(dir, 'a.pem'), join(dir, 'b.pem')], 'relative paths resolve against the working directory');
    assert.deepEqual(r.config.filters.rules[0]?.dstports, [53, '1000-2000']);
  });

  test('every setting has exactly one environment variable and a description', () => {
    const names = envSettings().map((s) => s.env);
    assert.equal(new Set(names).size, names.length);
    for (const s of envSettings()) assert.ok(s.description.length > 0, `${s.path.join('.')} is documented`);
    assert.ok(names.includes('SEALFLOW_LISTENERS__TLS__MAX_CONNECTIONS_PER_SOURCE'));
    assert.ok(names.includes('SEALFLOW_DRAIN__FUSION__PIN_SHA256'));
  });

  test('docs/configuration.md carries the current generated settings table', async () => {
    const readme = await readFile(join(repoRoot, 'docs/configuration.md'), 'utf8');
    assert.ok(readme.includes(settingsMarkdown()), 'regenerate the table in docs/configuration.md with: sealflow config schema --markdown');
  });

  test('non-setting SEALFLOW_ variables that do not look like settings are left alone', () => {
    assert.deepEqual(readEnvLayer({ SEALFLOW_TEST_CONCURRENCY: '2', SEALFLOW_CONFIG: '/x', SEALFLOW_SPOOL_NEW_KEK: 'k' }).layer, {});
    // The previous KEK's trio is a shortcut for spool.previousKeks, like SEALFLOW_SPOOL_KEK* for spool.kek.
    assert.deepEqual(readEnvLayer({ SEALFLOW_SPOOL_PREVIOUS_KEK_FILE: '/k' }).layer, { spool: { previousKeks: [{ file: '/k' }] } });
  });

  test('a nested name under a real section that matches no setting is an error', () => {
    assert.throws(() => readEnvLayer({ SEALFLOW_SPOOL__QUOTA: '5' }), /^ConfigError: SEALFLOW_SPOOL__QUOTA: is not a sealflow setting; see `sealflow config schema --env` for the list$/);
    assert.throws(() => readEnvLayer({ SEALFLOW_LISTENERS_TLS_ENABLED: 'true' }), /did you mean SEALFLOW_LISTENERS__TLS__ENABLED\?/);
  });
});

describe('validation', () => {
  test('unknown keys are rejected at every depth, all reported at once', async () => {
    const f = join(dir, 'unknown.yaml');
    await writeFile(f, 'colour: red\nspool:\n  batch:\n    maxRecord: 1\nlisteners:\n  udp:\n    - port: 1\n      adress: 127.0.0.1\n');
    assert.deepEqual(await problems({ configPath: f, env: KEYS }), [
      'listeners.udp.0.adress: unknown key; did you mean "address"? allowed keys: name, address, port, receiveBufferBytes, maxDatagramBytes',
      'spool.batch.maxRecord: unknown key; did you mean "maxRecords"? allowed keys: maxRecords, maxBytes, maxAgeMs',
      'colour: unknown key; allowed keys: dataDir, log, listeners, tees, filters, decode, spool, privacy, drain, admin, audit, stats, shutdown, development',
    ]);
  });

  test('unknown keys in flag overrides are rejected too', async () => {
    const overrides = { spool: { quota: 5 } } as unknown as LoadConfigOptions['overrides'];
    const p = await problems({ configPath: valid, env: KEYS, ...(overrides === undefined ? {} : { overrides }) });
    assert.equal(p.length, 1);
    assert.match(p[0] ?? '', /^spool\.quota: unknown key; did you mean "quotaBytes"\?/);
  });

  test('__proto__ keys cannot pollute anything', async () => {
    const f = join(dir, 'proto.json');
    await writeFile(f, '{"__proto__": {"polluted": true}, "spool": {"constructor": {"x": 1}}}');
    const p = await problems({ configPath: f, env: KEYS });
    assert.deepEqual(p, ['__proto__: is not an allowed key', 'spool.constructor: is not an allowed key']);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });

  test('TCP admin port clashing with the TLS port is caught; wildcard overlaps too', async () => {
    const p = await problems({ configPath: valid, env: { ...KEYS, SEALFLOW_ADMIN__PORT: '4740', SEALFLOW_ADMIN__ADDRESS: '0.0.0.0' } });
    assert.deepEqual(p, ['admin.port: TCP port 4740 is already used by listeners.tls.port; every listener needs its own port']);
    // UDP 4740 for DTLS and TCP 4740 for TLS coexist (different protocols); the valid fixture has DTLS on 4741.
    const ok = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_LISTENERS__DTLS__PORT: '4740' } });
    assert.equal(ok.config.listeners.dtls.port, 4740);
  });

  test('bind addresses must be IP literals', async () => {
    const p = await problems({ configPath: valid, env: { ...KEYS, SEALFLOW_LISTENERS__TLS__ADDRESS: 'collector.local' } });
    assert.deepEqual(p, ['listeners.tls.address: must be an IP address to bind (e.g. 0.0.0.0, ::, 127.0.0.1); got "collector.local"']);
  });

  test('an exposed admin endpoint without a token is a warning, not an error', async () => {
    const r = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_ADMIN__ADDRESS: '0.0.0.0' } });
    assert.deepEqual(r.warnings, ['admin.address 0.0.0.0 is not loopback and admin.token is not set: /stats and /metrics are readable by anyone who can reach it']);
    const withToken = await load({ configPath: valid, env: { ...KEYS, SEALFLOW_ADMIN__ADDRESS: '0.0.0.0', SEALFLOW_ADMIN_TOKEN: 't' } });
    assert.deepEqual(withToken.warnings, []);
  });

  test('the filter compiler is consulted when present', async () => {
    const f = join(dir, 'filters.yaml');
    await writeFile(f, 'filters:\n  rules:\n    - action: drop\n      protocols: [bogusproto]\n');
    const shapeOnly = await load({ configPath: f, env: KEYS });
    assert.equal(shapeOnly.config.filters.rules.length, 1, 'with compileFilters: null only the shape is checked');
    const seen: string[] = [];
    await assert.rejects(
      loadConfig({
        cwd: dir,
        configPath: f,
        env: KEYS,
        compileFilters: (filters, setting) => {
          seen.push(`${setting ?? ''}:${filters.rules.length}`);
          throw new ConfigError('ERR_CONFIG_INVALID', 'filters.rules[0].protocols[0]', 'filters.rules[0].protocols[0]: unknown protocol "bogusproto"');
        },
      }),
      (err: unknown) => err instanceof InvalidConfigError && err.message.endsWith('filters.rules[0].protocols[0]: unknown protocol "bogusproto"'),
    );
    assert.deepEqual(seen, ['filters:1']);
  });
});

describe('result', () => {
  test('is deep-frozen', async () => {
    const r = await load({ configPath: valid, env: KEYS });
    assert.ok(Object.isFrozen(r.config));
    assert.ok(Object.isFrozen(r.config.listeners.udp));
    assert.ok(Object.isFrozen(r.config.listeners.udp[0]));
    assert.ok(Object.isFrozen(r.config.listeners.tls.identities[0]?.sources));
    assert.throws(() => {
      (r.config.spool as { quotaBytes: number }).quotaBytes = 1;
    }, TypeError);
  });

  test('schema defaults fill everything the file leaves out', async () => {
    const r = await load({ configPath: join(repoRoot, 'test/fixtures/config/minimal.yaml'), env: KEYS });
    const c = r.config;
    assert.equal(c.dataDir, join(dir, '.sealflow'));
    assert.equal(c.spool.dir, join(dir, '.sealflow', 'spool'));
    assert.equal(c.spool.quotaBytes, 10 * 1024 ** 3);
    assert.equal(c.spool.fullPolicy, 'drop-oldest');
    assert.equal(c.spool.synchronous, 'full');
    assert.deepEqual(c.listeners.udp.map((u) => u.port), [4739, 2055, 6343]);
    assert.deepEqual(c.listeners.allowlist, [], 'nobody is allowed until configured');
    assert.equal(c.listeners.tls.enabled, false);
    assert.equal(c.admin.address, '127.0.0.1');
    assert.equal(c.drain.fusion.compression, 'gzip');
    assert.equal(c.decode.maxTemplatesPerSession, 4096);
    assert.equal(c.shutdown.deadlineMs, 10_000);
  });

  test('a JSON config may name its $schema; unnamed UDP listeners get "udp-<port>"', async () => {
    const f = join(dir, 'with-schema.json');
    await writeFile(f, JSON.stringify({ $schema: 'https://sealflow.dev/schema/config.json', listeners: { udp: [{ port: 9995 }, { name: 'sf', port: 6343 }] } }));
    const r = await load({ configPath: f, env: KEYS });
    assert.deepEqual(r.config.listeners.udp.map((u) => u.name), ['udp-9995', 'sf']);
  });

  test('embedded defaults: loopback everywhere, dev PKI/KEK under the data dir, embedded Fusion stand-in', async () => {
    const dataDir = join(dir, 'embedded-data');
    const r = await load({ env: { SEALFLOW_DATA_DIR: dataDir }, embeddedWhenNoFile: true });
    const c = r.config;
    const f = devFiles(dataDir);
    assert.equal(r.embedded, true);
    assert.equal(c.dataDir, dataDir);
    assert.ok(c.listeners.udp.every((u) => u.address === '127.0.0.1'));
    assert.deepEqual(c.listeners.allowlist, ['127.0.0.0/8', '::1']);
    assert.equal(c.listeners.tls.enabled && c.listeners.dtls.enabled, true);
    assert.deepEqual([c.listeners.dtls.certFile, c.listeners.dtls.keyFile, c.listeners.dtls.caFile], [f.certFile, f.keyFile, f.caFile]);
    assert.equal(c.listeners.tls.identities[0]?.name, DEV_EXPORTER_IDENTITY);
    assert.deepEqual(c.spool.kek, { file: f.kekFile });
    assert.equal(c.spool.dir, join(dataDir, 'spool'));
    assert.equal(c.drain.fusion.embeddedSim, true);
    assert.equal(c.development.generateKek && c.development.generatePki, true);
    // The embedded layer is plain input: it passes the schema on its own.
    assert.ok(ConfigSchema.safeParse(embeddedDefaults(dataDir)).success);
  });

  test('embedded defaults: a Fusion API key given on top means the real Fusion, unless the stand-in is asked for too', async () => {
    const dataDir = join(dir, 'embedded-fusion');
    const key = { SEALFLOW_DATA_DIR: dataDir, SEALFLOW_FUSION_NETOSECRET: 'x' };
    assert.equal((await load({ env: key, embeddedWhenNoFile: true })).config.drain.fusion.embeddedSim, false);
    assert.equal((await load({ env: { ...key, SEALFLOW_DRAIN__FUSION__EMBEDDED_SIM: 'true' }, embeddedWhenNoFile: true })).config.drain.fusion.embeddedSim, true);
    assert.equal((await load({ env: { SEALFLOW_DATA_DIR: dataDir }, embeddedWhenNoFile: true })).config.drain.fusion.embeddedSim, true);
  });

  test('a config file replaces the embedded defaults entirely', async () => {
    const r = await load({ configPath: valid, env: KEYS, embeddedWhenNoFile: true });
    assert.equal(r.embedded, false);
    assert.equal(r.config.development.generatePki, false);
    assert.equal(r.config.drain.fusion.embeddedSim, false);
  });

  test('logging the redacted config never shows a secret', async () => {
    const r = await load({
      configPath: valid,
      env: { SEALFLOW_SPOOL_KEK_COMMAND: '/usr/bin/kms-unwrap --token S3CR3T-ARG', SEALFLOW_FUSION_NETOSECRET: 'n', SEALFLOW_DRAIN__FUSION__PROXY_URL: 'http://u:PW-9911@proxy:3128' },
    });
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', pretty: false }, { write: (s: string) => lines.push(s) });
    logger.info({ config: redactConfig(r.config) }, 'configuration loaded');
    const out = lines.join('');
    assert.ok(out.includes('proxy:3128'), 'the config was logged');
    const shown = redactConfig(r.config).spool as Record<string, unknown>;
    assert.deepEqual(shown.kek, { command: ['/usr/bin/kms-unwrap', '[redacted] (2 arguments)'] });
    assert.ok(!out.includes('S3CR3T-ARG'));
    assert.ok(!out.includes('PW-9911'));
  });
});

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { encodeNetosecret } from '../../src/drain/netosecret.js';
import { createTestPki, type TestPki } from '../support/test-pki.js';

/**
 * `sealflow config check` through the real CLI entry as a child process: every invalid
 * configuration in the fixtures table prints exactly its message and exits 78 (EX_CONFIG);
 * valid ones print the effective configuration, and no secret value ever reaches the output.
 */

const repoRoot = resolve(import.meta.dirname, '../..');
const fixtures = join(repoRoot, 'test/fixtures/config');
const EX_CONFIG = 78;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `sealflow <args>` with exactly `env` (plus PATH/HOME), so the developer's SEALFLOW_* variables cannot leak in. */
function sealflow(args: readonly string[], env: Record<string, string> = {}, asNobody = false): Promise<Run> {
  // As root, `nobody` stands for a service user without capabilities (as DynamicUser= runs it).
  const prefix = asNobody && process.getuid?.() === 0 ? ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath] : [];
  return new Promise((done) => {
    execFile(
      prefix.length > 0 ? 'setpriv' : process.execPath,
      [...prefix, '--import', 'tsx', 'src/main.ts', ...args],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/tmp', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** The keys every otherwise-valid fixture is checked with (supplied the conventional way, in their real formats: config check parses them as run does). */
const KEYS = {
  SEALFLOW_SPOOL_KEK: Buffer.alloc(32, 0x5a).toString('base64'),
  SEALFLOW_FUSION_NETOSECRET: encodeNetosecret({ url: 'https://api.example.test/api/v1', shortname: 'fixture', appname: 'probe', sharedsecret: 'fixture-shared', appkey: 'fixture-app' }),
};
/** valid.yaml names TLS files that do not exist on the test machine: cases about something else switch the listeners off. */
const NO_TLS = { SEALFLOW_LISTENERS__TLS__ENABLED: 'false', SEALFLOW_LISTENERS__DTLS__ENABLED: 'false' };

interface Case {
  readonly name: string;
  /** Fixture under test/fixtures/config/invalid/ (or a path relative to test/fixtures/config). */
  readonly file: string;
  /** Variables on top of KEYS. */
  readonly env?: Record<string, string>;
  /** Run without KEYS. */
  readonly withoutKeys?: boolean;
  /** Exact stderr after "sealflow config check: "; <FILE> stands for the absolute fixture path. */
  readonly message: string;
}

const CASES: readonly Case[] = [
  {
    name: 'unknown key, with a suggestion',
    file: 'unknown-key.yaml',
    message:
      'invalid configuration in <FILE>: spool.quotaByte: unknown key; did you mean "quotaBytes"? allowed keys: dir, quotaBytes, fullPolicy, reserveBytes, batch, synchronous, epochSeconds, kek, previousKeks, maxAgeSeconds',
  },
  {
    name: 'unknown top-level key, no far-fetched suggestion',
    file: 'unknown-top-level.yaml',
    message: 'invalid configuration in <FILE>: sflow: unknown key; allowed keys: dataDir, log, listeners, tees, filters, decode, spool, privacy, drain, admin, audit, stats, shutdown, development',
  },
  { name: 'port out of range', file: 'port-range.yaml', message: 'invalid configuration in <FILE>: listeners.udp[0].port: must be at most 65535; got 70000' },
  { name: 'value outside an enum', file: 'bad-enum.yaml', message: 'invalid configuration in <FILE>: drain.fusion.compression: must be one of "gzip", "zstd", "none"; got "brotli"' },
  {
    name: 'inline secret rejected even when the environment also supplies the key',
    file: 'inline-secret.yaml',
    message:
      'invalid configuration in <FILE>: spool.kek: inline secret values are not accepted in configuration; use {env: "VAR"}, {file: "/path"} or {command: ["argv0", ...]} (or the matching SEALFLOW_*, *_FILE, *_COMMAND environment variable)',
  },
  { name: 'wrong type', file: 'wrong-type.yaml', message: 'invalid configuration in <FILE>: spool.quotaBytes: must be a number; got "lots"' },
  {
    name: 'TLS enabled without its files and identities',
    file: 'tls-missing-files.yaml',
    message: [
      'invalid configuration in <FILE> (4 problems):',
      '  - listeners.tls.certFile: is required when listeners.tls.enabled is true',
      '  - listeners.tls.keyFile: is required when listeners.tls.enabled is true',
      '  - listeners.tls.caFile: is required when listeners.tls.enabled is true',
      '  - listeners.tls.identities: is empty, so no exporter could connect over TLS; list the identities (certificate DNS names) allowed to send',
    ].join('\n'),
  },
  {
    name: 'two listeners on one port',
    file: 'duplicate-port.yaml',
    message: 'invalid configuration in <FILE>: listeners.udp[1].port: UDP port 2055 is already used by listeners.udp[0].port; every listener needs its own port',
  },
  {
    name: 'allowlist entry that is not a prefix',
    file: 'bad-allowlist.yaml',
    message: 'invalid configuration in <FILE>: listeners.allowlist[1]: must be an IP address or CIDR prefix (e.g. 192.0.2.0/24, 2001:db8::/32); got "10.0.0.0/33"',
  },
  { name: 'filter rule the filter compiler refuses', file: 'bad-filter.yaml', message: 'invalid configuration in <FILE>: filters.rules[0].srcports[0]: "90-80": range start is greater than its end' },
  {
    name: 'tee target without a port',
    file: 'bad-tee-target.yaml',
    message: 'invalid configuration in <FILE>: tees[0].targets[0]: must be "host:port" (IPv6 as "[addr]:port"); got "collector.example.net"',
  },
  { name: 'plain-HTTP upload URL', file: 'insecure-upload-url.yaml', message: 'invalid configuration in <FILE>: drain.fusion.uploadUrl: must be an https URL; got "http://fusion.example.net/upload"' },
  {
    name: 'no spool key and no Fusion key anywhere',
    file: 'no-keys.yaml',
    withoutKeys: true,
    message: [
      'invalid configuration in <FILE> (2 problems):',
      '  - spool.kek: no key-encryption key is configured; set SEALFLOW_SPOOL_KEK, SEALFLOW_SPOOL_KEK_FILE or SEALFLOW_SPOOL_KEK_COMMAND, or spool.kek: {file: /path} (create a key with `sealflow keygen`)',
      '  - drain.fusion.netosecret: no Fusion API key is configured; set SEALFLOW_FUSION_NETOSECRET, SEALFLOW_FUSION_NETOSECRET_FILE or _COMMAND, or drain.fusion.netosecret: {file: /path} (or drain.enabled: false)',
    ].join('\n'),
  },
  {
    name: 'YAML syntax error with its position',
    file: 'bad-yaml.yaml',
    message: 'config file <FILE> is not valid YAML at line 3, column 1: Flow map in block collection must be sufficiently indented and end with a }',
  },
  { name: 'key given twice', file: 'duplicate-key.yaml', message: 'config file <FILE> is not valid YAML at line 3, column 1: Map keys must be unique' },
  { name: 'top level is not a mapping', file: 'not-a-mapping.yaml', message: 'config file <FILE> must contain a mapping of settings at the top level; got a list of 2' },
  { name: 'missing config file', file: 'does-not-exist.yaml', message: 'config file <FILE> does not exist' },
  {
    name: 'bad value from the environment names the variable',
    file: '../valid.yaml',
    env: { SEALFLOW_SPOOL__QUOTA_BYTES: 'lots' },
    message: 'invalid configuration in <FILE>: spool.quotaBytes: must be a number; got "lots" (from SEALFLOW_SPOOL__QUOTA_BYTES)',
  },
  {
    name: 'mistyped environment variable is not ignored',
    file: '../valid.yaml',
    env: { SEALFLOW_SPOOL_QUOTA_BYTES: '1000000000' },
    message: 'SEALFLOW_SPOOL_QUOTA_BYTES: is not a sealflow setting; did you mean SEALFLOW_SPOOL__QUOTA_BYTES?',
  },
  {
    name: 'two sources for one secret',
    file: '../valid.yaml',
    env: { SEALFLOW_SPOOL_KEK_FILE: '/run/credentials/kek' },
    message: 'SEALFLOW_SPOOL_KEK, SEALFLOW_SPOOL_KEK_FILE: set only one of SEALFLOW_SPOOL_KEK, SEALFLOW_SPOOL_KEK_FILE, SEALFLOW_SPOOL_KEK_COMMAND',
  },
  {
    name: 'secret file that does not exist',
    file: '../valid.yaml',
    env: { ...NO_TLS, SEALFLOW_SPOOL_KEK: '', SEALFLOW_SPOOL_KEK_FILE: '/nonexistent/sealflow-kek' },
    message: 'spool.kek (from SEALFLOW_SPOOL_KEK_FILE): secret file /nonexistent/sealflow-kek does not exist',
  },
  {
    name: 'DTLS inherits TLS trust, and says so when both lack it',
    file: '../minimal.yaml',
    env: { SEALFLOW_LISTENERS__DTLS__ENABLED: 'true', SEALFLOW_LISTENERS__DTLS__IDENTITIES: '[{"name":"edge1.example.net"}]' },
    message: [
      'invalid configuration in <FILE> (3 problems):',
      '  - listeners.dtls.certFile: is required when listeners.dtls.enabled is true (or set listeners.tls.certFile, which DTLS inherits)',
      '  - listeners.dtls.keyFile: is required when listeners.dtls.enabled is true (or set listeners.tls.keyFile, which DTLS inherits)',
      '  - listeners.dtls.caFile: is required when listeners.dtls.enabled is true (or set listeners.tls.caFile, which DTLS inherits)',
    ].join('\n'),
  },
];

/** Runs `tasks` with at most `limit` in flight (the machine's cores are shared). */
async function pool<T>(tasks: readonly (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      const task = tasks[i];
      if (task !== undefined) results[i] = await task();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return results;
}

describe('sealflow config check: invalid configurations', () => {
  const runs = new Map<string, Run>();
  before(async () => {
    const out = await pool(
      CASES.map((c) => () => sealflow(['config', 'check', '--config', join(fixtures, 'invalid', c.file)], { ...(c.withoutKeys === true ? {} : KEYS), ...c.env })),
      2,
    );
    CASES.forEach((c, i) => {
      const r = out[i];
      if (r !== undefined) runs.set(c.name, r);
    });
  });

  for (const c of CASES) {
    test(c.name, () => {
      const r = runs.get(c.name);
      assert.ok(r !== undefined);
      const file = join(fixtures, 'invalid', c.file);
      assert.equal(r.stderr, `sealflow config check: ${c.message.replaceAll('<FILE>', file)}\n`);
      assert.equal(r.stdout, '');
      assert.equal(r.code, EX_CONFIG);
    });
  }

  test('the inline secret value itself is never echoed', () => {
    const r = runs.get('inline secret rejected even when the environment also supplies the key');
    assert.ok(r !== undefined);
    assert.ok(!r.stderr.includes('sup3r-inline-secret-9Qx'));
  });
});

describe('sealflow config check: valid configurations', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sealflow-config-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('prints the effective configuration: file, then environment overrides', async () => {
    const r = await sealflow(['config', 'check', '--json', '--config', join(fixtures, 'valid.yaml')], {
      ...KEYS,
      SEALFLOW_SPOOL__QUOTA_BYTES: '5368709120',
      SEALFLOW_LISTENERS__ALLOWLIST: '198.51.100.0/24, 203.0.113.7',
      SEALFLOW_LOG__LEVEL: 'debug',
      SEALFLOW_LISTENERS__TLS__ENABLED: 'off',
      SEALFLOW_LISTENERS__DTLS__ENABLED: 'false',
    });
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    interface Shown {
      spool: { quotaBytes: number; dir: string; batch: { maxRecords: number } };
      listeners: { allowlist: string[]; tls: { enabled: boolean }; dtls: { certFile?: string } };
      log: { level: string };
    }
    const c = JSON.parse(r.stdout) as Shown;
    assert.equal(c.spool.quotaBytes, 5368709120, 'env overrides the file');
    assert.equal(c.spool.batch.maxRecords, 2000, 'file value kept where env is silent');
    assert.deepEqual(c.listeners.allowlist, ['198.51.100.0/24', '203.0.113.7']);
    assert.equal(c.log.level, 'debug');
    assert.equal(c.listeners.tls.enabled, false);
    assert.equal(c.listeners.dtls.certFile, '/etc/sealflow/collector.pem', 'DTLS inherits TLS trust files');
    assert.equal(c.spool.dir, '/var/lib/sealflow/spool');
  });

  test('no config file: the embedded development configuration, loopback only', async () => {
    const r = await sealflow(['config', 'check'], { SEALFLOW_DATA_DIR: join(dir, 'data') });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /# base: embedded development configuration/);
    assert.match(r.stdout, /development key file .*dev-kek will be created on first start/);
    const doc = parseYaml(r.stdout) as { listeners: { udp: { address: string; port: number }[]; allowlist: string[] }; drain: { fusion: { embeddedSim: boolean } }; admin: { address: string } };
    assert.deepEqual(doc.listeners.udp.map((u) => `${u.address}:${u.port}`), ['127.0.0.1:4739', '127.0.0.1:2055', '127.0.0.1:6343']);
    assert.deepEqual(doc.listeners.allowlist, ['127.0.0.0/8', '::1']);
    assert.equal(doc.drain.fusion.embeddedSim, true);
    assert.equal(doc.admin.address, '127.0.0.1');
  });

  test('no secret value reaches the output, from env, file or command sources', async () => {
    const kek = Buffer.from('KEK-7f3a9c1e-distinct-value-32by').toString('base64');
    const sharedsecret = 'NETO-b81d4e22-distinct-value';
    const neto = encodeNetosecret({ url: 'https://api.example.test/api/v1', shortname: 'acme', appname: 'probe', sharedsecret, appkey: 'APPKEY-99aa-distinct' });
    const oldKek = Buffer.from('OLDKEK-5a5a-distinct-32-bytes!!!').toString('base64');
    const token = 'TOKEN-c0ffee55-distinct-value';
    const argSecret = 'ARG-d00dfeed-vault-token';
    const netoFile = join(dir, 'netosecret');
    await writeFile(netoFile, neto + '\n');
    await chmod(netoFile, 0o600);
    const tokenFile = join(dir, 'admin-token');
    await writeFile(tokenFile, token);
    await chmod(tokenFile, 0o640); // group-readable on purpose: warned about, without the value
    const config = join(dir, 'secrets.yaml');
    await writeFile(
      config,
      [
        'spool:',
        '  previousKeks:',
        `    - command: ["${process.execPath}", "-e", "process.stdout.write('${oldKek}')", "${argSecret}"]`,
        'drain:',
        '  fusion:',
        `    proxyUrl: "http://proxyuser:PROXYPASS-e1e1@proxy.example.net:3128"`,
        'admin:',
        `  token: {file: "${tokenFile}"}`,
        '',
      ].join('\n'),
    );
    const runs = [
      await sealflow(['config', 'check', '--config', config], { SEALFLOW_SPOOL_KEK: kek, SEALFLOW_FUSION_NETOSECRET_FILE: netoFile }),
      await sealflow(['config', 'check', '--json', '--config', config], { SEALFLOW_SPOOL_KEK: kek, SEALFLOW_FUSION_NETOSECRET_FILE: netoFile }),
    ];
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      const all = r.stdout + r.stderr;
      for (const secret of [kek, neto, sharedsecret, 'APPKEY-99aa-distinct', token, oldKek, argSecret, 'PROXYPASS-e1e1']) {
        assert.ok(!all.includes(secret), `secret ${secret} leaked into config check output`);
      }
    }
    const [yamlRun] = runs;
    assert.ok(yamlRun !== undefined);
    // The secrets were actually resolved (so the scan above is meaningful) and the loose file was flagged.
    assert.match(yamlRun.stdout, /# secret spool\.kek: ok \(environment variable SEALFLOW_SPOOL_KEK\)/);
    assert.match(yamlRun.stdout, /# secret drain\.fusion\.netosecret: ok \(file .*netosecret\)/);
    assert.match(yamlRun.stdout, /# secret spool\.previousKeks\[0\]: ok \(command .*\)/);
    assert.match(yamlRun.stdout, /# secret admin\.token: ok/);
    assert.match(yamlRun.stderr, /warning: admin\.token: secret file .*admin-token has mode 640 and is readable by group\/other users/);
  });

  test('TLS/DTLS certificates are loaded and checked the way the listeners load them', async () => {
    let pki: TestPki | null = null;
    try {
      pki = await createTestPki();
      const config = join(dir, 'tls.yaml');
      const body = (keyFile: string): string =>
        [
          'listeners:',
          '  tls:',
          '    enabled: true',
          `    certFile: ${pki?.collector.certFile ?? ''}`,
          `    keyFile: ${keyFile}`,
          `    caFile: ${pki?.caFile ?? ''}`,
          `    crlFiles: [${(pki?.crlFiles ?? []).join(', ')}]`,
          '    identities: [{name: exporter1.test, observationDomains: [1]}]',
          '  dtls: {enabled: true}',
          '',
        ].join('\n');
      await writeFile(config, body(pki.collector.keyFile));
      const ok = await sealflow(['config', 'check', '--config', config], KEYS);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /# listeners\.tls: certificate, key, CA bundle and 2 CRL file\(s\) ok/);
      assert.match(ok.stdout, /# listeners\.dtls: certificate, key, CA bundle and 2 CRL file\(s\) ok/);

      // The key of another certificate: caught now, naming the setting, instead of at the first handshake.
      await writeFile(config, body(pki.exporters.valid.keyFile));
      const mismatch = await sealflow(['config', 'check', '--config', config], KEYS);
      assert.equal(mismatch.code, EX_CONFIG);
      assert.match(mismatch.stderr, /^sealflow config check: listeners\.tls\.keyFile \(.*\): the private key does not match listeners\.tls\.certFile/);
      assert.equal(mismatch.stdout, '');

      await writeFile(config, body(join(dir, 'no-such-key.pem')));
      const missing = await sealflow(['config', 'check', '--config', config], KEYS);
      assert.equal(missing.code, EX_CONFIG);
      assert.match(missing.stderr, /^sealflow config check: listeners\.tls\.keyFile.*no-such-key\.pem/);
    } finally {
      await pki?.cleanup();
    }
  });

  test('a secret given as a malformed JSON environment value is not echoed', async () => {
    const r = await sealflow(['config', 'check', '--config', join(fixtures, 'valid.yaml')], { ...KEYS, SEALFLOW_ADMIN__TOKEN: 'raw-token-QQ77-value' });
    assert.equal(r.code, EX_CONFIG);
    assert.equal(r.stderr, 'sealflow config check: SEALFLOW_ADMIN__TOKEN: must be JSON; e.g. {"file":"/path"}\n');
  });
});

describe('sealflow config schema', () => {
  test('prints a JSON Schema that rejects unknown keys and documents every setting', async () => {
    const r = await sealflow(['config', 'schema']);
    assert.equal(r.code, 0, r.stderr);
    const schema = JSON.parse(r.stdout) as { $schema: string; additionalProperties: boolean; properties: Record<string, { description?: string; properties?: Record<string, { description?: string; default?: unknown }> }> };
    assert.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(schema.additionalProperties, false);
    assert.equal(schema.properties.spool?.properties?.quotaBytes?.default, 10 * 1024 ** 3);
    for (const [k, v] of Object.entries(schema.properties)) assert.ok((v.description ?? '') !== '', `${k} has a description`);
  });

  test('--markdown and --env list every environment variable', async () => {
    const md = await sealflow(['config', 'schema', '--markdown']);
    assert.equal(md.code, 0);
    assert.match(md.stdout, /\| `spool\.quotaBytes` \| `SEALFLOW_SPOOL__QUOTA_BYTES` \| `10737418240` \|/);
    const env = await sealflow(['config', 'schema', '--env']);
    assert.match(env.stdout, /^SEALFLOW_SPOOL_KEK_COMMAND +spool\.kek/m);
  });

  test('usage errors exit 64', async () => {
    const r = await sealflow(['config', 'frobnicate']);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /unknown subcommand "frobnicate"/);
  });
});

describe('sealflow config check: every check run makes, all problems at once', () => {
  let dir = '';
  let pki: TestPki | null = null;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sealflow-config-check-'));
    await chmod(dir, 0o755);
    pki = await createTestPki();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
    await pki?.cleanup();
  });

  /** A production-shaped file; `tls` overrides listeners.tls. */
  async function configFile(name: string, udpPort: number, tls: Record<string, unknown>): Promise<string> {
    const path = join(dir, name);
    const lines = [
      'listeners:',
      '  allowlist: [192.0.2.0/24]',
      `  udp: [{name: syslogish, port: ${udpPort}}]`,
      `  tls: ${JSON.stringify({ enabled: true, identities: [{ name: 'exporter1.test' }], ...tls })}`,
      '',
    ];
    await writeFile(path, lines.join('\n'), { mode: 0o644 });
    return path;
  }

  test('missing files, a malformed KEK and netosecret, a port below 1024: each reported, exit 78; run refuses with the same problems', async () => {
    assert.ok(pki !== null);
    // The files the check can read, readable by the user it runs as.
    const key = join(dir, 'collector-key.pem');
    const ca = join(dir, 'ca.pem');
    await writeFile(key, await readFile(pki.collector.keyFile), { mode: 0o600 });
    if (process.getuid?.() === 0) await chown(key, 65534, 65534);
    await writeFile(ca, await readFile(pki.caFile), { mode: 0o644 });
    const config = await configFile('broken.yaml', 514, {
      certFile: join(dir, 'no-such-cert.pem'),
      keyFile: key,
      caFile: ca,
      crlFiles: [join(dir, 'no-such.crl.pem')],
    });
    const env = { SEALFLOW_SPOOL_KEK: 'bm90IGEga2V5', SEALFLOW_FUSION_NETOSECRET: 'not-a-netosecret', SEALFLOW_DATA_DIR: join(dir, 'data') };
    const expected = [
      /listeners\.tls\.certFile: .*no-such-cert\.pem does not exist/,
      /listeners\.tls\.crlFiles\[0\]: .*no-such\.crl\.pem does not exist/,
      /spool\.kek \(from SEALFLOW_SPOOL_KEK\): not a valid key-encryption key/,
      /SEALFLOW_FUSION_NETOSECRET \(drain\.fusion\.netosecret\): /,
      /listeners\.udp\[0\]\.port: UDP 0\.0\.0\.0 port 514 is below 1024 .* lacks CAP_NET_BIND_SERVICE/,
    ];
    const check = await sealflow(['config', 'check', '--config', config], env, true);
    assert.equal(check.code, EX_CONFIG, check.stderr);
    assert.equal(check.stdout, '');
    for (const re of expected) assert.match(check.stderr, re);
    assert.equal(check.stderr.split('\n').filter((l) => l.startsWith('sealflow config check: ')).length, expected.length, check.stderr);
    assert.ok(!check.stderr.includes('bm90IGEga2V5') && !check.stderr.includes('not-a-netosecret'), 'no secret value in the output');

    const run = await sealflow(['run', '--config', config], { ...env, SEALFLOW_LOG__FORMAT: 'json' }, true);
    assert.equal(run.code, EX_CONFIG, run.stderr);
    for (const re of expected) assert.match(run.stderr, re);
    assert.doesNotMatch(run.stderr, /listener ready/);
  });

  test('a private key readable by others is a warning (run starts with it); --strict makes it a problem', async () => {
    assert.ok(pki !== null);
    const key = join(dir, 'loose-key.pem');
    await writeFile(key, await readFile(pki.collector.keyFile));
    await chmod(key, 0o644);
    const config = await configFile('loose.yaml', 4739, { certFile: pki.collector.certFile, keyFile: key, caFile: pki.caFile });
    const env = { ...KEYS, SEALFLOW_DATA_DIR: join(dir, 'data') };
    const ok = await sealflow(['config', 'check', '--config', config], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /warning: listeners\.tls\.keyFile: secret file .*loose-key\.pem has mode 644 and is readable by group\/other users; chmod 600/);
    const strict = await sealflow(['config', 'check', '--strict', '--config', config], env);
    assert.equal(strict.code, EX_CONFIG);
    assert.match(strict.stderr, /loose-key\.pem has mode 644/);
  });

  test('a CIDR prefix with host bits set is an error naming both readings', async () => {
    const config = join(dir, 'hostbits.yaml');
    await writeFile(config, 'listeners:\n  allowlist: [192.0.2.1/24, "2001:db8::1/64", 198.51.100.0/24]\n');
    const r = await sealflow(['config', 'check', '--config', config], KEYS);
    assert.equal(r.code, EX_CONFIG);
    assert.match(r.stderr, /listeners\.allowlist\[0\]: "192\.0\.2\.1\/24" has host bits set; write the network 192\.0\.2\.0\/24 or the single address 192\.0\.2\.1\/32/);
    assert.match(r.stderr, /listeners\.allowlist\[1\]: "2001:db8::1\/64" has host bits set; write the network 2001:db8::\/64 or the single address 2001:db8::1\/128/);
    assert.doesNotMatch(r.stderr, /allowlist\[2\]/);
  });

  test('privacy.pseudonymize: a malformed key is reported, exit 78, and run refuses with the same problem; a rule prefix with host bits is an error', async () => {
    const config = join(dir, 'privacy.yaml');
    const write = (prefix: string): Promise<void> => writeFile(config, `privacy:\n  pseudonymize:\n    key: {env: PZ_KEY}\n    rules: [{action: pseudonymize, prefixes: ["${prefix}"]}]\n`);
    await write('10.1.0.0/16');
    const env = { ...KEYS, PZ_KEY: 'c2hvcnQga2V5', SEALFLOW_DATA_DIR: join(dir, 'data') };
    const check = await sealflow(['config', 'check', '--config', config], env, true);
    assert.equal(check.code, EX_CONFIG, check.stderr);
    assert.match(check.stderr, /privacy\.pseudonymize\.key: not a valid pseudonymisation key/);
    assert.ok(!check.stderr.includes('c2hvcnQga2V5'), 'no secret value in the output');
    const run = await sealflow(['run', '--config', config], { ...env, SEALFLOW_LOG__FORMAT: 'json' }, true);
    assert.equal(run.code, EX_CONFIG, run.stderr);
    assert.match(run.stderr, /privacy\.pseudonymize\.key: not a valid pseudonymisation key/);
    assert.doesNotMatch(run.stderr, /listener ready/);

    await write('10.1.2.3/16');
    const hostBits = await sealflow(['config', 'check', '--config', config], { ...env, PZ_KEY: Buffer.alloc(32, 7).toString('base64') }, true);
    assert.equal(hostBits.code, EX_CONFIG, hostBits.stderr);
    assert.match(hostBits.stderr, /privacy\.pseudonymize\.rules\[0\]\.prefixes\[0\]: "10\.1\.2\.3\/16" has host bits set; write the network 10\.1\.0\.0\/16/);
  });
});


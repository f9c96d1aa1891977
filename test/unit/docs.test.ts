/**
 * The documentation teaches commands that work and links that lead somewhere: every
 * `sealflow …` line quoted in a shell block of README.md, SECURITY.md, docs/*.md and
 * certs/README.md is accepted by the real CLI (`--help` appended: the strict argv parser
 * rejects unknown commands, subcommands and options before printing help), every `npm run X`
 * names a script of package.json, and every relative link and #anchor resolves. The
 * troubleshooting guide covers every error code of the catalogue and every exit code.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ExitCode } from '../../src/commands/command.js';
import {
  anchorsOf,
  checkCommands,
  checkLinks,
  checkNpmCommand,
  checkSealflowCommand,
  quotedCommands,
  repoRoot,
  simpleCommands,
} from '../support/docs-check.js';

const DOCS = [
  'README.md',
  'SECURITY.md',
  'certs/README.md',
  ...readdirSync(join(repoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .sort()
    .map((f) => `docs/${f}`),
];
const scripts = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
const read = (f: string): string => readFileSync(join(repoRoot, f), 'utf8');

describe('the documentation', () => {
  test('README.md starts with the two commands of a fresh machine, and .ci/run runs its test command', () => {
    const readme = read('README.md');
    const opening = readme.split('\n').filter((l) => l.trim() !== '').slice(0, 4);
    assert.match(opening[0] ?? '', /^# sealflow$/);
    assert.equal(opening[1], '```sh', 'the README opens with a shell block of the two commands');
    assert.match(opening[2] ?? '', /^npm ci && npm start\s+# /);
    assert.match(opening[3] ?? '', /^npm ci && npm test\s+# /);
    const first = quotedCommands(readme).slice(0, 4).map((c) => `${c.kind} ${c.argv.join(' ')}`);
    assert.deepEqual(first, ['npm ci', 'npm start', 'npm ci', 'npm test'], 'the first shell block: `npm ci && npm start`, then `npm ci && npm test`');
    assert.ok(readme.split('\n').length <= 160, `README.md is the short front door (${readme.split('\n').length} lines)`);
    const ci = read('.ci/run');
    assert.match(ci, /^npm ci$/m);
    assert.match(ci, /^npm test$/m);
  });

  for (const f of DOCS) {
    test(`${f}: relative links and anchors resolve`, () => {
      assert.deepEqual(checkLinks(join(repoRoot, f), read(f)), []);
    });
    test(`${f}: quoted sealflow and npm commands parse`, async () => {
      assert.deepEqual(await checkCommands(join(repoRoot, f), read(f), scripts), []);
    });
  }

  test('docs/troubleshooting.md explains every error code of the catalogue and every exit code', () => {
    const guide = read('docs/troubleshooting.md');
    const codes = [...read('src/flow/errors.ts').matchAll(/'(ERR_[A-Z_]+)'/g)].map((m) => m[1] ?? '');
    assert.ok(codes.length >= 30, `the catalogue parsed (${codes.length} codes)`);
    assert.deepEqual(codes.filter((c) => !guide.includes(`\`${c}\``)), [], 'codes missing from docs/troubleshooting.md');
    const exits = Object.values(ExitCode).filter((c) => !new RegExp(`^\\| ${c} \\|`, 'm').test(guide));
    assert.deepEqual(exits, [], 'exit codes without a row in docs/troubleshooting.md');
  });

  test('docs/README.md links every page in docs/', () => {
    const index = read('docs/README.md');
    for (const f of DOCS.filter((d) => d.startsWith('docs/') && d !== 'docs/README.md')) {
      assert.ok(index.includes(`(${f.slice('docs/'.length)}`), `docs/README.md links ${f}`);
    }
  });

  test('the configuration reference is reached from the README and the docs index', () => {
    assert.match(read('README.md'), /\]\(docs\/configuration\.md/);
    assert.match(read('docs/README.md'), /\]\(configuration\.md/);
  });
});

describe('the documentation checker fails on', () => {
  const page = join(repoRoot, 'docs', 'example.md');

  test('a link to a missing file and to a missing heading', () => {
    const md = 'See [deploying](deployment.md), [gone](no-such-page.md), [top](../README.md#no-such-heading) and [here](#intro).\n\n## Intro\n';
    const problems = checkLinks(page, md);
    assert.equal(problems.length, 2, problems.join('\n'));
    assert.match(problems[0] ?? '', /no-such-page\.md does not exist/);
    assert.match(problems[1] ?? '', /no heading #no-such-heading in README\.md/);
  });

  test('links in code are not links', () => {
    assert.deepEqual(checkLinks(page, '`[x](nope.md)`\n\n```md\n[y](nope.md)\n```\n'), []);
  });

  test('a misspelt option, an unknown subcommand, an unknown command, a stray argument', async () => {
    assert.deepEqual(await checkSealflowCommand(['run', '--config', '/etc/sealflow/sealflow.yaml']), []);
    assert.deepEqual(await checkSealflowCommand(['spool', 'export', '--format', 'ndjson']), []);
    const misspelt = await checkSealflowCommand(['run', '--confg', '/etc/sealflow/sealflow.yaml']);
    assert.match(misspelt.join('\n'), /exits 64: sealflow run: Unknown option '--confg'/);
    assert.match((await checkSealflowCommand(['spool', 'stats'])).join('\n'), /no such subcommand/);
    assert.match((await checkSealflowCommand(['config', 'chek'])).join('\n'), /exits 64/);
    assert.match((await checkSealflowCommand(['frobnicate'])).join('\n'), /exits 64: sealflow: unknown command "frobnicate"/);
    assert.match((await checkSealflowCommand(['keygen', 'extra'])).join('\n'), /exits 64/);
    assert.deepEqual(await checkSealflowCommand(['run', '[--config', 'FILE]', '[--stdout]']), []);
    assert.match((await checkSealflowCommand(['run', '[--confg', 'FILE]'])).join('\n'), /Unknown option '--confg'/);
  });

  test('a missing npm script', () => {
    assert.deepEqual(checkNpmCommand(['run', 'bench', '--', 'decode'], scripts), []);
    assert.deepEqual(checkNpmCommand(['ci'], scripts), []);
    assert.match(checkNpmCommand(['run', 'tset'], scripts).join(''), /no script "tset"/);
  });

  test('a bad command wherever the shell puts it', async () => {
    const md = [
      '```sh',
      '$ SEALFLOW_SPOOL_KEK_FILE=/run/k sudo -u sealflow npx sealflow spool status --data-dir /var/lib/sealflow',
      "unshare -n sh -c 'ip link set lo up && npm run soak -- crash'   # comment: sealflow --nope",
      'sealflow keygen > kek.b64 && node bin/sealflow.js decode \\',
      '  --exporter 192.0.2.1 capture.pcap 2>&1 | head',
      'export SEALFLOW_SPOOL_KEK="$(sealflow keygen --purpose spool)"',
      'tcpdump -w - udp port 2055 | sealflow decode --exportr 192.0.2.1 -',
      '```',
      '',
      '```yaml',
      'sealflow --not-a-shell-block',
      '```',
    ].join('\n');
    assert.deepEqual(
      quotedCommands(md).map((c) => `${c.line} ${c.kind} ${c.argv.join(' ')}`),
      [
        '2 sealflow spool status --data-dir /var/lib/sealflow',
        '3 npm run soak -- crash',
        '4 sealflow keygen',
        '4 sealflow decode --exporter 192.0.2.1 capture.pcap',
        '6 sealflow keygen --purpose spool',
        '7 sealflow decode --exportr 192.0.2.1 -',
      ],
    );
    const problems = await checkCommands(page, md, scripts);
    assert.equal(problems.length, 1, problems.join('\n'));
    assert.match(problems[0] ?? '', /^docs\/example\.md:7: `sealflow decode --exportr/);
  });

  test('shell words: quotes, escapes, redirections', () => {
    assert.deepEqual(simpleCommands(`a 'b c' "d \\"e\\"" f\\ g >out 2>&1 < in; h`), [['a', 'b c', 'd "e"', 'f g'], ['h']]);
  });

  test('anchors are GitHub heading slugs', () => {
    const a = anchorsOf('# Title\n## One layer per record (`decode.tunnelLayer`, `--tunnel-layer`)\n## Title\n```\n# not a heading\n```\n');
    assert.deepEqual([...a], ['title', 'one-layer-per-record-decodetunnellayer---tunnel-layer', 'title-1']);
  });
});

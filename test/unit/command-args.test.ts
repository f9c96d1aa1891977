import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { ExitCode, parseCommandArgs, type CommandIo } from '../../src/commands/command.js';

function io(): { io: CommandIo; out: () => string; err: () => string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let o = '';
  let e = '';
  stdout.on('data', (b: Buffer) => (o += b.toString()));
  stderr.on('data', (b: Buffer) => (e += b.toString()));
  return { io: { stdout, stderr, env: {} }, out: () => o, err: () => e };
}

const OPTIONS = { port: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const;

test('parseCommandArgs: values, usage errors (64) with the help on stderr, --help (0) on stdout, positionals only when allowed', () => {
  const a = io();
  const ok = parseCommandArgs('demo', 'HELP TEXT\n', ['--port', '9'], a.io, OPTIONS);
  assert.notEqual(typeof ok, 'number');
  assert.equal(typeof ok === 'number' ? null : ok.values.port, '9');

  const b = io();
  assert.equal(parseCommandArgs('demo', 'HELP TEXT\n', ['--nope'], b.io, OPTIONS), ExitCode.Usage);
  assert.match(b.err(), /^sealflow demo: Unknown option '--nope'[\s\S]*HELP TEXT/);

  const c = io();
  assert.equal(parseCommandArgs('demo', 'HELP TEXT\n', ['-h'], c.io, OPTIONS), ExitCode.Ok);
  assert.equal(c.out(), 'HELP TEXT\n');

  const d = io();
  assert.equal(parseCommandArgs('demo', 'HELP TEXT\n', ['file.dat'], d.io, OPTIONS), ExitCode.Usage, 'positionals refused by default');
  const e = parseCommandArgs('demo', 'HELP TEXT\n', ['file.dat'], io().io, OPTIONS, true);
  assert.deepEqual(typeof e === 'number' ? null : e.positionals, ['file.dat']);
});

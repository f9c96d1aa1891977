/**
 * SECURITY.md states only what the tests prove: every row of its guarantees table has an entry
 * under "How each guarantee is tested", and every test named there exists (file present, each
 * quoted name found in it). Also the two guarantees that are checked here directly: no setting
 * turns TLS/DTLS client authentication off, and the systemd unit turns core dumps off.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ConfigSchema } from '../../src/config/schema.js';
import { repoRoot } from '../support/softflowd.js';

const doc = readFileSync(join(repoRoot, 'SECURITY.md'), 'utf8');

/** The threat names of the guarantees table: the bold text opening each row. */
function tableThreats(): string[] {
  const start = doc.indexOf('## What sealflow guarantees');
  const end = doc.indexOf('\n## ', start + 1);
  return [...doc.slice(start, end).matchAll(/^\| \*\*(.+?)\*\*/gm)].map((m) => m[1] ?? '');
}

interface Reference {
  readonly threat: string;
  readonly file: string;
  readonly names: string[];
}

/** "### Threat" headings of the tested section, each with its `file` "name", "name" references. */
function testedSection(): Map<string, Reference[]> {
  const start = doc.indexOf('## How each guarantee is tested');
  assert.ok(start >= 0, 'SECURITY.md has a "How each guarantee is tested" section');
  const end = doc.indexOf('\n## ', start + 1);
  const out = new Map<string, Reference[]>();
  let threat = '';
  for (const line of doc.slice(start, end).split('\n')) {
    const heading = /^### (.+)$/.exec(line);
    if (heading !== null) {
      threat = heading[1] ?? '';
      out.set(threat, []);
      continue;
    }
    if (!line.startsWith('- ') || threat === '') continue;
    const refs = out.get(threat) ?? [];
    // Each `test/….test.ts` owns the quoted names that follow it, up to the next file.
    const parts = line.split(/`(test\/[^`]+\.test\.ts)`/);
    for (let i = 1; i < parts.length; i += 2) {
      const names = [...(parts[i + 1] ?? '').matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((m) => (m[1] ?? '').replaceAll('\\"', '"'));
      refs.push({ threat, file: parts[i] ?? '', names });
    }
    out.set(threat, refs);
  }
  return out;
}

describe('SECURITY.md and the tests say the same thing', () => {
  test('every row of the guarantees table has tests listed, and only those rows', () => {
    const threats = tableThreats();
    assert.ok(threats.length >= 8, `table rows found: ${threats.join(', ')}`);
    const tested = testedSection();
    assert.deepEqual([...tested.keys()], threats, 'one "###" entry per table row, in the same order, with the same name');
    for (const [threat, refs] of tested) {
      assert.ok(refs.length > 0, `${threat}: no test listed`);
      for (const r of refs) assert.ok(r.names.length > 0, `${threat}: ${r.file} is listed without a test name`);
    }
  });

  test('every listed test file exists and holds every quoted test name', () => {
    const missing: string[] = [];
    for (const refs of testedSection().values()) {
      for (const r of refs) {
        const path = join(repoRoot, r.file);
        if (!existsSync(path)) {
          missing.push(`${r.threat}: ${r.file} does not exist`);
          continue;
        }
        const text = readFileSync(path, 'utf8');
        for (const name of r.names) if (!text.includes(name)) missing.push(`${r.threat}: "${name}" not in ${r.file}`);
      }
    }
    assert.deepEqual(missing, []);
  });

  test('no configuration setting turns TLS/DTLS client authentication off', () => {
    interface Node { properties?: Record<string, Node> }
    const schema = z.toJSONSchema(ConfigSchema, { io: 'input', unrepresentable: 'any' }) as unknown as Node;
    const listeners = schema.properties?.listeners?.properties ?? {};
    for (const which of ['tls', 'dtls']) {
      const keys = Object.keys(listeners[which]?.properties ?? {});
      assert.ok(keys.includes('caFile') && keys.includes('identities'), `${which}: the schema lists its settings (${keys.join(', ')})`);
      const switches = keys.filter((k) => /verify|auth|client.?cert|request|reject|insecure|anonymous|trust(?!ed)|mutual|optional/i.test(k));
      assert.deepEqual(switches, [], `listeners.${which} has no setting that could relax client authentication`);
    }
  });

  test('the systemd unit sets LimitCORE=0', () => {
    const unit = readFileSync(join(repoRoot, 'deploy/sealflow.service'), 'utf8');
    assert.match(unit, /^LimitCORE=0$/m);
  });
});

/**
 * Generates src/decode/ie/ie-table.generated.ts from the libfds Information Element XML files
 * in scripts/information-elements/ (IANA registry plus Cisco, NetScaler, VMware and CERT
 * enterprise elements, plus the NetFlow v9 field types that IPFIX does not define).
 *
 * The product never reads the XML at run time: the generated file is committed. Re-run with
 * `npm run gen:ie` after updating the XML; the output is deterministic (sorted by PEN, id).
 *
 * Usage: node --import tsx scripts/gen-ie-table.ts [SOURCE_DIR] [OUT_FILE]
 */
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { resolve, basename } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = resolve(fileURLToPath(new URL('..', import.meta.url)));
const sourceDir = resolve(process.argv[2] ?? resolve(repoRoot, 'scripts/information-elements'));
const outFile = resolve(process.argv[3] ?? resolve(repoRoot, 'src/decode/ie/ie-table.generated.ts'));

/** The abstract data types of RFC 7012 §3.1 and RFC 6313; anything else in the XML is an error. */
const DATA_TYPES = new Set([
  'octetArray', 'unsigned8', 'unsigned16', 'unsigned32', 'unsigned64', 'signed8', 'signed16', 'signed32',
  'signed64', 'float32', 'float64', 'boolean', 'macAddress', 'string', 'dateTimeSeconds',
  'dateTimeMilliseconds', 'dateTimeMicroseconds', 'dateTimeNanoseconds', 'ipv4Address', 'ipv6Address',
  'basicList', 'subTemplateList', 'subTemplateMultiList',
]);

/** Spelling variants found in the source files, mapped to the RFC 7012 name. */
const TYPE_ALIASES: Readonly<Record<string, string>> = { ipv6address: 'ipv6Address' };

interface Row {
  id: number;
  enterprise: number;
  name: string;
  type: string;
  semantics: string;
  units: string;
}

function tag(block: string, name: string): string {
  const m = new RegExp(`<${name}>([^<]*)</${name}>`).exec(block);
  return m?.[1]?.trim() ?? '';
}

function parseFile(path: string): Row[] {
  const xml = readFileSync(path, 'utf8').replace(/<!--[\s\S]*?-->/g, '');
  const scope = /<scope>([\s\S]*?)<\/scope>/.exec(xml);
  if (!scope?.[1]) throw new Error(`${path}: no <scope>`);
  const enterprise = Number(tag(scope[1], 'pen'));
  if (!Number.isInteger(enterprise) || enterprise < 0 || enterprise > 0xffffffff) throw new Error(`${path}: bad <pen>`);
  const rows: Row[] = [];
  for (const m of xml.matchAll(/<element>([\s\S]*?)<\/element>/g)) {
    const block = m[1] ?? '';
    const id = Number(tag(block, 'id'));
    const name = tag(block, 'name');
    const rawType = tag(block, 'dataType');
    const type = TYPE_ALIASES[rawType] ?? rawType;
    if (!Number.isInteger(id) || id < 0 || id > 0x7fff) throw new Error(`${path}: element ${name}: bad id ${tag(block, 'id')}`);
    if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name)) throw new Error(`${path}: element ${id}: bad name '${name}'`);
    if (!DATA_TYPES.has(type)) throw new Error(`${path}: element ${name}: unknown dataType '${rawType}'`);
    const semantics = tag(block, 'dataSemantics');
    rows.push({ id, enterprise, name, type, semantics: semantics === 'default' ? '' : semantics, units: tag(block, 'units') });
  }
  return rows;
}

/** A single-quoted TypeScript string literal. */
function quote(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

const files = readdirSync(sourceDir).filter((f) => f.endsWith('.xml')).sort();
if (files.length === 0) throw new Error(`no .xml files in ${sourceDir}`);
const byKey = new Map<string, Row>();
for (const f of files) {
  for (const row of parseFile(resolve(sourceDir, f))) {
    // First definition wins; the source files do not repeat (enterprise, id) pairs.
    const key = `${row.enterprise}/${row.id}`;
    if (!byKey.has(key)) byKey.set(key, row);
  }
}
const rows = [...byKey.values()].sort((a, b) => a.enterprise - b.enterprise || a.id - b.id);

const readme = (() => {
  try {
    return readFileSync(resolve(sourceDir, 'README.md'), 'utf8');
  } catch {
    return '';
  }
})();
const commit = /commit ([0-9a-f]{6,40})/.exec(readme)?.[1] ?? 'unknown';

const lines: string[] = [];
lines.push('/**');
lines.push(' * IPFIX Information Element table — generated — do not edit; re-run npm run gen:ie');
lines.push(' * (scripts/gen-ie-table.ts).');
lines.push(' *');
lines.push(` * Source: CESNET/libfds config/system/elements/ (commit ${commit}, BSD-3-Clause), files:`);
lines.push(` *   ${files.map((f) => basename(f)).join(', ')}`);
lines.push(' * PEN 4294967294 / 4294967295 are libfds\'s pseudo-enterprises for NetFlow v9 field types');
lines.push(' * 128–32767 and 32768–65535 (the latter stored as id − 32768).');
lines.push(' */');
lines.push("import type { IeRow } from './ie-types.js';");
lines.push('');
lines.push(`/** ${rows.length} rows: [id, enterprise, name, type, semantics, units]. */`);
lines.push('export const IE_ROWS: readonly IeRow[] = [');
for (const r of rows) {
  lines.push(`  [${r.id}, ${r.enterprise}, ${quote(r.name)}, ${quote(r.type)}, ${quote(r.semantics)}, ${quote(r.units)}],`);
}
lines.push('];');
lines.push('');
writeFileSync(outFile, lines.join('\n'));
console.log(`gen-ie-table: wrote ${rows.length} elements from ${files.length} files to ${outFile}`);

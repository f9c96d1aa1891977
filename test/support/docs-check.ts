/**
 * Checks the user documentation the way a reader uses it: every `sealflow …` and `npm …`
 * command quoted in a shell block must be accepted by the real CLI (its argv parser, strict:
 * unknown commands, subcommands and options are usage errors) or name a script that
 * package.json has, and every relative link (and #anchor into a Markdown file) must resolve.
 *
 * Shell blocks are fenced blocks tagged sh, bash, shell or console. A block line is read as
 * a small shell: backslash continuations joined, `$ ` prompts and comments dropped, split into
 * simple commands at `&&`, `||`, `|`, `;` and `$(…)`, words unquoted, redirections dropped;
 * `VAR=value`, sudo, env, nice, time, exec, unshare and `sh -c 'STRING'` (STRING read again)
 * are looked through. Commands run by docker, systemd or other tools are not sealflow argv.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { main as cliMain } from '../../src/cli.js';

export const repoRoot = resolve(import.meta.dirname, '../..');

const SHELL_LANGS = new Set(['sh', 'bash', 'shell', 'console', 'shell-session']);

export interface ShellLine {
  /** 1-based line of the Markdown file where the (joined) command line starts. */
  readonly line: number;
  readonly text: string;
}

export interface QuotedCommand {
  readonly line: number;
  readonly kind: 'sealflow' | 'npm';
  /** Words after `sealflow` (or after `npm`). */
  readonly argv: readonly string[];
  readonly source: string;
}

/**
 * The lines of a Markdown text with the fenced block each belongs to: `block` is null for prose,
 * else the block's info word (lower case, '' when untagged). Fence lines themselves are left out.
 */
export function markdownLines(markdown: string): { line: number; text: string; block: string | null }[] {
  const out: { line: number; text: string; block: string | null }[] = [];
  let fence: string | null = null;
  let block = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i] ?? '';
    const open = /^\s*(`{3,}|~{3,})\s*([\w-]*)/.exec(raw);
    if (fence === null && open !== null) {
      fence = open[1] ?? '```';
      block = (open[2] ?? '').toLowerCase();
    } else if (fence !== null && open !== null && raw.trim().startsWith(fence) && raw.trim().replace(/[`~]/g, '') === '') {
      fence = null;
    } else {
      out.push({ line: i + 1, text: raw, block: fence === null ? null : block });
    }
  }
  return out;
}

/** The lines of every shell block in a Markdown text, continuations joined. */
export function shellLines(markdown: string): ShellLine[] {
  const out: ShellLine[] = [];
  let pending: ShellLine | null = null;
  for (const { line, text: raw, block } of markdownLines(markdown)) {
    if (block === null || !SHELL_LANGS.has(block)) continue;
    let text = raw.replace(/^\s*\$\s/, '');
    const continued = /\\\s*$/.test(text);
    if (continued) text = text.replace(/\\\s*$/, ' ');
    pending = pending === null ? { line, text } : { line: pending.line, text: pending.text + text };
    if (!continued) {
      out.push(pending);
      pending = null;
    }
  }
  return out;
}

/**
 * Splits one shell line into simple commands of unquoted words. Comments end the line;
 * operators and `$(`/`)` separate commands; redirections and their targets are dropped.
 */
export function simpleCommands(input: string): string[][] {
  const commands: string[][] = [];
  // Command substitutions, also inside double quotes, are commands of their own.
  let line = input;
  for (let open = line.indexOf('$('); open >= 0; open = line.indexOf('$(')) {
    let depth = 0;
    let close = open + 1;
    for (; close < line.length; close++) {
      if (line[close] === '(') depth++;
      else if (line[close] === ')' && --depth === 0) break;
    }
    commands.push(...simpleCommands(line.slice(open + 2, close)));
    line = line.slice(0, open) + 'SUBSTITUTED' + line.slice(close + 1);
  }
  let words: string[] = [];
  const cur: { word: string | null } = { word: null };
  const endWord = (): void => {
    if (cur.word !== null) words.push(cur.word);
    cur.word = null;
  };
  const endCommand = (): void => {
    endWord();
    if (words.length > 0) commands.push(words);
    words = [];
  };
  for (let i = 0; i < line.length; i++) {
    const c = line[i] ?? '';
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      const stop = end < 0 ? line.length : end;
      cur.word = (cur.word ?? '') + line.slice(i + 1, stop);
      i = stop;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < line.length && line[j] !== '"') {
        if (line[j] === '\\' && j + 1 < line.length) j++;
        s += line[j] ?? '';
        j++;
      }
      cur.word = (cur.word ?? '') + s;
      i = j;
    } else if (c === '\\' && i + 1 < line.length) {
      cur.word = (cur.word ?? '') + (line[i + 1] ?? '');
      i++;
    } else if (c === '#' && cur.word === null) {
      break;
    } else if (/\s/.test(c)) {
      endWord();
    } else if (c === ';' || c === '`' || c === '(' || c === ')') {
      endCommand();
    } else if (c === '&' || c === '|') {
      if (line[i + 1] === c) i++;
      // `2>&1` and `&>` are redirections, not operators.
      if (c === '&' && cur.word?.endsWith('>') === true) {
        cur.word += '&';
        continue;
      }
      endCommand();
    } else {
      cur.word = (cur.word ?? '') + c;
    }
  }
  endCommand();
  return commands.map(dropRedirections).filter((w) => w.length > 0);
}

function dropRedirections(words: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i] ?? '';
    const op = /^(\d*|&)(>>?|<<?<?)(&?)(.*)$/.exec(w);
    if (op === null) {
      out.push(w);
      continue;
    }
    // `>file` carries its target; `>` takes the next word; `2>&1` none.
    if ((op[4] ?? '') === '' && (op[3] ?? '') === '') i++;
  }
  return out;
}

/** Wrappers looked through to find the command they run: name → options taking a value. */
const WRAPPERS: Readonly<Record<string, ReadonlySet<string>>> = {
  sudo: new Set(['-u', '-g', '-C', '-D']),
  env: new Set(['-u', '-C']),
  nice: new Set(['-n']),
  time: new Set(),
  exec: new Set(),
  command: new Set(),
  unshare: new Set(),
  timeout: new Set(['-s', '-k']),
};

/** The sealflow and npm invocations in one simple command (recursing into `sh -c STRING`). */
export function quotedCommandsIn(words: readonly string[], line: number, source: string): QuotedCommand[] {
  let i = 0;
  for (;;) {
    const w = words[i];
    if (w === undefined) return [];
    if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(w)) {
      i++;
      continue;
    }
    const wrapper = WRAPPERS[w];
    if (wrapper === undefined) break;
    i++;
    while (words[i]?.startsWith('-') === true) {
      const takesValue = wrapper.has(words[i] ?? '');
      i += takesValue ? 2 : 1;
    }
    // timeout DURATION COMMAND
    if (w === 'timeout' && words[i] !== undefined && /^\d/.test(words[i] ?? '')) i++;
  }
  const head = words[i] ?? '';
  const rest = words.slice(i + 1);
  if ((head === 'sh' || head === 'bash') && rest[0] === '-c' && rest[1] !== undefined) {
    return simpleCommands(rest[1]).flatMap((c) => quotedCommandsIn(c, line, source));
  }
  if (head === 'npx' && rest[0] === 'sealflow') return [{ line, kind: 'sealflow', argv: rest.slice(1), source }];
  if (head === 'node' && rest[0] !== undefined && /(^|\/)bin\/sealflow\.js$/.test(rest[0])) return [{ line, kind: 'sealflow', argv: rest.slice(1), source }];
  if (/(^|\/)sealflow(\.js)?$/.test(head) && !head.endsWith('.service')) return [{ line, kind: 'sealflow', argv: rest, source }];
  if (head === 'npm') return [{ line, kind: 'npm', argv: rest, source }];
  return [];
}

/** Every sealflow/npm command quoted in the shell blocks of a Markdown text. */
export function quotedCommands(markdown: string): QuotedCommand[] {
  return shellLines(markdown).flatMap((l) => simpleCommands(l.text).flatMap((words) => quotedCommandsIn(words, l.line, l.text.trim())));
}

class Sink extends Writable {
  text = '';
  override _write(chunk: Buffer | string, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.text += chunk.toString();
    done();
  }
}

/** Runs the real CLI in this process; returns its exit code and output. */
export async function runCli(argv: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new Sink();
  const stderr = new Sink();
  const code = await cliMain(argv, { stdout, stderr, env: {} });
  return { code, stdout: stdout.text, stderr: stderr.text };
}

/**
 * Subcommands a command's help names on its usage lines: `sealflow spool <status|verify|export>`,
 * or one `usage: sealflow config check …` line per subcommand. Empty: no subcommands.
 */
export function subcommandsInHelp(command: string, help: string): Set<string> {
  const subs = new Set<string>();
  const escaped = command.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^\\s*(?:usage:\\s*)?sealflow ${escaped} (\\S+)`, 'gm');
  for (const m of help.matchAll(re)) {
    const token = m[1] ?? '';
    const alt = /^<([a-z|-]+)>$/.exec(token);
    if (alt !== null) for (const s of (alt[1] ?? '').split('|')) subs.add(s);
    else if (/^[a-z][a-z-]*$/.test(token)) subs.add(token);
  }
  return subs;
}

/** Problems with one quoted sealflow command line, empty when the CLI accepts it. */
export async function checkSealflowCommand(quoted: readonly string[]): Promise<string[]> {
  // A synopsis's optional parts (`[--out DIR]`) are checked as if given.
  const argv = quoted.map((w) => w.replace(/^\[/, '').replace(/\]$/, '')).filter((w) => w !== '');
  const withHelp = [...argv, '--help'];
  const r = await runCli(withHelp);
  if (r.code !== 0) return [`\`sealflow ${withHelp.join(' ')}\` exits ${r.code}: ${r.stderr.split('\n')[0] ?? ''}`];
  const [command, sub] = argv;
  if (command === undefined || command.startsWith('-') || sub === undefined || sub.startsWith('-')) return [];
  const subs = subcommandsInHelp(command, r.stdout);
  if (subs.size > 0 && !subs.has(sub)) return [`\`sealflow ${command} ${sub}\`: no such subcommand (the help names ${[...subs].join(', ')})`];
  return [];
}

/** Problems with one quoted npm command line: the script must exist in package.json. */
export function checkNpmCommand(argv: readonly string[], scripts: Readonly<Record<string, string>>): string[] {
  const [verb, ...rest] = argv;
  let script: string | undefined;
  if (verb === 'run' || verb === 'run-script') script = rest.find((w) => !w.startsWith('-'));
  else if (verb === 'start' || verb === 'test' || verb === 'stop' || verb === 'restart') script = verb;
  else if (verb === 't') script = 'test';
  else return [];
  if (script === undefined) return ['`npm run` without a script name'];
  return Object.hasOwn(scripts, script) ? [] : [`\`npm ${argv.join(' ')}\`: package.json has no script "${script}"`];
}

/** GitHub's heading anchors of a Markdown text (plus explicit `<a id>`/`<a name>` anchors). */
export function anchorsOf(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const { text: raw, block } of markdownLines(markdown)) {
    if (block !== null) continue;
    for (const m of raw.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1] ?? '');
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(raw);
    if (h === null) continue;
    const text = (h[1] ?? '').replace(/\[([^\]]*)\]\([^)]*\)/g, '$1');
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    anchors.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return anchors;
}

/** Link targets outside code blocks and code spans: [text](target) and [ref]: target. */
export function linkTargets(markdown: string): { line: number; target: string }[] {
  const out: { line: number; target: string }[] = [];
  for (const { line, text: raw, block } of markdownLines(markdown)) {
    if (block !== null) continue;
    const text = raw.replace(/(`+)[^`]*?\1/g, '');
    for (const m of text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push({ line, target: m[1] ?? '' });
    const ref = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)/.exec(text);
    if (ref !== null) out.push({ line, target: ref[1] ?? '' });
  }
  return out;
}

/** Problems with the relative links of one Markdown file (path: where it is, or would be). */
export function checkLinks(path: string, markdown: string): string[] {
  const problems: string[] = [];
  const name = relative(repoRoot, path);
  for (const { line, target } of linkTargets(markdown)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:, …
    const hash = target.indexOf('#');
    const file = decodeURIComponent(hash < 0 ? target : target.slice(0, hash));
    const anchor = hash < 0 ? null : decodeURIComponent(target.slice(hash + 1));
    const dest = file === '' ? path : file.startsWith('/') ? join(repoRoot, file) : resolve(dirname(path), file);
    if (file !== '' && !existsSync(dest)) {
      problems.push(`${name}:${line}: link to ${target}: ${relative(repoRoot, dest)} does not exist`);
      continue;
    }
    if (anchor === null || anchor === '' || !dest.endsWith('.md')) continue;
    const text = file === '' ? markdown : readFileSync(dest, 'utf8');
    if (!anchorsOf(text).has(anchor)) problems.push(`${name}:${line}: link to ${target}: no heading #${anchor} in ${relative(repoRoot, dest)}`);
  }
  return problems;
}

/** Problems with the commands quoted in one Markdown file's shell blocks. */
export async function checkCommands(path: string, markdown: string, scripts: Readonly<Record<string, string>>): Promise<string[]> {
  const problems: string[] = [];
  const name = relative(repoRoot, path);
  for (const c of quotedCommands(markdown)) {
    const found = c.kind === 'npm' ? checkNpmCommand(c.argv, scripts) : await checkSealflowCommand(c.argv);
    for (const p of found) problems.push(`${name}:${c.line}: ${p}\n    in: ${c.source}`);
  }
  return problems;
}

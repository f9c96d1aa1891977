/**
 * Reads the repository's Dockerfile and assembles the runtime stage's file system into a
 * directory, without a Docker engine (none runs on the development or CI machines): the
 * runtime stage's COPY instructions are replayed from the build stage's outputs, which are the
 * checkout itself (built by `npm ci`, as the build stage builds it) and folders the build stage
 * makes with `node scripts/stage-runtime.mjs DIR` (run here the same way). ENV, WORKDIR,
 * VOLUME, ENTRYPOINT, CMD and HEALTHCHECK are returned with their paths moved under the
 * directory, so a test can start the image's command with only the files the image would hold.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

export interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

export interface Stage {
  readonly name: string;
  readonly base: string;
  readonly instructions: readonly Instruction[];
}

/** Instructions per stage: comments dropped, continuation lines joined, ARG defaults substituted in FROM. */
export function parseDockerfile(text: string): Stage[] {
  const stages: { name: string; base: string; instructions: Instruction[] }[] = [];
  const args = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = line.slice(0, -1) + ' ' + (lines[++i] ?? '').replace(/^\s*#.*$/, '');
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (m === null) throw new Error(`Dockerfile line ${start + 1}: cannot parse ${JSON.stringify(line)}`);
    const keyword = (m[1] ?? '').toUpperCase();
    const rest = (m[2] ?? '').trim();
    if (keyword === 'ARG' && stages.length === 0) {
      const [k = '', v = ''] = rest.split('=');
      args.set(k, v);
      continue;
    }
    if (keyword === 'FROM') {
      const from = rest.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a: string | undefined, b: string | undefined) => args.get(a ?? b ?? '') ?? '');
      const parts = from.split(/\s+/);
      stages.push({ base: parts[0] ?? '', name: parts[1]?.toUpperCase() === 'AS' ? (parts[2] ?? '') : String(stages.length), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (stage === undefined) throw new Error(`Dockerfile line ${start + 1}: ${keyword} before FROM`);
    stage.instructions.push({ keyword, args: rest, line: start + 1 });
  }
  return stages;
}

/** An exec-form (JSON array) argument list; the shell form is refused (distroless images have no shell). */
export function execForm(args: string, what: string): string[] {
  let v: unknown;
  try {
    v = JSON.parse(args);
  } catch {
    throw new Error(`${what} must be in exec form (a JSON array): ${args}`);
  }
  if (!Array.isArray(v) || !v.every((s): s is string => typeof s === 'string')) throw new Error(`${what} must be a JSON array of strings: ${args}`);
  return v;
}

/** ENV k=v k2="v 2" (and the legacy `ENV k v`). */
function envPairs(args: string): [string, string][] {
  if (!/^\S+=/.test(args)) {
    const sp = args.indexOf(' ');
    return [[args.slice(0, sp), args.slice(sp + 1).trim()]];
  }
  return [...args.matchAll(/(\S+?)=("([^"]*)"|\S*)/g)].map((m) => [m[1] ?? '', m[3] ?? m[2] ?? '']);
}

/** COPY --chown=UID:GID (numeric: the runtime image may have no user database). Needs root. */
function chownTree(p: string, owner: string): void {
  const m = /^(\d+):(\d+)$/.exec(owner);
  if (m === null) throw new Error(`COPY --chown=${owner}: use numeric UID:GID`);
  const uid = Number(m[1]);
  const gid = Number(m[2]);
  chownSync(p, uid, gid);
  if (statSync(p).isDirectory()) for (const name of readdirSync(p)) chownTree(path.join(p, name), owner);
}

export interface RuntimeImage {
  /** The directory standing for the image's root file system. */
  readonly root: string;
  /** The working directory of the image's command, under root. */
  readonly workdir: string;
  /** The image's environment; values that are absolute paths are moved under root. */
  readonly env: Readonly<Record<string, string>>;
  readonly volumes: readonly string[];
  /** ENTRYPOINT + CMD and the HEALTHCHECK command, absolute paths under root. */
  readonly command: readonly string[];
  readonly healthcheck: readonly string[] | null;
  /** What the image runs as (USER). */
  readonly user: string | null;
}

/**
 * Assembles the last stage of `dockerfile` under `root`. `repoRoot` stands for the build
 * context and for the build stage's WORKDIR (a checkout built by `npm ci`); `stagingDir` is
 * where folders made by `node scripts/stage-runtime.mjs DIR` in a build stage are created.
 */
export function assembleRuntimeImage(dockerfile: string, repoRoot: string, root: string, stagingDir: string): RuntimeImage {
  const stages = parseDockerfile(readFileSync(dockerfile, 'utf8'));
  const runtime = stages.at(-1);
  if (runtime === undefined) throw new Error('Dockerfile has no stage');
  const under = (p: string): string => path.join(root, p);

  /** Where a path of build stage `name` is in this checkout. */
  const buildPath = (name: string, p: string): string => {
    const stage = stages.find((s) => s.name === name);
    if (stage === undefined) throw new Error(`COPY --from=${name}: no such stage`);
    const workdir = [...stage.instructions].reverse().find((i) => i.keyword === 'WORKDIR')?.args ?? '/';
    for (const i of stage.instructions) {
      if (i.keyword !== 'RUN') continue;
      // `mkdir [-m MODE] DIR`: an empty directory (a volume's mount point).
      const mk = /mkdir (?:-m (\d+) )?(\/\S+)/.exec(i.args);
      if (mk?.[2] === p) {
        const made = path.join(stagingDir, p);
        mkdirSync(made, { recursive: true, mode: Number.parseInt(mk[1] ?? '755', 8) });
        return made;
      }
      const m = /node scripts\/stage-runtime\.mjs (\S+)/.exec(i.args);
      const dir = m?.[1] === undefined ? undefined : path.resolve(workdir, m[1]);
      if (dir === undefined || (p !== dir && !p.startsWith(dir + '/'))) continue;
      const staged = path.join(stagingDir, dir);
      if (!existsSync(staged)) {
        const r = spawnSync(process.execPath, ['scripts/stage-runtime.mjs', staged], { cwd: repoRoot, encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`stage-runtime.mjs (Dockerfile line ${i.line}) failed:\n${r.stderr}`);
      }
      return path.join(staged, path.relative(dir, p));
    }
    const abs = path.resolve(workdir, p);
    if (abs !== workdir && !abs.startsWith(workdir + '/')) throw new Error(`COPY --from=${name} ${p}: outside the build stage's WORKDIR ${workdir}`);
    return path.join(repoRoot, path.relative(workdir, abs));
  };

  let workdir = '/';
  const env: Record<string, string> = {};
  const volumes: string[] = [];
  let entrypoint: string[] = [];
  let cmd: string[] = [];
  let healthcheck: string[] | null = null;
  let user: string | null = null;
  for (const i of runtime.instructions) {
    switch (i.keyword) {
      case 'COPY': {
        const words = i.args.startsWith('[') ? execForm(i.args, 'COPY') : i.args.split(/\s+/);
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const chown = words.find((w) => w.startsWith('--chown='))?.slice('--chown='.length);
        const operands = words.filter((w) => !w.startsWith('--'));
        const dest = path.resolve(workdir, operands.pop() ?? '');
        for (const src of operands) {
          const source = from === undefined ? path.join(repoRoot, src) : buildPath(from, path.resolve('/', src));
          if (!existsSync(source)) throw new Error(`COPY (Dockerfile line ${i.line}): ${src} does not exist in the build (${source})`);
          const isDir = statSync(source).isDirectory();
          // A directory's contents go into dest; a file goes to dest, or into it when dest names a directory.
          const target = isDir || !i.args.trimEnd().endsWith('/') ? dest : path.join(dest, path.basename(src));
          mkdirSync(under(isDir ? target : path.dirname(target)), { recursive: true });
          cpSync(source, under(target), { recursive: true });
          if (chown !== undefined) chownTree(under(target), chown);
        }
        break;
      }
      case 'WORKDIR':
        workdir = path.resolve(workdir, i.args);
        mkdirSync(under(workdir), { recursive: true });
        break;
      case 'ENV':
        for (const [k, v] of envPairs(i.args)) env[k] = v;
        break;
      case 'VOLUME':
        for (const v of i.args.startsWith('[') ? execForm(i.args, 'VOLUME') : i.args.split(/\s+/)) volumes.push(v);
        break;
      case 'ENTRYPOINT':
        entrypoint = execForm(i.args, 'ENTRYPOINT');
        cmd = [];
        break;
      case 'CMD':
        cmd = execForm(i.args, 'CMD');
        break;
      case 'HEALTHCHECK': {
        const at = i.args.indexOf('CMD ');
        healthcheck = at < 0 ? null : execForm(i.args.slice(at + 4), 'HEALTHCHECK CMD');
        break;
      }
      case 'USER':
        user = i.args;
        break;
      case 'EXPOSE':
      case 'LABEL':
        break;
      default:
        throw new Error(`Dockerfile line ${i.line}: the runtime stage's ${i.keyword} is not understood by this test`);
    }
  }
  for (const v of volumes) mkdirSync(under(v), { recursive: true });
  const moved = (s: string): string => (s.startsWith('/') ? under(s) : s);
  return {
    root,
    workdir: under(workdir),
    env: Object.fromEntries(Object.entries(env).map(([k, v]) => [k, moved(v)])),
    volumes: volumes.map(under),
    command: [...entrypoint, ...cmd].map(moved),
    healthcheck: healthcheck?.map(moved) ?? null,
    user,
  };
}

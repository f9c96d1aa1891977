#!/usr/bin/env node
// Stages every file `sealflow run` needs into one folder, which deployments copy whole: the
// container's runtime stage (`COPY --from=build /runtime /app`) and a systemd install
// (/opt/sealflow). Run after `npm ci` (or `npm run build && npm run build:native`).
//
//   node scripts/stage-runtime.mjs OUT_DIR
//
// OUT_DIR gets: package.json, bin/, dist/ (the compiled program), every native addon of this
// repository — found as src/**/binding.gyp, each target's build/Release/<target>.node copied
// to the matching dist/**/native/build/Release/, where the loaders look first — the production
// dependencies (`npm ls --omit=dev`, without the development ones), and the documentation the
// systemd unit and the README link to. An addon that is not built is an error, never a silent
// omission: the probe would fall back to a slower path (UDP) or fail at start (DTLS).
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';

const root = resolve(new URL('..', import.meta.url).pathname);

/** Top-level files and folders the program and its documentation need at run time. */
const RUNTIME_PATHS = ['package.json', 'bin', 'dist', 'README.md', 'SECURITY.md', 'docs'];

function fail(message) {
  process.stderr.write(`stage-runtime: ${message}\n`);
  process.exit(1);
}

/** Every native addon: [its .node file as built, where it goes under OUT_DIR]. */
export function nativeAddons() {
  const out = [];
  const walk = (dir) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (name === 'build' || name === 'node_modules') continue;
      if (statSync(path).isDirectory()) walk(path);
      else if (name === 'binding.gyp') {
        // binding.gyp is a Python literal; target names are plain strings in it.
        const text = readFileSync(path, 'utf8');
        for (const m of text.matchAll(/"target_name"\s*:\s*"([^"]+)"/g)) {
          const built = join(dir, 'build', 'Release', `${m[1]}.node`);
          const rel = relative(join(root, 'src'), built);
          out.push([built, join('dist', rel)]);
        }
      }
    }
  };
  walk(join(root, 'src'));
  return out;
}

/** Absolute paths of the installed production packages (npm's own view of the tree). */
function productionPackages() {
  const r = spawnSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) fail(`npm ls --omit=dev failed (run npm ci first):\n${r.stderr}`);
  return r.stdout.split('\n').filter((p) => p !== '' && resolve(p) !== root);
}

function main() {
  const outArg = process.argv[2];
  if (outArg === undefined) fail('usage: node scripts/stage-runtime.mjs OUT_DIR');
  const out = resolve(outArg);
  if (out === root || root.startsWith(out + sep)) fail(`refusing to stage into ${out}`);
  for (const p of RUNTIME_PATHS) if (!existsSync(join(root, p))) fail(`${p} is missing (run npm ci, or npm run build)`);
  const addons = nativeAddons();
  const missing = addons.filter(([built]) => !existsSync(built)).map(([built]) => relative(root, built));
  if (missing.length > 0) fail(`native addons not built: ${missing.join(', ')} (run npm run build:native)`);

  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  for (const p of RUNTIME_PATHS) cpSync(join(root, p), join(out, p), { recursive: true });
  for (const [built, dest] of addons) {
    mkdirSync(dirname(join(out, dest)), { recursive: true });
    cpSync(built, join(out, dest));
  }
  // Each package without its nested node_modules: nested packages are listed on their own.
  for (const pkg of productionPackages()) {
    const rel = relative(root, pkg);
    cpSync(pkg, join(out, rel), { recursive: true, filter: (src) => src === pkg || !relative(pkg, src).split(sep).includes('node_modules') });
  }
  process.stderr.write(`stage-runtime: ${out}: ${RUNTIME_PATHS.join(', ')}, ${addons.length} native addons, production node_modules\n`);
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === resolve(new URL(import.meta.url).pathname)) main();

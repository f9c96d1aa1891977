/**
 * The container image as the Dockerfile builds it, without a Docker engine (none runs here):
 * test/support/dockerfile.ts replays the runtime stage's COPY lines from the build stage's
 * outputs into a directory, with the image's ENV, WORKDIR, VOLUME, USER, ENTRYPOINT, CMD and
 * HEALTHCHECK. The probe then starts from that directory with only those files (and this
 * machine's node standing for the image's), as the image's user, and must load what it ships:
 * the native UDP receiver, the DTLS addon (a DTLS exporter is served), the notification addon,
 * the upload workers; with no configuration mounted it must refuse to start, saying where the
 * file goes, instead of listening on loopback where no port mapping reaches. The Dockerfile
 * before this version copied the DTLS addon but not the UDP receiver, and started the loopback
 * development setup without a configuration: both fail here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { assembleRuntimeImage, type RuntimeImage } from '../support/dockerfile.js';
import { startDeploymentPeers, writeSecret } from '../support/deployment-fixture.js';
import { startProbe, type RunningProbe } from '../support/probe.js';
import { haveSoftflowd, repoRoot, requireTool } from '../support/softflowd.js';
import { until } from '../support/udp-harness.js';

const DOCKERFILE = path.join(repoRoot, 'Dockerfile');
/** What the distroless base image provides: its node binary, here this machine's. */
const IMAGE_NODE = '/nodejs/bin/node';
const asRoot = process.getuid?.() === 0;

/** A directory standing for the image's root file system, readable by the image's user. */
let tmp = '';
let built: RuntimeImage | null = null;
before(() => {
  tmp = mkdtempSync(path.join(tmpdir(), 'sealflow-image-'));
  chmodSync(tmp, 0o755);
  built = assembleRuntimeImage(DOCKERFILE, repoRoot, path.join(tmp, 'root'), path.join(tmp, 'build'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

function theImage(): RuntimeImage {
  assert.ok(built !== null, 'the image was assembled');
  return built;
}

/** The numeric uid:gid the image runs as (USER), or null. */
function imageUser(image: RuntimeImage): [number, number] | null {
  if (image.user === null) return null;
  const m = /^(\d+)(?::(\d+))?$/.exec(image.user);
  assert.ok(m !== null, `USER ${image.user} is numeric (runAsNonRoot can verify it)`);
  return [Number(m[1]), Number(m[2] ?? m[1])];
}

/** argv to run `command` of the image: its node is ours, and as root we become the image's user. */
function imageArgv(image: RuntimeImage, command: readonly string[]): string[] {
  const [first, ...rest] = command;
  assert.equal(first, path.join(image.root, IMAGE_NODE), `the image runs ${IMAGE_NODE}`);
  const user = imageUser(image);
  const asUser = asRoot && user !== null ? ['setpriv', `--reuid=${user[0]}`, `--regid=${user[1]}`, '--clear-groups'] : [];
  return [...asUser, process.execPath, ...rest];
}

/** .node files in a tree, without node_modules (those are dependencies' own). */
function addonsIn(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (name === 'node_modules') continue;
    if (statSync(p).isDirectory()) out.push(...addonsIn(p));
    else if (name.endsWith('.node')) out.push(path.basename(p));
  }
  return out.sort();
}

test('the image holds every native addon this repository builds, under one folder', () => {
  const image = theImage();
  const targets = [...readFileSync(path.join(repoRoot, 'package.json'), 'utf8').matchAll(/node-gyp rebuild -C ([^\s"&]+)/g)].flatMap((m) =>
    [...readFileSync(path.join(repoRoot, m[1] ?? '', 'binding.gyp'), 'utf8').matchAll(/"target_name"\s*:\s*"([^"]+)"/g)].map((t) => `${t[1] ?? ''}.node`),
  );
  assert.ok(targets.length >= 3, targets.join(', '));
  assert.deepEqual(addonsIn(path.join(image.root, 'app')), targets.sort());
  assert.ok(existsSync(path.join(image.root, 'app/node_modules/better-sqlite3')), 'production modules');
  assert.ok(!existsSync(path.join(image.root, 'app/node_modules/typescript')), 'no development modules');
});

test('without a configuration the image exits 78 and says where the file goes; it never starts on loopback', { timeout: 60_000 }, () => {
  const image = theImage();
  const argv = imageArgv(image, image.command);
  const r = spawnSync(argv[0] ?? '', argv.slice(1), { cwd: image.workdir, env: { ...image.env }, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 78, r.stderr);
  const config = image.env.SEALFLOW_CONFIG ?? '';
  assert.ok(config.endsWith('/etc/sealflow/sealflow.yaml'), 'the image names its configuration file');
  assert.ok(r.stderr.includes(`config file ${config} (from SEALFLOW_CONFIG) does not exist`), r.stderr);
  assert.match(r.stderr, /mounts it: -v \.\/sealflow\.yaml:/);
  assert.doesNotMatch(r.stderr, /listener ready|127\.0\.0\.1:\d+/);
});

test('the image runs the probe from its own files as its own user: UDP (native receiver), TLS, DTLS in, spooled, drained; HEALTHCHECK healthy', { timeout: 180_000 }, async (t) => {
  if (!requireTool(t, haveSoftflowd(), 'softflowd')) return;
  if (!requireTool(t, spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0, 'socat')) return;
  const image = theImage();
  const peers = await startDeploymentPeers(randomBytes(32).toString('base64'));
  let probe: RunningProbe | null = null;
  let notify: ChildProcess | null = null;
  try {
    const user = imageUser(image);
    const owner = asRoot && user !== null ? user[0] : (process.getuid?.() ?? 0);
    const data = image.env.SEALFLOW_DATA_DIR ?? '';
    assert.ok(image.volumes.includes(data), 'the data directory is the volume');
    if (asRoot && user !== null) assert.equal(statSync(data).uid, user[0], 'the volume mount point belongs to the image user (a new volume takes its ownership)');
    // Mounted by the operator: the configuration and certificates read-only, secrets 0400.
    const etc = path.join(image.root, 'etc/sealflow');
    peers.writeEtc(etc, etc);
    const secrets = path.join(image.root, 'run/secrets');
    for (const name of ['spool-kek', 'netosecret', 'tls-key']) writeSecret(path.join(secrets, name), peers.secrets[name] ?? '', owner);
    // sd_notify works in containers too (podman run --sdnotify=container).
    const notifyName = `sealflow-image-${randomBytes(6).toString('hex')}`;
    let notifications = '';
    notify = spawn('socat', ['-u', `ABSTRACT-RECV:${notifyName}`, 'STDOUT'], { stdio: ['ignore', 'pipe', 'inherit'] });
    notify.stdout?.on('data', (b: Buffer) => (notifications += b.toString()));
    const env = {
      ...image.env,
      SEALFLOW_SPOOL_KEK_FILE: path.join(secrets, 'spool-kek'),
      SEALFLOW_FUSION_NETOSECRET_FILE: path.join(secrets, 'netosecret'),
      SEALFLOW_LISTENERS__TLS__KEY_FILE: path.join(secrets, 'tls-key'),
      SEALFLOW_ADMIN_URL: `http://127.0.0.1:${peers.adminPort}`,
      NOTIFY_SOCKET: `@${notifyName}`,
    };
    await new Promise((r) => setTimeout(r, 200));
    const [file = '', ...args] = imageArgv(image, image.command);
    probe = await startProbe({ args: [], adminPort: peers.adminPort, command: { file, args, env, cwd: image.workdir } });
    await until(() => notifications.includes('READY=1'), 'READY=1 from the notification addon', 10_000);
    const sent = await peers.send(3_000);
    await peers.checkDelivered(probe, sent.records);
    assert.ok(readdirSync(path.join(data, 'spool')).length > 0, 'the spool is in the volume');

    assert.ok(image.healthcheck !== null, 'the image has a HEALTHCHECK');
    const hc = imageArgv(image, image.healthcheck);
    const health = spawnSync(hc[0] ?? '', hc.slice(1), { cwd: image.workdir, env, encoding: 'utf8' });
    assert.equal(health.status, 0, health.stderr);
    assert.equal(await probe.stop('SIGTERM'), 0, probe.output().slice(-3000));
  } finally {
    if (probe?.exitStatus() === null) await probe.stop('SIGKILL');
    notify?.kill();
    await peers.close();
  }
});

/**
 * `sealflow run` exit codes as the README promises them (sysexits(3)): a socket the
 * configuration asks for that cannot be bound names its setting and exits 78
 * (EX_CONFIG: an operator must change the configuration or free the port), not 70 (EX_SOFTWARE:
 * a crash to restart), so the systemd unit's RestartPreventExitStatus=78 stops a futile
 * restart loop. Each socket kind: a UDP listener, the TLS listener, the DTLS listener, the
 * admin endpoint, against a port this test holds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { repoRoot } from '../support/softflowd.js';
import { createTestPki } from '../support/test-pki.js';

const EX_CONFIG = 78;

async function holdUdp(): Promise<{ port: number; socket: UdpSocket }> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return { port: socket.address().port, socket };
}

async function holdTcp(): Promise<{ port: number; server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const a = server.address();
  return { port: typeof a === 'object' && a !== null ? a.port : 0, server };
}

function run(config: string, dir: string): { code: number | null; stderr: string } {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/main.ts', 'run', '--config', config], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SEALFLOW_SPOOL_KEK: Buffer.alloc(32, 3).toString('base64'), SEALFLOW_DATA_DIR: path.join(dir, 'data') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stderr: r.stderr };
}

test('a port already in use exits 78 naming the setting, for UDP, TLS, DTLS and the admin endpoint', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sealflow-exit-'));
  const pki = await createTestPki();
  const udp = await holdUdp();
  const tcp = await holdTcp();
  try {
    const free = { udp: [] };
    const tlsFiles = { certFile: pki.collector.certFile, keyFile: pki.collector.keyFile, caFile: pki.caFile, identities: [{ name: 'exporter1.test' }] };
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['udp', { listeners: { udp: [{ name: 'flows', address: '127.0.0.1', port: udp.port }] }, admin: { enabled: false } }, /cannot listen on UDP 127\.0\.0\.1:\d+ \(listeners\.udp\[0\]\): address already in use.*change listeners\.udp\[0\]\.port/],
      ['tls', { listeners: { ...free, tls: { enabled: true, address: '127.0.0.1', port: tcp.port, ...tlsFiles } }, admin: { enabled: false } }, /listeners\.tls: cannot listen on TCP 127\.0\.0\.1:\d+ \(listeners\.tls\): address already in use/],
      ['dtls', { listeners: { ...free, dtls: { enabled: true, address: '127.0.0.1', port: udp.port, ...tlsFiles } }, admin: { enabled: false } }, /listeners\.dtls: cannot listen on UDP 127\.0\.0\.1:\d+ \(listeners\.dtls\): address already in use/],
      ['admin', { listeners: free, admin: { address: '127.0.0.1', port: tcp.port } }, /admin: cannot listen on TCP 127\.0\.0\.1:\d+ \(admin\): address already in use.*change admin\.port/],
    ];
    for (const [name, body, message] of cases) {
      const config = path.join(dir, `${name}.yaml`);
      writeFileSync(config, stringify({ ...body, drain: { enabled: false } }));
      const r = run(config, dir);
      assert.equal(r.code, EX_CONFIG, `${name}: ${r.stderr}`);
      assert.match(r.stderr, message, name);
    }
  } finally {
    udp.socket.close();
    tcp.server.close();
    await pki.cleanup();
    rmSync(dir, { recursive: true, force: true });
  }
});

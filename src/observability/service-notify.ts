import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Readiness and status for a service manager, sd_notify(3): with `Type=notify` systemd starts
 * dependent units and `systemctl start` returns only after READY=1, which the probe sends once
 * every listener is bound and the spool is open; STATUS= carries the status line into
 * `systemctl status`; STOPPING=1 marks a graceful stop. Without $NOTIFY_SOCKET (not under
 * systemd, or another service type) every call is a no-op.
 *
 * The datagram is sent by a small addon (src/observability/native/sd_notify.c): Node has no
 * unix datagram sockets, and a child such as systemd-notify(1) would be attributed to the
 * wrong process under NotifyAccess=main.
 */
export const NOTIFY_SOCKET_ENV = 'NOTIFY_SOCKET';

interface NotifyAddon {
  send(socketPath: string, message: string): number;
}

const ADDON_FILE = 'sealflow_notify.node';
/** Where node-gyp puts the addon, relative to this module in src/ (tsx) and in dist/ (tsc). */
const CANDIDATES = [`./native/build/Release/${ADDON_FILE}`, `../../src/observability/native/build/Release/${ADDON_FILE}`] as const;

export interface ServiceNotifier {
  /** The socket notifications go to, or null when not asked to notify. */
  readonly socket: string | null;
  /** Why notifications cannot be sent although a socket was given (the addon is missing), else null. */
  readonly problem: string | null;
  ready(status: string): void;
  status(status: string): void;
  stopping(): void;
}

function loadAddon(): NotifyAddon | string {
  const path = CANDIDATES.map((c) => fileURLToPath(new URL(c, import.meta.url))).find((p) => existsSync(p));
  if (path === undefined) return `the notification addon (${ADDON_FILE}) is not built: run \`npm run build:native\``;
  const mod: { exports: unknown } = { exports: {} };
  try {
    process.dlopen(mod, path);
  } catch (err) {
    return `the notification addon cannot load (${err instanceof Error ? err.message : String(err)})`;
  }
  const addon = mod.exports as Partial<NotifyAddon>;
  return typeof addon.send === 'function' ? (addon as NotifyAddon) : 'the notification addon does not match this version of sealflow';
}

/** A STATUS= value is one line: the protocol separates assignments with newlines. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

/**
 * The notifier for $NOTIFY_SOCKET in `env`. `onError` hears about a failed send (with the errno
 * number); notifications are best effort and never stop the probe.
 */
export function serviceNotifier(env: NodeJS.ProcessEnv, onError: (message: string) => void = () => undefined): ServiceNotifier {
  const socket = env[NOTIFY_SOCKET_ENV];
  if (socket === undefined || socket === '') {
    return { socket: null, problem: null, ready: () => undefined, status: () => undefined, stopping: () => undefined };
  }
  const addon = loadAddon();
  if (typeof addon === 'string') {
    return { socket, problem: addon, ready: () => undefined, status: () => undefined, stopping: () => undefined };
  }
  const send = (message: string): void => {
    const errno = addon.send(socket, message);
    if (errno !== 0) onError(`service notification to ${socket} failed (errno ${errno})`);
  };
  return {
    socket,
    problem: null,
    ready: (status) => send(`READY=1\nSTATUS=${oneLine(status)}`),
    status: (status) => send(`STATUS=${oneLine(status)}`),
    stopping: () => send('STOPPING=1'),
  };
}

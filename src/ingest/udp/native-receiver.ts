import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * Typed view of the Linux UDP receiver addon in ./native (udp_receiver.cc): a socket read by
 * its own thread with recvmmsg(2), whose datagrams reach the JS thread in batches ("frames").
 * The addon only copies bytes; everything that looks at them is in udp-listener.ts.
 */

/** u32 words of metadata per datagram at the start of a frame (see udp_receiver.cc). */
export const META_WORDS = 8;
/** Metadata word indexes. */
export const META_OFFSET = 0;
export const META_LENGTH = 1;
export const META_FLAGS = 2;
export const META_PORT = 3;
/** IPv4: the address as a host-order u32; IPv6: 16 raw bytes from this word on. */
export const META_ADDRESS = 4;
/** Flags: the low byte is the source family (4 or 6; IPv4-mapped IPv6 sources are 4). */
export const FLAG_FAMILY_MASK = 0xff;
/** The datagram was longer than maxDatagramBytes: counted, its bytes not copied. */
export const FLAG_TRUNCATED = 1 << 8;

export interface NativeReceiverOptions {
  /** Numeric IPv4 or IPv6 address (no host names: the addon does no DNS). */
  readonly address: string;
  readonly port: number;
  readonly ipv6Only: boolean;
  /** Requested SO_RCVBUF; SO_RCVBUFFORCE is tried when the kernel caps it (CAP_NET_ADMIN). */
  readonly recvBufferBytes: number;
  readonly maxDatagramBytes: number;
}

/**
 * `buffer` holds `count` metadata records then the payloads; null with count 0 and a non-zero
 * `errno` reports a receive error (the socket keeps working).
 */
export type FrameCallback = (buffer: ArrayBuffer | null, count: number, errno: number) => void;

export interface NativeReceiver {
  /** Starts the receiver thread; frames arrive on the JS thread, in order. */
  start(onFrame: FrameCallback): void;
  /** Stops and joins the thread, drops undelivered frames, closes the socket; idempotent. */
  close(): void;
  address(): { address: string; family: 'IPv4' | 'IPv6'; port: number } | null;
  /** getsockopt(SO_RCVBUF): on Linux twice the effective size (socket(7)). */
  recvBufferGranted(): number;
}

export interface UdpReceiverAddon {
  /** Binds the socket; throws an Error whose `code` is the errno name (e.g. "EADDRINUSE"). */
  readonly Receiver: new (options: NativeReceiverOptions) => NativeReceiver;
  /** Name of the receiver threads (/proc/self/task/<tid>/comm). */
  readonly threadName: string;
  readonly metaWords: number;
  readonly batch: number;
}

export type UdpAddonLoad = { readonly addon: UdpReceiverAddon; readonly reason: null } | { readonly addon: null; readonly reason: string };

const ADDON_FILE = 'sealflow_udp.node';
/** Where node-gyp puts the addon, relative to this module in src/ (tsx) and in dist/ (tsc). */
const CANDIDATES = [`./native/build/Release/${ADDON_FILE}`, `../../../src/ingest/udp/native/build/Release/${ADDON_FILE}`] as const;

let cached: UdpAddonLoad | undefined;

/** Loads the addon once; null with the reason where it is unavailable (not Linux, not built). */
export function loadUdpReceiverAddon(): UdpAddonLoad {
  cached ??= load();
  return cached;
}

function load(): UdpAddonLoad {
  if (process.platform !== 'linux') return { addon: null, reason: `recvmmsg(2) receiver is Linux-only (platform ${process.platform})` };
  const path = CANDIDATES.map((c) => fileURLToPath(new URL(c, import.meta.url))).find((p) => existsSync(p));
  if (path === undefined) {
    return { addon: null, reason: 'UDP receiver addon is not built: run `npm run build:native` with the node headers installed' };
  }
  const mod: { exports: unknown } = { exports: {} };
  try {
    process.dlopen(mod, path);
  } catch (err) {
    return { addon: null, reason: `UDP receiver addon cannot load (${err instanceof Error ? err.message : String(err)}); rebuild it with \`npm run build:native\`` };
  }
  const addon = mod.exports as Partial<UdpReceiverAddon>;
  if (addon.Receiver === undefined || addon.metaWords !== META_WORDS) {
    return { addon: null, reason: 'UDP receiver addon does not match this version of sealflow; rebuild it with `npm run build:native`' };
  }
  return { addon: addon as UdpReceiverAddon, reason: null };
}

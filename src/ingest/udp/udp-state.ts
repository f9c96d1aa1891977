import type { RemoteInfo, Socket } from 'node:dgram';
import { readKernelUdpDrops } from './kernel-drops.js';
import type { NativeReceiver } from './native-receiver.js';
import { bindErrorMessage, endpointText } from '../../flow/bind-error.js';

/** The UDP listener's endpoints, its state per source address and per socket, and its bind-error messages. */

export interface UdpEndpoint {
  /** Local address to bind: "::" (dual-stack, IPv4 and IPv6), "0.0.0.0", "127.0.0.1", "::1"... */
  readonly address: string;
  /** Local port; 0 picks a free port (tests). */
  readonly port: number;
  /** Label for logs and stats (default "udp-<port>"); every port accepts every flow protocol. */
  readonly name?: string;
  /** Requested SO_RCVBUF in bytes; default UdpListenerOptions.receiveBufferBytes. */
  readonly receiveBufferBytes?: number;
  /** Larger datagrams are dropped and counted; default UdpListenerOptions.maxDatagramBytes. */
  readonly maxDatagramBytes?: number;
  /** Configuration path of this listener, named in bind errors (default "listeners.udp[<index>]"). */
  readonly setting?: string;
  /** For an IPv6 address: refuse IPv4-mapped traffic (default false = dual-stack on "::"). */
  readonly ipv6Only?: boolean;
}

/** Per source address state; shape fixed so the hot path stays monomorphic. */
export class SourceState {
  packets = 0;
  bytes = 0;
  lastSeenMs = 0;
  rejected = 0;
  lastRejectedMs = 0;
  /** Cache of the last session key: exporters send from a stable source port. */
  lastSrcPort = -1;
  lastListenerPort = -1;
  lastSessionKey = '';
  constructor(
    /** Normalised address text. */
    readonly address: string,
    public allowed: boolean,
    public teeMask: number,
  ) {}
}

export class SocketState {
  packets = 0;
  bytes = 0;
  rejected = 0;
  oversize = 0;
  backpressured = 0;
  socketErrors = 0;
  recvBufferGranted = 0;
  /** The kernel's drop count at the last reading (kept once the socket is closed: its final tally). */
  kernelDrops: number | null = null;
  boundAddress = '';
  boundPort = 0;
  teeMask = 0;
  socket: Socket | null = null;
  native: NativeReceiver | null = null;
  /** Reused log fields object: pino serialises synchronously, so one object per socket suffices. */
  readonly rejectFields: { source: string; sourcePort: number; listener: string; port: number; packets: number } = {
    source: '',
    sourcePort: 0,
    listener: '',
    port: 0,
    packets: 0,
  };
  onMessage: (msg: Buffer, rinfo: RemoteInfo) => void = () => undefined;
  /** Whether a socket is open (either receiver). */
  get open(): boolean {
    return this.socket !== null || this.native !== null;
  }
  /** Reads the kernel's drop count for the bound port now (unchanged where /proc has no figure). */
  readKernelDrops(): number | null {
    this.kernelDrops = readKernelUdpDrops(this.boundPort) ?? this.kernelDrops;
    return this.kernelDrops;
  }
  constructor(
    readonly endpoint: UdpEndpoint,
    readonly name: string,
    readonly setting: string,
    readonly recvBufferRequested: number,
    readonly maxDatagramBytes: number,
  ) {}
}

/** Explains a bind failure in terms of the setting to change. */
export function bindMessage(err: NodeJS.ErrnoException, st: SocketState): string {
  return bindErrorMessage(err, endpointText('UDP', st.endpoint.address, st.endpoint.port), st.setting);
}

/** Shared states for sources beyond the tracking caps; their empty address marks them untracked. */
export const UNTRACKED_ALLOWED = new SourceState('', true, 0);
export const UNTRACKED_REJECTED = new SourceState('', false, 0);

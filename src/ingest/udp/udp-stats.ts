/** What the UDP listener reports on /stats: per socket, per exporter, per rejected source. */

export interface UdpSocketStats {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly recvBufferRequested: number;
  /** As reported by getRecvBufferSize() (Linux: twice the effective size). */
  readonly recvBufferGranted: number;
  readonly packets: number;
  readonly bytes: number;
  readonly rejected: number;
  readonly oversize: number;
  /** Datagrams the sink took while above its high-water mark (submit returned false). */
  readonly backpressured: number;
  readonly socketErrors: number;
  /** Kernel receive-queue drops for this port (/proc/net/udp*), null when unavailable. */
  readonly kernelDrops: number | null;
}

export interface UdpExporterStats {
  readonly exporter: string;
  readonly packets: number;
  readonly bytes: number;
  readonly lastSeenMs: number;
}

export interface UdpRejectedSourceStats {
  readonly source: string;
  readonly packets: number;
  readonly lastSeenMs: number;
}

export interface UdpListenerStats {
  readonly listeners: readonly UdpSocketStats[];
  readonly exporters: readonly UdpExporterStats[];
  /** Accepted traffic from exporters beyond the tracking cap. */
  readonly otherExporters: { readonly packets: number; readonly bytes: number };
  readonly rejectedSources: readonly UdpRejectedSourceStats[];
  /** Rejected datagrams from sources beyond the tracking cap. */
  readonly otherRejected: number;
  readonly rejectedTotal: number;
}

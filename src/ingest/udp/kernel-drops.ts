import { readFileSync } from 'node:fs';

/** Column index of "drops" in /proc/net/udp{,6} (after "sl"; see proc(5) / net/ipv4/udp.c udp4_format_sock). */
const PROC_DROPS_COLUMN = 12;
const PROC_LOCAL_ADDRESS_COLUMN = 1;

/**
 * Sum of the kernel's receive-queue drop counters of every UDP socket bound to `port`
 * (IPv4 and IPv6 tables), i.e. datagrams the kernel discarded because the socket's receive
 * buffer was full. Null where /proc/self/net/udp is unavailable (not Linux) or no socket is bound.
 * Synchronous file reads: for stats and benchmarks, not the receive path.
 */
export function readKernelUdpDrops(port: number): number | null {
  let found = false;
  let drops = 0;
  // /proc/self/net is /proc/net (the process's network namespace), and stays visible under
  // systemd's ProcSubset=pid, which hides /proc/net.
  for (const file of ['/proc/self/net/udp', '/proc/self/net/udp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const lines = text.split('\n');
    for (const line of lines.slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[PROC_LOCAL_ADDRESS_COLUMN];
      const d = cols[PROC_DROPS_COLUMN];
      if (local === undefined || d === undefined) continue;
      const colon = local.lastIndexOf(':');
      if (colon < 0 || parseInt(local.slice(colon + 1), 16) !== port) continue;
      found = true;
      drops += Number(d);
    }
  }
  return found ? drops : null;
}

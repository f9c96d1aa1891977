/**
 * A socket the configuration asks for that cannot be bound, explained in terms of the setting
 * to change (bind(2) errors). Used by every listener and the admin endpoint, so `run` exits
 * 78 with the same advice whichever socket failed.
 */

/** "UDP 127.0.0.1:2055", "TCP [::]:4740". */
export function endpointText(transport: 'UDP' | 'TCP', address: string, port: number): string {
  return `${transport} ${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** The message for a failed bind of `where` (endpointText) configured by `setting` (e.g. "listeners.udp[0]"). */
export function bindErrorMessage(err: unknown, where: string, setting: string): string {
  const e = err as NodeJS.ErrnoException;
  const head = `cannot listen on ${where} (${setting})`;
  switch (e.code) {
    case 'EADDRINUSE':
      return `${head}: address already in use — another process (or another listener in this configuration) holds the port; stop it or change ${setting}.port`;
    case 'EACCES':
      return `${head}: permission denied — ports below 1024 need CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE) or root; use a port ≥ 1024 in ${setting}.port or grant the capability`;
    case 'EADDRNOTAVAIL':
      return `${head}: the address is not configured on this host; fix ${setting}.address`;
    case 'EAFNOSUPPORT':
      return `${head}: this host has no support for that address family (IPv6 disabled?); use an IPv4 address in ${setting}.address`;
    default:
      return `${head}: ${e.code ?? ''} ${err instanceof Error ? err.message : String(err)}`.trim();
  }
}

/**
 * IANA protocol numbers to the lowercase keywords Fusion uses ("tcp", "udp", ...), from the
 * IANA "Assigned Internet Protocol Numbers" registry. Numbers without a keyword here are
 * rendered as their decimal value.
 */
const PROTOCOL_NAMES: ReadonlyMap<number, string> = new Map([
  [0, 'hopopt'], [1, 'icmp'], [2, 'igmp'], [4, 'ipv4'], [6, 'tcp'], [8, 'egp'], [9, 'igp'],
  [17, 'udp'], [27, 'rdp'], [33, 'dccp'], [41, 'ipv6'], [43, 'ipv6-route'], [44, 'ipv6-frag'],
  [46, 'rsvp'], [47, 'gre'], [50, 'esp'], [51, 'ah'], [58, 'ipv6-icmp'], [59, 'ipv6-nonxt'],
  [60, 'ipv6-opts'], [88, 'eigrp'], [89, 'ospf'], [94, 'ipip'], [103, 'pim'], [112, 'vrrp'],
  [115, 'l2tp'], [132, 'sctp'], [136, 'udplite'], [137, 'mpls-in-ip'],
]);

const PROTOCOL_NUMBERS: ReadonlyMap<string, number> = new Map(
  [...PROTOCOL_NAMES].map(([n, name]) => [name, n] as const).concat([['icmpv6', 58], ['icmp6', 58]]),
);

export function protocolName(n: number): string {
  return PROTOCOL_NAMES.get(n) ?? String(n);
}

/** Accepts a keyword ("tcp", case-insensitive) or a decimal number 0..255; null when neither. */
export function protocolNumber(text: string): number | null {
  const t = text.trim().toLowerCase();
  if (/^\d{1,3}$/.test(t)) {
    const n = Number(t);
    return n <= 255 ? n : null;
  }
  return PROTOCOL_NUMBERS.get(t) ?? null;
}

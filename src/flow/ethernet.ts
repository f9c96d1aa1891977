/**
 * Ethernet II framing facts shared by the packet header parser (src/decode/packet) and
 * the pcap reader (src/ingest/file): EtherType values (IEEE Registration Authority) and the
 * VLAN tag stack of IEEE 802.1Q / 802.1ad.
 */
export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_IPV6 = 0x86dd;
/** IEEE 802.1Q customer tag. */
export const ETHERTYPE_VLAN = 0x8100;
/** IEEE 802.1ad service tag (QinQ outer tag). */
export const ETHERTYPE_QINQ = 0x88a8;
/** Pre-standard QinQ outer tag still sent by older switches. */
export const ETHERTYPE_QINQ_LEGACY = 0x9100;
/** Destination MAC, source MAC, EtherType. */
export const ETHERNET_HEADER_BYTES = 14;
/** TCI (priority, DEI, VLAN ID) and the inner EtherType. */
export const VLAN_TAG_BYTES = 4;
/** More tags than this is not a real frame; stop rather than walk a crafted tag chain. */
export const MAX_VLAN_TAGS = 8;

/** Whether an EtherType announces a VLAN tag (802.1Q, 802.1ad or the legacy QinQ value). */
export function isVlanTagType(type: number): boolean {
  return type === ETHERTYPE_VLAN || type === ETHERTYPE_QINQ || type === ETHERTYPE_QINQ_LEGACY;
}

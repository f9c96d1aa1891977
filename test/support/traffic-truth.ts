/** test/fixtures/corpora/synthetic/traffic_truth.json: the 12 flows of traffic.pcap, per 5-tuple. */
import { readFileSync } from 'node:fs';
import path from 'node:path';

export interface TruthFlow {
  src: string;
  dst: string;
  proto: number;
  sport: number;
  dport: number;
  packets: number;
  /** Sum of IP total lengths (L3). */
  bytes: number;
  tcp_flags: number;
  first_ts: number;
  last_ts: number;
  vlan: number | null;
  tos: number;
  /** ICMP type × 256 + code, for ICMP flows. */
  icmp_type_code?: number;
}

export interface TrafficTruth {
  packets: number;
  flows: TruthFlow[];
}

export function loadTrafficTruth(corpora: string): TrafficTruth {
  return JSON.parse(readFileSync(path.join(corpora, 'synthetic/traffic_truth.json'), 'utf8')) as TrafficTruth;
}

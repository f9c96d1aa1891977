import type { FlowRecord } from '../../flow/flow-record.js';
import { sawTraffic } from './biflow.js';
import type { RecordContext } from './record-context.js';
import type { ReverseDecoding, Template } from './template-cache.js';

/**
 * Decodes the records of one data set of a biflow template (RFC 5103; see biflow.ts) in
 * [p, end): each wire record is decoded twice, forward and reverse, and each direction that
 * saw traffic is handed to `emit` (null for a direction left out) with the wire record's bounds. Returns the number of wire
 * records (what IPFIX sequence numbers count, RFC 7011 §3.1), or −1 − offset of a record
 * whose variable-length field runs past `end` (records before it are kept).
 */
export function decodeBiflowSet(
  t: Template,
  rev: ReverseDecoding,
  view: DataView,
  buf: Uint8Array,
  p: number,
  end: number,
  ctx: RecordContext,
  newRecord: () => FlowRecord,
  emit: (forward: FlowRecord | null, reverse: FlowRecord | null, start: number, stop: number) => void,
): number {
  let count = 0;
  while (end - p >= t.minLength) {
    const forward = newRecord();
    const q = t.decoder(view, buf, p, end, forward, ctx);
    if (q < 0) return -1 - p;
    const reverse = newRecord();
    rev.decoder(view, buf, p, end, reverse, ctx);
    const reverseSaw = sawTraffic(reverse, rev.reverseMeasure);
    emit(sawTraffic(forward, rev.forwardMeasure) || !reverseSaw ? forward : null, reverseSaw ? reverse : null, p, q);
    p = q;
    count++;
  }
  return count;
}

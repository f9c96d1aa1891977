import type { FlowRecord } from '../../flow/flow-record.js';
import { sawTraffic } from './biflow.js';
import { applySection } from './packet-section.js';
import type { RecordContext } from './record-context.js';
import type { Template } from './template-cache.js';

/**
 * Decodes the records of one data set of a template that needs more than its compiled
 * decoder: a biflow (RFC 5103, biflow.ts), each wire record decoded forward and reverse, each
 * direction that saw traffic emitted; and/or a packet section (packet-section.ts) parsed
 * into the forward record. `emit` gets the records (null for a direction left out) with the
 * wire record's bounds. Returns the number of wire records (what IPFIX sequence numbers
 * count, RFC 7011 §3.1), or −1 − offset of a record whose variable-length field runs past
 * `end` (records before it are kept).
 */
export function decodeExtendedSet(
  t: Template,
  view: DataView,
  buf: Uint8Array,
  p: number,
  end: number,
  ctx: RecordContext,
  newRecord: () => FlowRecord,
  emit: (forward: FlowRecord | null, reverse: FlowRecord | null, start: number, stop: number) => void,
): number {
  const rev = t.reverse;
  const section = t.section;
  let count = 0;
  while (end - p >= t.minLength) {
    const forward = newRecord();
    const q = t.decoder(view, buf, p, end, forward, ctx);
    if (q < 0) return -1 - p;
    if (section !== null) applySection(section, t.fields, view, buf, p, q, forward);
    if (rev === null) {
      emit(forward, null, p, q);
    } else {
      const reverse = newRecord();
      rev.decoder(view, buf, p, end, reverse, ctx);
      const reverseSaw = sawTraffic(reverse, rev.reverseMeasure);
      emit(sawTraffic(forward, rev.forwardMeasure) || !reverseSaw ? forward : null, reverseSaw ? reverse : null, p, q);
    }
    p = q;
    count++;
  }
  return count;
}

/**
 * A fast-check arbitrary of FlowRecords covering every shape the type allows: IPv4/IPv6 or
 * absent addresses, counters up to 2^64 - 1 (bigint beyond 2^53), any double (NaN, -0,
 * fractions) in numeric fields, nulls, identities with arbitrary text.
 */
import fc from 'fast-check';
import { newFlowRecord, type FlowRecord } from '../../src/flow/flow-record.js';

const arbAddr = fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.uint8Array({ minLength: 16, maxLength: 16 }));
const arbCounter = fc.oneof(fc.nat({ max: Number.MAX_SAFE_INTEGER }), fc.bigInt({ min: 0n, max: 0xffffffffffffffffn }));
const arbNum = fc.oneof(fc.nat(), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), fc.double({ noNaN: false }));
const arbOpt = <T>(a: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.option(a, { nil: null });

export function arbRecord(exporter: fc.Arbitrary<string> = fc.constantFrom('10.0.0.1', '2001:db8::1', 'r1')): fc.Arbitrary<FlowRecord> {
  return fc
  .record({
    flowtype: fc.constantFrom('netflow' as const, 'sflow' as const),
    transport: fc.constantFrom('udp' as const, 'tls' as const, 'dtls' as const, 'file' as const),
    exporter,
    identity: arbOpt(fc.string({ maxLength: 40 })),
    nums: fc.array(arbNum, { minLength: 5, maxLength: 5 }),
    addrs: fc.array(arbOpt(arbAddr), { minLength: 4, maxLength: 4 }),
    counters: fc.array(arbCounter, { minLength: 2, maxLength: 2 }),
    optional: fc.array(arbOpt(arbNum), { minLength: 18, maxLength: 18 }),
  })
  .map((v) => {
    const [fv, od, et, ipv, si] = v.nums as [number, number, number, number, number];
    const r = newFlowRecord(v.flowtype, fv, v.transport, v.exporter, v.identity, od, et);
    r.ipVersion = ipv;
    r.samplingInterval = si;
    [r.srcAddr, r.dstAddr, r.nextHop, r.bgpNextHop] = v.addrs as [never, never, never, never];
    [r.octets, r.packets] = v.counters as [never, never];
    const o = (i: number): number | null => v.optional[i] ?? null;
    [r.srcPort, r.dstPort, r.protocol, r.tos, r.tcpFlags, r.inputIf, r.outputIf, r.srcMask, r.dstMask] = [o(0), o(1), o(2), o(3), o(4), o(5), o(6), o(7), o(8)];
    [r.srcAs, r.dstAs, r.srcVlan, r.dstVlan, r.icmpType, r.icmpCode, r.startMs, r.endMs, r.uptimeMs] = [o(9), o(10), o(11), o(12), o(13), o(14), o(15), o(16), o(17)];
    return r;
  });
}

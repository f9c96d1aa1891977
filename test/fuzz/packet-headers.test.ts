/**
 * Fuzz: the packet header parser (src/decode/packet) behind sFlow sampled headers and IPFIX
 * packet sections, on tunnelled frames (VXLAN, GRE with options, IP-in-IP, 6in4, MPLS) cut at
 * every length and with random bytes flipped, under both layer policies. It never throws,
 * never walks more than MAX_ENCAPSULATIONS tunnels deep, and never mixes headers: either no
 * IP header was read (no addresses), or the addresses, protocol and ports are those of one
 * header of the frame. IPFIX records carrying the same bytes as a dataLinkFrameSection
 * decode without errors.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeService } from '../../src/decode/decode-service.js';
import { parseSampledHeader } from '../../src/decode/packet/header-parser.js';
import { ipToString } from '../../src/flow/ip.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, VARLEN, type FieldDef } from '../support/ipfix-builder.js';
import * as sf from '../support/sflow-builder.js';

const CASES = Number(process.env.FUZZ_CASES ?? '3000');

const inner = sf.ipv4Packet({ src: '10.1.0.1', dst: '10.2.0.1', protocol: 6, l4: sf.tcpHeader(51000, 443, 0x12) });
const vxlanPayload = sf.concat([sf.vxlanHeader(9), sf.ethernetFrame(0x0800, inner, [[0x8100, 5]])]);
const FRAMES: readonly Uint8Array[] = [
  sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.1', dst: '198.51.100.1', protocol: 17, l4: sf.concat([sf.udpHeader(60000, 4789, vxlanPayload.length), vxlanPayload]) })),
  sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.2', dst: '198.51.100.2', protocol: 47, l4: sf.concat([sf.greHeader(0x0800, { checksum: true, key: 1, sequence: 2 }), inner]) })),
  sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.3', dst: '198.51.100.3', protocol: 47, l4: sf.concat([sf.greHeader(0x6558), sf.ethernetFrame(0x0800, inner)]) })),
  sf.ethernetFrame(0x0800, sf.ipv4Packet({ src: '192.0.2.4', dst: '198.51.100.4', protocol: 4, l4: sf.ipv4Packet({ src: '192.0.2.5', dst: '198.51.100.5', protocol: 4, l4: inner }) })),
  sf.ethernetFrame(0x86dd, sf.ipv6Packet({ src: '2001:db8::1', dst: '2001:db8::2', nextHeader: 4, l4: inner })),
  sf.ethernetFrame(0x8847, sf.concat([sf.mplsStack([100, 200, 300]), inner]), [[0x88a8, 10], [0x8100, 20]]),
];
/** Every IPv4 address of the frames above: a parsed address must be one of them, never a mix of bytes. */
const ADDRESSES = new Set(['10.1.0.1', '10.2.0.1', '192.0.2.1', '198.51.100.1', '192.0.2.2', '198.51.100.2', '192.0.2.3', '198.51.100.3', '192.0.2.4', '198.51.100.4', '192.0.2.5', '198.51.100.5', '2001:db8::1', '2001:db8::2']);

const arbFrame = fc.record({ frame: fc.constantFrom(...FRAMES), cut: fc.nat(), flips: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 3 }) }).map(({ frame, cut, flips }) => {
  const b = frame.slice(0, (cut % frame.length) + 1);
  for (const [at, v] of flips) b[at % b.length] = v;
  // MPLS labels are no IP header: the packet under them is the only one, under either policy.
  return { bytes: b, flipped: flips.length > 0, outerIp: frame !== FRAMES[FRAMES.length - 1] };
});

describe('fuzz: packet headers with tunnels', () => {
  test(`tunnelled frames cut and flipped, both layer policies: no throw, bounded, one header (${CASES} cases)`, () => {
    fc.assert(
      fc.property(arbFrame, fc.constantFrom('inner' as const, 'outer' as const), ({ bytes, flipped, outerIp }, policy) => {
        const h = parseSampledHeader(1, bytes, policy);
        assert.ok(h.vlans.length <= 8);
        if (h.ipVersion === 0) {
          assert.equal(h.srcAddr, null);
          return;
        }
        if (!flipped) {
          // Intact bytes: both addresses are addresses of the frame (not bytes of two headers).
          assert.ok(ADDRESSES.has(ipToString(h.srcAddr!)), ipToString(h.srcAddr!));
          assert.ok(ADDRESSES.has(ipToString(h.dstAddr!)), ipToString(h.dstAddr!));
          if (policy === 'outer' && outerIp) assert.ok(!ipToString(h.srcAddr!).startsWith('10.'), 'outer policy never reaches the inner flow');
        }
      }),
      { numRuns: CASES },
    );
  });

  test(`the same bytes as IPFIX dataLinkFrameSections decode without errors (${CASES / 10} cases)`, () => {
    const F: FieldDef[] = [{ id: 312, length: 2 }, { id: 315, length: VARLEN }];
    fc.assert(
      fc.property(fc.array(arbFrame, { minLength: 1, maxLength: 8 }), (frames) => {
        const msg = ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 300, fields: F }]), dataSet(300, F, frames.map((f) => [f.bytes.length, f.bytes]))]);
        const o = new DecodeService().decode(exporterPacket(msg));
        assert.deepEqual(o.errors, []);
        assert.equal(o.records.length, frames.length);
        for (const r of o.records) assert.equal(r.packets, 1);
      }),
      { numRuns: CASES / 10 },
    );
  });
});

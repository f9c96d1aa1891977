import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { inspectDtlsDatagram, protectedRecordsFit } from '../../src/ingest/dtls/dtls-datagram.js';

/** Builds one DTLS record (RFC 6347 §4.1) from readable values. */
function record(o: { type: number; version?: number; epoch?: number; seq?: number; body: Uint8Array; length?: number }): Buffer {
  const h = Buffer.alloc(13);
  h.writeUInt8(o.type, 0);
  h.writeUInt16BE(o.version ?? 0xfefd, 1);
  h.writeUInt16BE(o.epoch ?? 0, 3);
  h.writeUIntBE(o.seq ?? 0, 5, 6);
  h.writeUInt16BE(o.length ?? o.body.length, 11);
  return Buffer.concat([h, o.body]);
}

/** One handshake fragment (RFC 6347 §4.2.2). */
function fragment(o: { msgType: number; msgLength: number; seq?: number; offset?: number; body: Uint8Array }): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt8(o.msgType, 0);
  h.writeUIntBE(o.msgLength, 1, 3);
  h.writeUInt16BE(o.seq ?? 0, 4);
  h.writeUIntBE(o.offset ?? 0, 6, 3);
  h.writeUIntBE(o.body.length, 9, 3);
  return Buffer.concat([h, o.body]);
}

const CLIENT_HELLO = 1;
const CERTIFICATE = 11;

describe('inspectDtlsDatagram', () => {
  test('a ClientHello record (DTLS 1.0 record version, as DTLS 1.2 clients send it) is accepted and flagged', () => {
    const body = fragment({ msgType: CLIENT_HELLO, msgLength: 40, body: Buffer.alloc(40, 7) });
    const r = inspectDtlsDatagram(record({ type: 22, version: 0xfeff, body }));
    assert.deepEqual(r, { ok: true, records: 1, clientHello: true, hasApplicationData: false, maxEpoch: 0 });
  });

  test('a final client flight (handshake + CCS in epoch 0, Finished in epoch 1) in one datagram', () => {
    const d = Buffer.concat([
      record({ type: 22, body: fragment({ msgType: CERTIFICATE, msgLength: 300, offset: 100, body: Buffer.alloc(50) }) }),
      record({ type: 20, body: Buffer.from([1]) }),
      record({ type: 22, epoch: 1, body: Buffer.alloc(40) }),
    ]);
    const r = inspectDtlsDatagram(d);
    assert.ok(r.ok && r.records === 3 && !r.clientHello && r.maxEpoch === 1 && !r.hasApplicationData);
  });

  test('protected application data in epoch 1 is accepted and flagged', () => {
    const r = inspectDtlsDatagram(record({ type: 23, epoch: 1, seq: 5, body: Buffer.alloc(100) }));
    assert.ok(r.ok && r.hasApplicationData);
  });

  const bad: { name: string; d: Buffer; reason: string }[] = [
    { name: 'empty datagram', d: Buffer.alloc(0), reason: 'short_header' },
    { name: 'shorter than a header', d: Buffer.alloc(12), reason: 'short_header' },
    { name: 'heartbeat content type 24', d: record({ type: 24, epoch: 1, body: Buffer.alloc(20) }), reason: 'bad_content_type' },
    { name: 'content type 25 (connection ID, never negotiated)', d: record({ type: 25, epoch: 1, body: Buffer.alloc(20) }), reason: 'bad_content_type' },
    { name: 'TLS version 0x0303', d: record({ type: 23, version: 0x0303, epoch: 1, body: Buffer.alloc(20) }), reason: 'bad_version' },
    { name: 'epoch 2 (renegotiation is refused)', d: record({ type: 23, epoch: 2, body: Buffer.alloc(20) }), reason: 'bad_epoch' },
    { name: 'length beyond the datagram', d: record({ type: 23, epoch: 1, body: Buffer.alloc(20), length: 21 }), reason: 'bad_length' },
    { name: 'zero length', d: record({ type: 23, epoch: 1, body: Buffer.alloc(0) }), reason: 'bad_length' },
    { name: 'trailing bytes after a record', d: Buffer.concat([record({ type: 23, epoch: 1, body: Buffer.alloc(20) }), Buffer.alloc(5)]), reason: 'short_header' },
    { name: 'plaintext application data (epoch 0)', d: record({ type: 23, body: Buffer.alloc(20) }), reason: 'plaintext_app_data' },
    { name: 'CCS of two bytes', d: record({ type: 20, body: Buffer.from([1, 1]) }), reason: 'bad_ccs' },
    { name: 'CCS byte not 1', d: record({ type: 20, body: Buffer.from([2]) }), reason: 'bad_ccs' },
    { name: 'plaintext alert of 1 byte', d: record({ type: 21, body: Buffer.from([2]) }), reason: 'bad_alert' },
    { name: 'plaintext alert with level 3', d: record({ type: 21, body: Buffer.from([3, 0]) }), reason: 'bad_alert' },
    { name: 'the 17-byte forged datagram: a handshake record shorter than a fragment header', d: record({ type: 22, body: Buffer.alloc(4) }), reason: 'bad_handshake_fragment' },
    { name: 'fragment past the message length', d: record({ type: 22, body: fragment({ msgType: CERTIFICATE, msgLength: 10, offset: 5, body: Buffer.alloc(6) }) }), reason: 'bad_handshake_fragment' },
    { name: 'fragment length beyond the record', d: record({ type: 22, body: Buffer.concat([fragment({ msgType: CLIENT_HELLO, msgLength: 40, body: Buffer.alloc(40) }).subarray(0, 30)]) }), reason: 'bad_handshake_fragment' },
    { name: 'absurd handshake message length', d: record({ type: 22, body: fragment({ msgType: CERTIFICATE, msgLength: 0xffffff, body: Buffer.alloc(8) }) }), reason: 'bad_handshake_fragment' },
    { name: 'protected record shorter than an AEAD tag', d: record({ type: 23, epoch: 1, body: Buffer.alloc(4) }), reason: 'short_protected_record' },
  ];
  for (const b of bad) {
    test(`rejects ${b.name} (${b.reason})`, () => {
      const r = inspectDtlsDatagram(b.d);
      assert.ok(!r.ok);
      assert.equal(r.reason, b.reason);
    });
  }

  test('a bad record after a good one rejects the whole datagram', () => {
    const d = Buffer.concat([record({ type: 23, epoch: 1, body: Buffer.alloc(20) }), record({ type: 23, epoch: 0, body: Buffer.alloc(20) })]);
    const r = inspectDtlsDatagram(d);
    assert.ok(!r.ok && r.reason === 'plaintext_app_data' && r.offset === 33);
  });

  test('never throws and every accepted datagram is tiled exactly by records (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const r = inspectDtlsDatagram(bytes);
        if (!r.ok) return true;
        let o = 0;
        let n = 0;
        while (o < bytes.length) {
          o += 13 + (((bytes[o + 11] ?? 0) << 8) | (bytes[o + 12] ?? 0));
          n++;
        }
        return o === bytes.length && n === r.records;
      }),
      { numRuns: 5000 },
    );
  });
});

describe('protectedRecordsFit (established association, AES-GCM overhead 24)', () => {
  const GCM = 24;
  const cases: { name: string; d: Buffer; fit: boolean }[] = [
    { name: '1-byte application data record', d: record({ type: 23, epoch: 1, body: Buffer.alloc(GCM + 1) }), fit: true },
    { name: 'empty application data record (RFC 5246 §6.2.1)', d: record({ type: 23, epoch: 1, body: Buffer.alloc(GCM) }), fit: true },
    { name: 'close_notify alert', d: record({ type: 21, epoch: 1, body: Buffer.alloc(GCM + 2) }), fit: true },
    { name: 'alert one byte short', d: record({ type: 21, epoch: 1, body: Buffer.alloc(GCM + 1) }), fit: false },
    { name: '20-byte protected body (enough for ChaCha20-Poly1305, not for AES-GCM)', d: record({ type: 23, epoch: 1, body: Buffer.alloc(20) }), fit: false },
    { name: 'application data shorter than nonce + tag', d: record({ type: 23, epoch: 1, body: Buffer.alloc(GCM - 1) }), fit: false },
    { name: 'handshake record without room for a message header', d: record({ type: 22, epoch: 1, body: Buffer.alloc(GCM + 11) }), fit: false },
    { name: 'a retransmitted Finished', d: record({ type: 22, epoch: 1, body: Buffer.alloc(GCM + 24) }), fit: true },
    { name: 'epoch-0 records are not judged here', d: record({ type: 21, body: Buffer.from([1, 0]) }), fit: true },
    { name: 'a short record after a good one', d: Buffer.concat([record({ type: 23, epoch: 1, body: Buffer.alloc(100) }), record({ type: 23, epoch: 1, body: Buffer.alloc(20) })]), fit: false },
  ];
  for (const c of cases) {
    test(`${c.name} → ${c.fit ? 'fits' : 'dropped'}`, () => {
      assert.equal(inspectDtlsDatagram(c.d).ok, true, 'passes the structural check');
      assert.equal(protectedRecordsFit(c.d, GCM), c.fit);
    });
  }
});

/**
 * Child for fused-writer.test.ts, run with `node --disallow-code-generation-from-strings`:
 * decodes one IPFIX message with a fused-path sink over a real Batcher and prints how the
 * records went (JSON). Without code generation neither the specialised decoder nor the fused
 * writer can be built, so every record must take the FlowRecord path.
 */
import { DecodeService } from '../../src/decode/decode-service.js';
import { Batcher } from '../../src/ingest-worker/batcher.js';
import { FusedSetWriter } from '../../src/ingest-worker/fused-writer.js';
import { CapturedBatches } from './batch-capture.js';
import { dataSet, exporterPacket, ipfixMessage, ipfixTemplateSet, type FieldDef } from './ipfix-builder.js';

const fields: FieldDef[] = [{ id: 8, length: 4 }, { id: 12, length: 4 }, { id: 7, length: 2 }, { id: 1, length: 8 }];
const sink = new CapturedBatches();
const batcher = new Batcher(sink, { queued: true, setTimer: () => null, clearTimer: () => undefined });
const svc = new DecodeService({}, { rawRecords: false, fused: new FusedSetWriter(batcher) });
const o = svc.decode(exporterPacket(ipfixMessage({ sequence: 0 }, [ipfixTemplateSet([{ id: 256, fields }]), dataSet(256, fields, [['10.0.0.1', '192.0.2.1', 80, 1500n], ['10.0.0.2', '192.0.2.2', 443, 40n]])])));
batcher.accept(o.records);
process.stdout.write(JSON.stringify({ fused: o.fusedRecords, records: o.records.length, errors: o.errors.map((x) => x.code), batch: (batcher.flush(), Buffer.from(sink.single()).toString('hex')) }));

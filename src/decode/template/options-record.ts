import type { FieldSpec } from '../../flow/flow-record.js';
import { readUnsignedN } from '../byte-reader.js';
import { readVarLength, VARIABLE_LENGTH } from './field-mapping.js';

/**
 * Options data the decoder itself needs (RFC 7011 §4, RFC 3954 §6.1, RFC 5476 for PSAMP):
 * exporter boot time for sysUpTime-relative timestamps, and sampling per observation domain
 * and per sampler/selector ID. Everything else in options records stays available through
 * decodeElements(); it is not interpreted here.
 */
export interface OptionsValues {
  /** systemInitTimeMilliseconds (IE 160), Unix ms; -1 when absent. */
  sysInitMs: number;
  /** samplerId (48) or selectorId (302); -1 when absent. */
  samplerId: number;
  /** Sampling interval derived from the record (≥ 1), 0 when the record carries none. */
  interval: number;
}

export function newOptionsValues(): OptionsValues {
  return { sysInitMs: -1, samplerId: -1, interval: 0 };
}

const IE_SAMPLING_INTERVAL = 34;
const IE_SAMPLER_ID = 48;
const IE_SAMPLER_RANDOM_INTERVAL = 50;
const IE_SYSTEM_INIT_TIME_MS = 160;
const IE_SELECTOR_ID = 302;
const IE_SAMPLING_PACKET_INTERVAL = 305;
const IE_SAMPLING_PACKET_SPACE = 306;
const IE_SAMPLING_SIZE = 309;
const IE_SAMPLING_POPULATION = 310;
const IE_SAMPLING_PROBABILITY = 311;
/** Largest sampling interval believed; beyond it the value is garbage, not a rate. */
const MAX_SAMPLING_INTERVAL = 0x7fffffff;

/**
 * Reads one options data record at `p` (not past `end`) into `out` (reset first). Returns the
 * offset after the record, or -1 when a variable-length field runs past `end`.
 */
export function readOptionsRecord(fields: readonly FieldSpec[], view: DataView, p: number, end: number, out: OptionsValues): number {
  out.sysInitMs = -1;
  out.samplerId = -1;
  out.interval = 0;
  let direct = 0;
  let pktInterval = 0;
  let pktSpace = 0;
  let size = 0;
  let population = 0;
  let probability = 0;
  let q = p;
  for (const f of fields) {
    let n = f.length;
    if (n === VARIABLE_LENGTH) {
      const v = readVarLength(view, q, end);
      if (v < 0) return -1;
      n = v >>> 2;
      q += v & 3;
    }
    if (q + n > end) return -1;
    if (f.enterprise === 0 && n >= 1 && n <= 8) {
      switch (f.id) {
        case IE_SYSTEM_INIT_TIME_MS:
          out.sysInitMs = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLER_ID:
        case IE_SELECTOR_ID:
          out.samplerId = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_INTERVAL:
        case IE_SAMPLER_RANDOM_INTERVAL:
          direct = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_PACKET_INTERVAL:
          pktInterval = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_PACKET_SPACE:
          pktSpace = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_SIZE:
          size = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_POPULATION:
          population = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_PROBABILITY:
          probability = n === 8 ? view.getFloat64(q) : n === 4 ? view.getFloat32(q) : 0;
          break;
        default:
          break;
      }
    }
    q += n;
  }
  // RFC 5476 §6.5.2: systematic count-based sampling selects `interval` packets of every
  // interval + space; random n-out-of-N selects size of population; probabilistic keeps p.
  let interval = direct;
  if (interval === 0 && pktInterval > 0) interval = (pktInterval + pktSpace) / pktInterval;
  if (interval === 0 && size > 0 && population > 0) interval = population / size;
  if (interval === 0 && probability > 0 && probability <= 1) interval = 1 / probability;
  interval = Math.round(interval);
  out.interval = interval >= 1 && interval <= MAX_SAMPLING_INTERVAL ? interval : 0;
  return q;
}

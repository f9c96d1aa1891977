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
const IE_SELECTOR_ALGORITHM = 304;
/** RFC 7014 flow selection: select `interval` flows, skip `spacing` (IE 396, 397). */
const IE_SAMPLING_FLOW_INTERVAL = 396;
const IE_SAMPLING_FLOW_SPACING = 397;

/** RFC 5477 §8.2.1 / IANA "selectorAlgorithm" values this decoder turns into a 1-in-N rate. */
const SelectorAlgorithm = {
  SystematicCount: 1,
  SystematicTime: 2,
  RandomNOutOfN: 3,
  UniformProbabilistic: 4,
} as const;
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
  let algorithm = -1;
  let flowInterval = 0;
  let flowSpacing = 0;
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
        case IE_SELECTOR_ALGORITHM:
          algorithm = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_FLOW_INTERVAL:
          flowInterval = Number(readUnsignedN(view, q, n));
          break;
        case IE_SAMPLING_FLOW_SPACING:
          flowSpacing = Number(readUnsignedN(view, q, n));
          break;
        default:
          break;
      }
    }
    q += n;
  }
  // RFC 5476 §6.5.2: systematic count-based sampling selects `interval` packets of every
  // interval + space; random n-out-of-N selects size of population; probabilistic keeps p.
  // With a selectorAlgorithm (304) only that algorithm's parameters count (RFC 5477 §8.2.1):
  // a time-based or filtering selector has no packet rate, so it gives none (unknown).
  const systematic = pktInterval > 0 ? (pktInterval + pktSpace) / pktInterval : 0;
  const random = size > 0 && population > 0 ? population / size : 0;
  const probabilistic = probability > 0 && probability <= 1 ? 1 / probability : 0;
  let interval = direct;
  if (interval === 0) {
    switch (algorithm) {
      case -1:
        interval = systematic || random || probabilistic;
        break;
      case SelectorAlgorithm.SystematicCount:
        interval = systematic;
        break;
      case SelectorAlgorithm.RandomNOutOfN:
        interval = random;
        break;
      case SelectorAlgorithm.UniformProbabilistic:
        interval = probabilistic;
        break;
      default:
        interval = 0;
    }
  }
  // RFC 7014 §5: flow selection by count keeps `interval` flows of every interval + spacing.
  if (interval === 0 && flowInterval > 0) interval = (flowInterval + flowSpacing) / flowInterval;
  interval = Math.round(interval);
  out.interval = interval >= 1 && interval <= MAX_SAMPLING_INTERVAL ? interval : 0;
  return q;
}

/**
 * Per-message state a record decoder needs besides the record's bytes: the export time, the
 * exporter's uptime anchor (for sysUpTime-relative times) and the sampling configuration of
 * the (session, observation domain). DecodeService fills one instance before each data set;
 * decoders only read it, so no per-record allocation is needed.
 */
export class RecordContext {
  /** Export time of the carrying message, Unix ms. */
  exportMs = 0;
  /** Whether uptimeMs is known (v9 header; IPFIX only after systemInitTimeMilliseconds options data). */
  hasUptime = false;
  /** Exporter sysUpTime at export time, ms (may exceed 2^32 for IPFIX: it is exportMs − systemInitTime). */
  uptimeMs = 0;
  /** Sampling interval for records that name no sampler (1 = unsampled). */
  defaultSampling = 1;
  /** Sampling interval per samplerId / selectorId, from options data. */
  samplers: ReadonlyMap<number, number> | null = null;
  /**
   * Records that named a sampler / selector no options data described (so far): their
   * interval is the domain's default (1 when nothing is known). Read and reset by the
   * DecodeService after each data set; counted as `samplerUnknown`.
   */
  unknownSamplerRecords = 0;

  /** Sampling interval for a record that names sampler `samplerId`. */
  samplingFor(samplerId: number): number {
    const v = this.samplers?.get(samplerId);
    if (v !== undefined) return v;
    this.unknownSamplerRecords++;
    return this.defaultSampling;
  }

  /**
   * Absolute Unix ms of a u32 sysUpTime value (flowStartSysUpTime, v9 FIRST_SWITCHED):
   * export time minus the uptime difference, taken as a signed 32-bit number so that a
   * sysUpTime wrap between the flow and the export (every ~49.7 days) still gives the short
   * positive difference (RFC 3954 §8 fields are u32 ms).
   */
  absoluteFromUptime(value: number): number | null {
    return this.hasUptime ? this.exportMs - ((this.uptimeMs - value) | 0) : null;
  }
}

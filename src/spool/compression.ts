import { createHash } from 'node:crypto';
import { brotliCompressSync, brotliDecompressSync, constants as zlibConstants, deflateRawSync, inflateRawSync } from 'node:zlib';

/**
 * Format byte of a sealed batch (stored per batch and bound into its associated data):
 * batch codec v1, then raw deflate (1) or brotli (2), then XChaCha20-Poly1305 with a detached tag.
 * Brotli quality 0 is the default: on 15-field IPv4 batches it compresses ~4.5× faster than
 * deflate level 1 for ~9% more bytes (quality 1: ~3× faster, same size as deflate; measured
 * with bench/spool.ts), and compression is the append path's most expensive step.
 */
export const SEAL_FORMAT_DEFLATE = 1;
export const SEAL_FORMAT_BROTLI = 2;
/**
 * Stored uncompressed (still sealed): with compression 'none', and for batches appended while
 * the ingest thread is overloaded (SpoolWriter.setCompressionBypass), which trade ~40% more bytes at
 * rest for the CPU that compression would take from a machine that is dropping records.
 */
export const SEAL_FORMAT_NONE = 3;
export type Compression = 'brotli' | 'deflate' | 'none';

export function sealFormatOf(compression: Compression | undefined): number {
  return compression === 'deflate' ? SEAL_FORMAT_DEFLATE : compression === 'none' ? SEAL_FORMAT_NONE : SEAL_FORMAT_BROTLI;
}

export function isSealFormat(format: number): boolean {
  return format === SEAL_FORMAT_DEFLATE || format === SEAL_FORMAT_BROTLI || format === SEAL_FORMAT_NONE;
}

/** deflate level 1 / brotli quality 0: the fastest levels; flow batches still shrink ~1.4–1.5×. */
const DEFLATE_LEVEL = 1;
const BROTLI_QUALITY = 0;
/** 256 KiB window: covers a default 1 MiB-estimate batch's ~170 KiB serialized form; larger is slower, not smaller. */
const BROTLI_LGWIN = 18;
/** A decompressed batch larger than this is refused (1 MiB batches are the default; this is a bomb guard). */
const MAX_BATCH_PLAIN_BYTES = 256 * 1024 * 1024;

/** Compresses a serialized batch for the given seal format (pure: also runs on the compressor thread). */
export function compressBatch(format: number, plain: Uint8Array): Uint8Array {
  if (format === SEAL_FORMAT_NONE) return plain;
  if (format === SEAL_FORMAT_DEFLATE) return deflateRawSync(plain, { level: DEFLATE_LEVEL });
  return brotliCompressSync(plain, {
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: BROTLI_QUALITY, [zlibConstants.BROTLI_PARAM_LGWIN]: BROTLI_LGWIN, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: plain.length },
  });
}

export function decompressBatch(format: number, packed: Uint8Array): Uint8Array {
  if (format === SEAL_FORMAT_NONE) {
    if (packed.length > MAX_BATCH_PLAIN_BYTES) throw new RangeError(`uncompressed batch of ${packed.length} bytes exceeds ${MAX_BATCH_PLAIN_BYTES}`);
    return packed;
  }
  if (format === SEAL_FORMAT_DEFLATE) return inflateRawSync(packed, { maxOutputLength: MAX_BATCH_PLAIN_BYTES });
  return brotliDecompressSync(packed, { maxOutputLength: MAX_BATCH_PLAIN_BYTES });
}

/**
 * SHA-256 (hex) of a batch's plaintext (batch-format bytes), recorded in the audit trail's
 * `batch.sealed` event: `sealflow spool export` shows the same digest for a batch it decrypts,
 * so an auditor can tie a delivered or exported batch to its sealing. Computed where the batch
 * is compressed (the compressor thread, when it runs).
 */
export function batchDigest(plain: Uint8Array): string {
  return createHash('sha256').update(plain).digest('hex');
}

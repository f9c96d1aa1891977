/**
 * Growth of the reusable output buffers of the binary writers (the spool's batch codec, the
 * Fusion JSON writer): capacity doubles until `needed` more bytes fit after the `used` ones,
 * so a writer reaches its working size in a few copies and then stays there.
 */
export function grownBytes(buf: Uint8Array, used: number, needed: number): Uint8Array {
  let size = Math.max(buf.length * 2, 1);
  while (size < used + needed) size *= 2;
  const next = new Uint8Array(size);
  next.set(buf.subarray(0, used));
  return next;
}

/**
 * A minimal POSIX ustar archive (IEEE Std 1003.1, "pax"/ustar interchange format): regular
 * files only, names ≤ 100 bytes, so `tar -xf` anywhere extracts it. The writer is
 * deterministic (fixed owner, mode 0644, the given mtime); the reader checks every header's
 * checksum and size before trusting it.
 */

const BLOCK = 512;
const NAME_BYTES = 100;
/** Largest member read back (the evidence pack's trail export is the big one). */
const MAX_MEMBER_BYTES = 8 * 1024 * 1024 * 1024;

export interface TarEntry {
  readonly name: string;
  readonly data: Uint8Array;
}

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, mtimeS: number): Buffer {
  const h = Buffer.alloc(BLOCK);
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length > NAME_BYTES) throw new RangeError(`tar: member name longer than ${NAME_BYTES} bytes: ${name}`);
  nameBytes.copy(h, 0);
  h.write(octal(0o644, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtimeS, 12), 136, 'ascii');
  h.write('        ', 148, 'ascii');
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('root', 265, 'ascii');
  h.write('root', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

export function writeTar(entries: readonly TarEntry[], mtimeS: number): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e.name, e.data.length, mtimeS), Buffer.from(e.data));
    const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
    if (pad > 0) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(2 * BLOCK));
  return Buffer.concat(parts);
}

/** The members of a ustar archive; throws a RangeError naming the offset on a malformed header. */
export function readTar(buf: Uint8Array): TarEntry[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: TarEntry[] = [];
  let p = 0;
  while (p + BLOCK <= b.length) {
    const h = b.subarray(p, p + BLOCK);
    if (h.every((x) => x === 0)) break;
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h.readUInt8(i);
    const stored = parseInt(h.toString('ascii', 148, 156).replace(/\0.*$/, '').trim(), 8);
    if (stored !== sum) throw new RangeError(`tar: bad header checksum at byte ${p}`);
    const size = parseInt(h.toString('ascii', 124, 136).replace(/\0.*$/, '').trim(), 8);
    if (!Number.isSafeInteger(size) || size < 0 || size > MAX_MEMBER_BYTES || p + BLOCK + size > b.length) throw new RangeError(`tar: bad member size at byte ${p}`);
    const nameEnd = h.indexOf(0, 0);
    const name = h.toString('utf8', 0, nameEnd === -1 || nameEnd > NAME_BYTES ? NAME_BYTES : nameEnd);
    const type = String.fromCharCode(h.readUInt8(156));
    if (type === '0' || type === '\0') out.push({ name, data: b.subarray(p + BLOCK, p + BLOCK + size) });
    p += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}

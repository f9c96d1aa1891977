/**
 * `sealflow decode [--exporter ADDR] FILE...`: offline decoder for troubleshooting exports,
 * like `nfdump -r`. Reads raw payloads (.dat/.bin), classic pcap and RFC 5655 IPFIX files
 * (src/ingest/file), feeds every packet in file order through one DecodeService so that a
 * template file followed by a data file decodes, and prints one Fusion flow record per line
 * (NDJSON) on stdout. Problems go to stderr as `FILE: offset N: CODE: message` with the byte
 * offset in that file. Nothing is written to disk.
 *
 * Sessions: packets of one exporter address share one transport session (RFC 7011 §3), so
 * template state carries across files; raw and IPFIX files carry no address and all belong
 * to the `--exporter` address (default 0.0.0.0). A pcap holding several exporters keeps their
 * templates apart, as a collector would.
 *
 * Exit status: 0 everything decoded; 1 something failed to decode (or was skipped: IP
 * fragments, frames cut by the snapshot length, data whose template never came); 66 a file
 * could not be read; 64 usage error.
 */
import { readFile } from 'node:fs/promises';
import { DecodeService } from '../decode/decode-service.js';
import type { DecodeOutcome, DecodeServiceOptions } from '../decode/decode-service.js';
import { DecodeErrorCode } from '../flow/errors.js';
import type { DecodeError } from '../flow/errors.js';
import { FusionJsonWriter } from '../flow/fusion-record.js';
import { normaliseAddress, parseIp } from '../flow/ip.js';
import { readCaptureFile } from '../ingest/file/capture-file.js';
import type { CommandIo, CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const USAGE = `usage: sealflow decode [--exporter ADDR] FILE...   (FILE "-": standard input)

Decodes flow captures and prints one Fusion flow record per line (NDJSON) on stdout.

FILE formats (recognised by content, then by extension):
  .dat / .bin   one raw UDP payload (IPFIX, NetFlow v9/v5, sFlow v5); several IPFIX
                messages or NetFlow v5 datagrams back to back are split by their lengths
  .pcap         classic libpcap (Ethernet, 802.1Q, Linux cooked SLL/SLL2, raw IP,
                loopback); the UDP payloads in order, the IP source as the exporter
  .pcapng       pcapng as Wireshark/dumpcap write it, several interfaces and link
                types per file, read the same way
  .ipfix        RFC 5655 IPFIX file (a stream of IPFIX messages)
  -             standard input, recognised by content (e.g. tcpdump -w - | sealflow decode -)

All files are one exporter session, in the order given: a template file then a data file
decodes. Problems go to stderr with the file name and byte offset.

options:
  --exporter ADDR   exporter address for every record (flowsrcip) and session; default:
                    the pcap's IP source, 0.0.0.0 for files that carry no address
  --tunnel-layer inner|outer
                    which IP header of a tunnelled flow fills a record (default inner;
                    the decode.tunnelLayer setting, docs/decoding.md)
  --sflow-octets ip|frame
                    sFlow byte count: IP packet length (default) or sampled frame length
                    (the decode.sflowOctets setting, docs/decoding.md)
  -h, --help        this help

exit status: 0 all decoded, 1 something failed, 66 a file could not be read, 64 usage error
`;

/** Exporter address for captures that carry none. */
const UNKNOWN_EXPORTER = '0.0.0.0';
/** Problems printed per file; the rest are counted and summarised, so a capture full of non-flow UDP stays readable. */
const MAX_PROBLEMS_LISTED_PER_FILE = 200;
/** Flush stdout in chunks of about this many characters. */
const OUTPUT_CHUNK_CHARS = 64 * 1024;
/** At the end, expire held data "now + this": far enough that every hold time has passed. */
const FAR_FUTURE_MS = 1000 * 365 * 24 * 3600 * 1000;

/** A packet whose data sets were held for a template, to name its file when they expire. */
interface HeldPacket {
  readonly fileName: string;
  readonly fileOffset: number;
  readonly payload: Uint8Array;
}

function writeChunk(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (stream.write(text)) return Promise.resolve();
  return new Promise((resolve) => stream.once('drain', () => resolve()));
}

class DecodeRun {
  readonly #io: CommandIo;
  readonly #service: DecodeService;
  readonly #held: HeldPacket[] = [];
  #out = '';
  readonly #json = new FusionJsonWriter();
  records = 0;
  packets = 0;
  problems = 0;
  /** pcap frames that were not UDP over IPv4/IPv6 (ARP, TCP, ...): normal in captures, not failures. */
  nonUdpSkipped = 0;

  constructor(io: CommandIo, options: DecodeServiceOptions) {
    this.#io = io;
    this.#service = new DecodeService({}, options);
  }

  #listedInFile = 0;
  #unlistedInFile = 0;

  problem(fileName: string, offset: number | null, code: string, message: string): void {
    this.problems++;
    if (this.#listedInFile >= MAX_PROBLEMS_LISTED_PER_FILE) {
      this.#unlistedInFile++;
      return;
    }
    this.#listedInFile++;
    const where = offset === null ? '' : ` offset ${offset}:`;
    this.#io.stderr.write(`sealflow decode: ${fileName}:${where} ${code}: ${message}\n`);
  }

  async emit(outcome: DecodeOutcome): Promise<void> {
    if (outcome.records.length > 0) this.#out += this.#json.ndjson(outcome.records).toString('utf8');
    this.records += outcome.records.length;
    if (this.#out.length >= OUTPUT_CHUNK_CHARS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#out === '') return;
    const text = this.#out;
    this.#out = '';
    await writeChunk(this.#io.stdout, text);
  }

  reportErrors(fileName: string, fileOffset: number, outcome: DecodeOutcome): void {
    for (const e of outcome.errors) this.problem(fileName, fileOffset + e.offset, e.code, e.message);
    const unlisted = outcome.errorCount - outcome.errors.length;
    if (unlisted > 0) {
      this.problem(fileName, fileOffset, DecodeErrorCode.BadRecord, `${unlisted} more problems in this packet not listed`);
    }
  }

  async decodeFile(fileName: string, bytes: Uint8Array, exporterOverride: string | null, nowMs: number): Promise<void> {
    this.#listedInFile = 0;
    this.#unlistedInFile = 0;
    const read = readCaptureFile(bytes, fileName, {
      exporterOverride,
      defaultExporter: UNKNOWN_EXPORTER,
      defaultReceivedAtMs: nowMs,
      sessionKeyFor: (exporter) => `file|${exporter}`,
    });
    for (const { packet, fileOffset } of read.packets) {
      this.packets++;
      const outcome = this.#service.decode(packet);
      if (outcome.pendingHeld > 0) this.#held.push({ fileName, fileOffset, payload: packet.payload });
      this.reportErrors(fileName, fileOffset, outcome);
      await this.emit(outcome);
    }
    for (const p of read.problems) this.problem(fileName, p.offset, p.code, p.message);
    this.nonUdpSkipped += read.nonUdpSkipped;
    if (read.ipFragmentsSkipped > 0) {
      this.problem(fileName, null, DecodeErrorCode.Truncated, `${read.ipFragmentsSkipped} IP fragments skipped (not reassembled)`);
    }
    if (this.#unlistedInFile > 0) this.#io.stderr.write(`sealflow decode: ${fileName}: ${this.#unlistedInFile} more problems not listed\n`);
  }

  /** Reports data still waiting for a template as failures, naming the file it came from. */
  async finish(): Promise<void> {
    this.#listedInFile = 0;
    this.#unlistedInFile = 0;
    const outcome = this.#service.expire(Date.now() + FAR_FUTURE_MS);
    for (const e of outcome.errors) {
      const from = this.#heldOrigin(e);
      if (from === null) this.problem('(held data)', e.offset, e.code, e.message);
      else this.problem(from.fileName, from.fileOffset + e.offset, e.code, e.message);
    }
    const unlisted = outcome.errorCount - outcome.errors.length;
    if (unlisted > 0) this.problem('(held data)', null, DecodeErrorCode.PendingExpired, `${unlisted} more held data sets dropped, not listed`);
    await this.emit(outcome);
    await this.flush();
  }

  /** The held packet whose set at e.offset carries e's template ID (set header: ID u16, length u16). */
  #heldOrigin(e: DecodeError): HeldPacket | null {
    const templateId = e.context.templateId;
    if (typeof templateId !== 'number') return null;
    for (const h of this.#held) {
      const at = e.offset - 4;
      if (at >= 0 && at + 2 <= h.payload.length && ((h.payload[at] ?? 0) << 8 | (h.payload[at + 1] ?? 0)) === templateId) return h;
    }
    return null;
  }
}

/** The whole stream, like readFile for a path (captures are read whole either way). */
async function readAll(stream: NodeJS.ReadableStream): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return new Uint8Array(Buffer.concat(chunks));
}

export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs(
    'decode',
    USAGE,
    argv,
    io,
    { exporter: { type: 'string' }, 'tunnel-layer': { type: 'string' }, 'sflow-octets': { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals: files } = parsed;
  if (files.length === 0) {
    io.stderr.write(`sealflow decode: no FILE given\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  let exporterOverride: string | null = null;
  if (values.exporter !== undefined) {
    const text = normaliseAddress(values.exporter);
    if (parseIp(text) === null) {
      io.stderr.write(`sealflow decode: --exporter ${JSON.stringify(values.exporter)} is not an IPv4 or IPv6 address\n`);
      return ExitCode.Usage;
    }
    exporterOverride = text;
  }

  const layer = values['tunnel-layer'] ?? 'inner';
  const octets = values['sflow-octets'] ?? 'ip';
  if ((layer !== 'inner' && layer !== 'outer') || (octets !== 'ip' && octets !== 'frame')) {
    io.stderr.write(`sealflow decode: --tunnel-layer takes inner or outer, --sflow-octets ip or frame\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  const run = new DecodeRun(io, { layerPolicy: layer, sflowOctets: octets });
  const nowMs = Date.now();
  let unreadable = false;
  const fromStdin = files.filter((f) => f === '-').length;
  if (fromStdin > 1 || (fromStdin === 1 && io.stdin === undefined)) {
    io.stderr.write(`sealflow decode: "-" (standard input) can be given once, where there is a standard input\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  for (const fileName of files) {
    let bytes: Uint8Array;
    try {
      bytes = fileName === '-' && io.stdin !== undefined ? await readAll(io.stdin) : new Uint8Array(await readFile(fileName));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
      io.stderr.write(`sealflow decode: ${fileName}: cannot read (${code})\n`);
      unreadable = true;
      continue;
    }
    await run.decodeFile(fileName, bytes, exporterOverride, nowMs);
  }
  await run.finish();
  const skipped = run.nonUdpSkipped > 0 ? ` (${run.nonUdpSkipped} non-UDP frames skipped)` : '';
  io.stderr.write(`sealflow decode: ${run.records} records from ${run.packets} packets${skipped}, ${run.problems} problems\n`);
  if (unreadable) return ExitCode.NoInput;
  return run.problems > 0 ? ExitCode.Failure : ExitCode.Ok;
};

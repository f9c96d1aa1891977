/**
 * Runs tshark over a pcap and returns the requested fields per frame, so decoders can be
 * cross-checked against Wireshark's dissectors on the same bytes. Multiple occurrences of a
 * field in one frame (one per flow record) come back as an array in frame order.
 */
import { spawnSync } from 'node:child_process';

/** True when tshark is installed; tests skip (or fail under CI) otherwise. */
export function haveTshark(): boolean {
  return spawnSync('tshark', ['--version'], { stdio: 'ignore' }).status === 0;
}

export function tsharkFields(pcapPath: string, decodeAs: readonly string[], fields: readonly string[]): Record<string, string[]>[] {
  const args = ['-r', pcapPath, '-T', 'fields', '-E', 'separator=\t', '-E', 'aggregator=|', '-E', 'occurrence=a'];
  for (const d of decodeAs) args.push('-d', d);
  for (const f of fields) args.push('-e', f);
  const res = spawnSync('tshark', args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (res.status !== 0) throw new Error(`tshark failed (${res.status}): ${res.stderr}`);
  return res.stdout
    .split('\n')
    .filter((l) => l.length > 0)
    .map((line) => {
      const cols = line.split('\t');
      const row: Record<string, string[]> = {};
      fields.forEach((f, i) => {
        const v = cols[i] ?? '';
        row[f] = v === '' ? [] : v.split('|');
      });
      return row;
    });
}

/**
 * The captures the tests replay and decode: test/fixtures/corpora, real exporters' bytes from
 * other decoders' public test suites plus a synthetic pcap with its ground truth. Sources,
 * licenses and where expected values come from: its README.md and manifest.tsv.
 */
import { fileURLToPath } from 'node:url';

export const corpora = fileURLToPath(new URL('../fixtures/corpora', import.meta.url));

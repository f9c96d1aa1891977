/**
 * The control map of the evidence pack: for each control an auditor names, the sealflow
 * feature that addresses it, the files in the pack that evidence it, and the tests in this
 * repository that prove the feature (test/integration/evidence-pack.test.ts checks every named
 * test exists). Only what those tests prove is claimed; `limits` says what the evidence does not
 * cover. Control texts are paraphrased; the standard's own text governs.
 */

export interface ControlTest {
  readonly file: string;
  readonly name: string;
}

export interface ControlEntry {
  readonly framework: string;
  readonly control: string;
  readonly requirement: string;
  readonly feature: string;
  /** Paths inside the evidence pack. */
  readonly evidence: readonly string[];
  readonly tests: readonly ControlTest[];
  readonly limits: string;
}

const ATTEST = 'attest/report.json';
const TRAIL = 'audit/trail.jsonl';
const CONFIG = 'config/effective.json';
const VERIFY = 'audit/VERIFY.md';

const T = {
  trail: { file: 'test/e2e/audit-trail.test.ts', name: 'audit trail: every event class from real runs; verify passes, and fails on edited, reordered, truncated or re-signed copies' },
  retention: { file: 'test/unit/audit-trail.test.ts', name: 'retention removes only signed events from the front; the rest still verifies, the cut shows as a gap; --since anchors on a digest' },
  attestPass: { file: 'test/integration/attest.test.ts', name: 'attest passes on a correct setup: signed report, one-page HTML, canaries gone with their epoch' },
  attestPlanted: { file: 'test/integration/attest.test.ts', name: 'attest fails, naming the finding, on a planted plaintext file in the data directory' },
  plaintext: { file: 'test/integration/spool-plaintext.test.ts', name: 'after normal operation, quota eviction, out-of-order acks, decoder state and VACUUM' },
  shred: { file: 'test/integration/spool-roundtrip.test.ts', name: 'epoch keys rotate with time and are destroyed when their epoch is empty (crypto-shredding)' },
  shredFiles: { file: 'test/integration/spool-wal-checkpointer.test.ts', name: 'the destroyed wrapped key leaves every file' },
  tamper: { file: 'test/integration/spool-tamper.test.ts', name: 'one flipped ciphertext byte' },
  tls11: { file: 'test/integration/tls-listener-auth.test.ts', name: 'TLS 1.1 client' },
  noCert: { file: 'test/integration/tls-listener-auth.test.ts', name: 'no client certificate' },
  dtls10: { file: 'test/integration/dtls-listener.test.ts', name: 'DTLS 1.0 client' },
  uplinkCa: { file: 'test/integration/drain-tls.test.ts', name: 'unknown CA: refused' },
  pseudonymize: { file: 'test/e2e/privacy-pseudonymize.test.ts', name: 'privacy.pseudonymize: pseudonyms in the spool export and at Fusion, real addresses nowhere on disk, filters on real addresses' },
  floors: { file: 'test/integration/attest-transport.test.ts', name: 'TLS/DTLS floors probed live: refused by sealflow run (pass), TLS 1.1 answered (fail), nothing listening (warn)' },
  pack: { file: 'test/integration/evidence-pack.test.ts', name: 'the evidence pack verifies offline with only the public key, and fails when any file is altered' },
} as const satisfies Record<string, ControlTest>;

export const CONTROL_MAP: readonly ControlEntry[] = [
  {
    framework: 'PCI DSS 4.0',
    control: '3.2.1',
    requirement: 'Stored account data is kept to a minimum: limited in amount and retention time, securely deleted when no longer needed.',
    feature: 'A batch leaves the spool when Fusion acknowledged it, or when the byte quota evicts the oldest; a key epoch holding no live batch is crypto-shredded (its wrapped key deleted with secure_delete, the WAL truncated), each shredding recorded in the audit trail with a signed deletion receipt.',
    evidence: [TRAIL, CONFIG],
    tests: [T.trail, T.shred, T.shredFiles],
    limits: 'Covers the spool only. An age limit on undelivered batches needs spool.maxAgeSeconds where available; otherwise data stays until delivered or evicted.',
  },
  {
    framework: 'PCI DSS 4.0',
    control: '3.5',
    requirement: 'Stored sensitive data is rendered unreadable with strong cryptography (3.5.1).',
    feature: 'Every batch is sealed with XChaCha20-Poly1305 under a random per-epoch data key, stored only wrapped by the key-encryption key, which never touches the spool\'s disk; `sealflow attest` sends canaries through the ingest path and finds none of their encodings on disk.',
    evidence: [ATTEST, CONFIG],
    tests: [T.plaintext, T.attestPass, T.attestPlanted],
    limits: 'Flow records are network metadata, not PAN: this applies where flow data is in PCI scope. Unencrypted metadata (batch ids, sizes, counts, minute times) remains. The KEK holder can decrypt.',
  },
  {
    framework: 'PCI DSS 4.0',
    control: '10.5',
    requirement: 'Audit log history is retained for at least 12 months, three months immediately available (10.5.1).',
    feature: 'The audit trail lives in the spool database; audit.retentionDays (default 400) removes only events a signed digest covers; digests and deletion receipts are kept; `audit export` gives the whole trail.',
    evidence: [TRAIL, CONFIG, VERIFY],
    tests: [T.retention, T.trail],
    limits: 'The probe\'s own events; the host\'s logs are the operator\'s. A wiped database loses the trail: keep exports (and the digest hashes logged to syslog) off the device.',
  },
  {
    framework: 'HIPAA',
    control: '164.312(a)(2)(iv)',
    requirement: 'Encryption and decryption of electronic protected health information (addressable).',
    feature: 'Spool encryption at rest (as for PCI DSS 3.5); decryption only with the KEK (`sealflow spool export` to stdout, never to disk).',
    evidence: [ATTEST, CONFIG],
    tests: [T.plaintext, T.attestPass],
    limits: 'Process memory holds plaintext while records are processed.',
  },
  {
    framework: 'HIPAA',
    control: '164.312(e)(2)(ii)',
    requirement: 'Encryption of electronic protected health information in transmission (addressable).',
    feature: 'IPFIX over TLS and DTLS (≥ 1.2, mutual certificate authentication, no switch to turn it off); the uplink to Fusion over HTTPS with system or configured CAs and optional pins.',
    evidence: [ATTEST, CONFIG],
    tests: [T.tls11, T.noCert, T.dtls10, T.uplinkCa, T.floors],
    limits: 'Plain UDP exports (NetFlow, sFlow, IPFIX/UDP) are cleartext on the wire by protocol; the attestation reports which listeners are on.',
  },
  {
    framework: 'GDPR',
    control: 'Art. 25',
    requirement: 'Data protection by design and by default.',
    feature: 'Defaults that expose nothing (loopback listeners and admin endpoint, empty UDP allowlist), no flow data on disk in plaintext, an audit trail that records ids, counts and digests but no flow data, erasure by crypto-shredding; privacy.pseudonymize replaces chosen addresses by keyed prefix-preserving pseudonyms before anything is stored, its key periods recorded in the trail.',
    evidence: [CONFIG, ATTEST, TRAIL],
    tests: [T.trail, T.attestPass, T.pseudonymize],
    limits: 'Pseudonymisation is off by default (the configuration in the pack says whether it is on, and for which prefixes); without it Fusion receives the addresses as exported.',
  },
  {
    framework: 'GDPR',
    control: 'Art. 32',
    requirement: 'Security of processing: encryption, ongoing confidentiality and integrity, regular testing of the measures (32(1)(a), (b), (d)).',
    feature: 'Encryption at rest and in transit; the spool\'s hash chain and the signed audit trail detect tampering; `sealflow attest` is a repeatable test of the setup, signed and recorded in the trail.',
    evidence: [ATTEST, TRAIL, VERIFY],
    tests: [T.tamper, T.trail, T.attestPass, T.attestPlanted],
    limits: 'Availability (32(1)(b), (c)) is the deployment\'s: the spool rides out uplink outages, not the loss of the host.',
  },
  {
    framework: 'DORA RTS (EU) 2024/1774',
    control: 'Art. 12',
    requirement: 'Logging: record relevant events, protect logs against tampering and unauthorised access, retain them, keep their time.',
    feature: 'An append-only, hash-chained audit trail; digests signed with the device key hourly and at every start and stop, each naming the previous; deletion receipts; offline verification with only the public key that reports edits, reorders, truncation, another key, and gaps (not running, crash, missing digests).',
    evidence: [TRAIL, VERIFY, 'device-public-key.pem'],
    tests: [T.trail, T.retention, T.pack],
    limits: 'Times are the host clock\'s (keep it synchronised). Events after the last digest are unsigned until the next one; removing the newest digests with their events is detectable only against a digest kept elsewhere (an export, syslog).',
  },
];

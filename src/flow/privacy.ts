/** Which pseudonymisation key wrote a batch (recorded in its header, src/batch/format.ts; derived keys in src/privacy/key-schedule.ts). */
export interface PseudonymKeyStamp {
  /** Period start, Unix seconds. */
  readonly startS: number;
  /** Period length in seconds; 0 = the period never ends (rotation 'never'). */
  readonly lengthS: number;
  /** The master key's fingerprint (8 bytes). */
  readonly fingerprint: Uint8Array;
}

/**
 * The privacy happenings an audit trail must record, in one port: the composition roots wire a
 * PrivacyEventSink (today: a log line each, see src/privacy/events.ts), and whatever keeps the
 * audit trail hooks in there. Events carry key fingerprints and periods, counts and reasons;
 * never a key, never a real (pseudonymised) address.
 */
export type PrivacyEvent =
  /** A new pseudonymisation period began (its key derived from the master key): the ingest worker, at start and at each rotation. */
  | { readonly kind: 'pseudonym_key.in_force'; readonly atMs: number; readonly fingerprint: string; readonly periodStartS: number; readonly periodLengthS: number; readonly reason: 'start' | 'rotation' }
  /** A pseudonym was reversed with the key (`sealflow reidentify`): who asked is the process's user. */
  | { readonly kind: 'pseudonym_key.reidentification'; readonly atMs: number; readonly fingerprint: string; readonly periodStartS: number; readonly periodLengthS: number; readonly pseudonym: string; readonly user: string; readonly outcome: 'reidentified' | 'not_a_pseudonym' }
  /** Batches older than spool.maxAgeSeconds were crypto-shredded, never to be uploaded (all undelivered: a delivered batch is deleted at its acknowledgement). */
  | { readonly kind: 'retention.expired'; readonly atMs: number; readonly maxAgeSeconds: number; readonly batches: number; readonly records: number };

export type PrivacyEventSink = (event: PrivacyEvent) => void;

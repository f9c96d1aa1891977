import type { AuditEvent, AuditLog } from '../flow/audit.js';
import type { PrivacyEvent, PrivacyEventSink } from '../flow/privacy.js';

type Recorders = { readonly [K in PrivacyEvent['kind']]?: (e: Extract<PrivacyEvent, { kind: K }>) => AuditEvent };

/**
 * The audit event of each privacy happening (a kind missing here is logged only: retention
 * expiries are recorded by the spool, as batch.expired, in the transaction that removes them).
 */
const RECORDERS: Recorders = {
  'pseudonym_key.in_force': (e) => ({ kind: 'pseudonym_key.in_force', fingerprint: e.fingerprint, periodStartS: e.periodStartS, periodLengthS: e.periodLengthS, reason: e.reason }),
  'pseudonym_key.reidentification': (e) => ({ kind: 'pseudonym_key.reidentification', fingerprint: e.fingerprint, periodStartS: e.periodStartS, periodLengthS: e.periodLengthS, pseudonym: e.pseudonym, user: e.user, outcome: e.outcome }),
};

/**
 * The audit trail as a PrivacyEventSink (src/flow/privacy.ts): each privacy happening recorded
 * as its audit event, after `next` (the log line). A failed write is reported through
 * `onError`, never thrown into the stage.
 */
export function auditingPrivacyEventSink(trail: () => AuditLog, next: PrivacyEventSink, onError: (err: Error, kind: string) => void): PrivacyEventSink {
  return (e: PrivacyEvent) => {
    next(e);
    const toAudit = RECORDERS[e.kind] as ((e: PrivacyEvent) => AuditEvent) | undefined;
    if (toAudit === undefined) return;
    try {
      trail().record(toAudit(e));
    } catch (err) {
      onError(err as Error, e.kind);
    }
  };
}

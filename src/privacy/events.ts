import type { Logger } from 'pino';
import type { PrivacyEvent, PrivacyEventSink } from '../flow/privacy.js';

/**
 * Today's PrivacyEventSink (src/flow/privacy.ts): one log line per event, at info (warn for a
 * re-identification, which a reviewer should notice), with the event's fields and its kind as
 * `event`. An audit trail hooks in where the composition roots call this.
 */
export function loggingPrivacyEventSink(logger: Logger): PrivacyEventSink {
  return (e: PrivacyEvent) => {
    const { kind, ...fields } = e;
    switch (e.kind) {
      case 'pseudonym_key.in_force':
        logger.info({ event: kind, ...fields }, e.reason === 'start' ? 'pseudonymisation key in force' : 'pseudonymisation key rotated: pseudonyms from now on are unlinkable to earlier ones');
        break;
      case 'pseudonym_key.reidentification':
        logger.warn({ event: kind, ...fields }, 'pseudonym re-identified with the pseudonymisation key');
        break;
      case 'retention.expired':
        logger.info({ event: kind, ...fields }, 'batches older than spool.maxAgeSeconds crypto-shredded');
        break;
    }
  };
}

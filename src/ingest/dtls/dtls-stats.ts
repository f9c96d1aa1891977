import type { AuthFailureReason } from '../trust/auth-failure.js';
import type { DatagramRejectReason } from './dtls-datagram.js';

/** What the DTLS server counts, and reports on /stats and to its 'authFailure' listeners. */

export type DtlsCounter =
  | 'datagrams' | 'datagramsTooLarge' | 'datagramsMalformed' | 'datagramsUnknownPeer'
  | 'helloVerifyRequests' | 'hellosDropped' | 'cookiesAccepted'
  | 'handshakesCompleted' | 'handshakesFailed' | 'handshakeTimeouts' | 'authRejected'
  | 'limitSessions' | 'limitSessionsPerSource' | 'limitHandshakeRate'
  | 'sessionsReplaced' | 'handshakesSuperseded' | 'sessionsClosed' | 'idleTimeouts' | 'records' | 'sessionErrors';

export interface DtlsServerStats {
  readonly counters: Readonly<Record<DtlsCounter, number>>;
  /** Malformed datagrams by what was wrong with them. */
  readonly malformed: Readonly<Partial<Record<DatagramRejectReason, number>>>;
  /** Failed handshakes and rejected identities by reason (RFC 7011 §11.6). */
  readonly authFailures: Readonly<Partial<Record<AuthFailureReason, number>>>;
  readonly sessionsOpen: number;
  readonly sessionsHandshaking: number;
}

export interface DtlsAuthFailure {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly reason: AuthFailureReason;
  /** OpenSSL's error text (no secrets: it names the failed check). */
  readonly detail: string;
}

export function emptyCounters(): Record<DtlsCounter, number> {
  return {
    datagrams: 0, datagramsTooLarge: 0, datagramsMalformed: 0, datagramsUnknownPeer: 0,
    helloVerifyRequests: 0, hellosDropped: 0, cookiesAccepted: 0,
    handshakesCompleted: 0, handshakesFailed: 0, handshakeTimeouts: 0, authRejected: 0,
    limitSessions: 0, limitSessionsPerSource: 0, limitHandshakeRate: 0,
    sessionsReplaced: 0, handshakesSuperseded: 0, sessionsClosed: 0, idleTimeouts: 0, records: 0, sessionErrors: 0,
  };
}

import type { DrainStats } from '../drain/drain.js';
import type { IngestChannelStats } from '../ingest-worker/ingest-channel.js';
import type { IngestWorkerStats } from '../ingest-worker/messages.js';
import type { DtlsListenerStats } from '../ingest/dtls/dtls-listener.js';
import type { TlsListenerStats } from '../ingest/tls/tls-listener.js';
import type { UdpListenerStats } from '../ingest/udp/udp-listener.js';
import type { BuildInfo } from './build-info.js';
import type { CertificateExpiry } from './certificate-expiry.js';
import type { PacketLossReason, RecordLossReason } from '../flow/loss.js';
import type { LossSample, LossTotals } from './loss-ledger.js';
import { family, type MetricFamily, type SampleSink } from './metrics.js';

/**
 * Every metric family the probe exports, declared once with its HELP text, and the mapping
 * from each module's typed stats() snapshot to samples. docs/monitoring.md lists them; the
 * dashboard and alert rules under deploy/monitoring use them (a test checks every name they
 * query exists here).
 *
 * Loss has one family per unit so the totals add up: `sealflow_records_lost_total{reason}`
 * for flow records and `sealflow_packets_lost_total{reason}` for datagrams/messages lost
 * before decoding, both the loss ledger's totals (loss-ledger.ts; reasons in src/flow/loss.ts).
 * lossSamples() says which module counter feeds which reason. A new source of loss adds a
 * reason, never a family.
 */

const SECONDS_PER_MS = 1 / 1000;
const sec = (ms: number | null | undefined): number | null => (ms === null || ms === undefined ? null : ms * SECONDS_PER_MS);

export const F = {
  buildInfo: family('build_info', 'gauge', 'Always 1; the labels say which sealflow, Node.js and OpenSSL this process runs', ['version', 'node', 'openssl']),
  certificateNotAfter: family('certificate_not_after_timestamp_seconds', 'gauge', 'Unix time after which the earliest-expiring certificate in the file named by the setting is no longer valid', ['setting']),

  recordsLost: family('records_lost_total', 'counter', 'Flow records that will never reach Fusion, by reason, since the loss ledger (spool.loss) was created (sequence_gap is what exporters\' sequence numbers say was lost before reaching sealflow)', ['reason']),
  packetsLost: family('packets_lost_total', 'counter', 'Datagrams and messages dropped before their records were known (decode_error: per error), by reason, since the loss ledger (spool.loss) was created', ['reason']),

  udpPackets: family('udp_received_datagrams_total', 'counter', 'Datagrams received on a UDP listener (accepted or not)', ['listener']),
  udpBytes: family('udp_received_bytes_total', 'counter', 'Payload bytes received on a UDP listener', ['listener']),
  udpRejected: family('udp_rejected_datagrams_total', 'counter', 'Datagrams from sources outside listeners.allowlist, discarded', ['listener']),
  udpBackpressured: family('udp_backpressured_datagrams_total', 'counter', 'Datagrams accepted while the ingest channel was above its high-water mark', ['listener']),
  udpSocketErrors: family('udp_socket_errors_total', 'counter', 'Errors reported by a UDP listener socket', ['listener']),
  udpReceiveBuffer: family('udp_receive_buffer_bytes', 'gauge', 'Receive buffer the kernel granted the socket (as read back; Linux reports twice the usable size)', ['listener']),

  exporterPackets: family('exporter_packets_total', 'counter', 'Packets (datagrams or IPFIX messages) decoded from an exporter', ['transport', 'exporter', 'identity']),
  exporterRecords: family('exporter_records_total', 'counter', 'Flow records decoded from an exporter', ['transport', 'exporter', 'identity']),
  exporterDecodeErrors: family('exporter_decode_errors_total', 'counter', 'Decode errors in packets from an exporter', ['transport', 'exporter', 'identity']),
  exporterSequenceLost: family('exporter_sequence_lost_total', 'counter', 'Loss the exporter\'s sequence numbers reveal (IPFIX: records; NetFlow v9, sFlow: packets; NetFlow v5: flows)', ['transport', 'exporter', 'identity']),
  exporterLastSeen: family('exporter_last_seen_timestamp_seconds', 'gauge', 'Unix time of the last packet decoded from an exporter', ['transport', 'exporter', 'identity'], 'max'),

  authFailures: family('auth_failures_total', 'counter', 'TLS/DTLS exporters refused by mutual authentication, by reason (RFC 7011 section 11)', ['transport', 'reason']),
  tlsConnectionsOpen: family('tls_connections_open', 'gauge', 'TCP connections open on the IPFIX-over-TLS listener (handshaking or established)'),
  tlsSessionsOpen: family('tls_sessions_open', 'gauge', 'Authenticated IPFIX-over-TLS sessions open'),
  tlsConnections: family('tls_connections_accepted_total', 'counter', 'TCP connections admitted by the TLS listener\'s limits'),
  tlsSessions: family('tls_sessions_authenticated_total', 'counter', 'TLS sessions that passed mutual authentication'),
  tlsMessages: family('tls_messages_received_total', 'counter', 'IPFIX messages received over TLS'),
  tlsBytes: family('tls_received_bytes_total', 'counter', 'Decrypted bytes received on authenticated TLS sessions'),
  tlsLimitHits: family('tls_limit_hits_total', 'counter', 'Connections or sessions cut by a listeners.tls limit', ['limit']),
  tlsFramingErrors: family('tls_framing_errors_total', 'counter', 'TLS sessions closed because the IPFIX message framing was broken', ['reason']),
  tlsBackpressure: family('tls_backpressure_pauses_total', 'counter', 'Times a TLS session was paused because the ingest channel was above its high-water mark'),
  trustReloads: family('trust_reloads_total', 'counter', 'Certificate/CRL/identity reloads of a secure listener (SIGHUP), by result', ['transport', 'result']),

  dtlsSessionsOpen: family('dtls_sessions_open', 'gauge', 'DTLS associations established'),
  dtlsSessionsHandshaking: family('dtls_sessions_handshaking', 'gauge', 'DTLS associations in their handshake'),
  dtlsDatagrams: family('dtls_received_datagrams_total', 'counter', 'Datagrams received on the DTLS listener'),
  dtlsDatagramsDropped: family('dtls_dropped_datagrams_total', 'counter', 'DTLS datagrams discarded before the handshake or record layer, by reason', ['reason']),
  dtlsHandshakes: family('dtls_handshakes_total', 'counter', 'DTLS handshakes finished, by result', ['result']),
  dtlsLimitHits: family('dtls_limit_hits_total', 'counter', 'DTLS handshakes refused by a listeners.dtls limit', ['limit']),
  dtlsMessages: family('dtls_messages_received_total', 'counter', 'IPFIX messages received over DTLS (one per record, RFC 7011 section 10.5)'),
  dtlsMessagesDropped: family('dtls_dropped_messages_total', 'counter', 'DTLS records that were not acceptable IPFIX messages, by reason', ['reason']),

  channelInFlight: family('ingest_channel_in_flight_bytes', 'gauge', 'Packet bytes handed to the ingest worker and not yet processed'),
  channelPackets: family('ingest_channel_packets_total', 'counter', 'Packets handed from the listeners to the ingest worker'),
  ingestOverloaded: family('ingest_overloaded', 'gauge', '1 while the ingest worker lags and stores batches uncompressed, else 0'),

  decodePackets: family('decode_packets_total', 'counter', 'Packets the decoder processed'),
  decodeRecords: family('decode_records_total', 'counter', 'Flow records decoded'),
  decodeFusedRecords: family('decode_fused_records_total', 'counter', 'Of the decoded records, those written straight into the open batch by the fused IPFIX/v9 path'),
  decodeErrors: family('decode_errors_total', 'counter', 'Malformed or undecodable input, by error code (catalogue in src/flow/errors.ts)', ['code']),
  templatesActive: family('templates_active', 'gauge', 'Templates currently known across all sessions'),
  templateEvents: family('template_events_total', 'counter', 'Template lifecycle events (learned, replaced, withdrawn, expired, withdrawal_ignored)', ['event']),
  decodeSessions: family('decode_sessions', 'gauge', 'Transport sessions with decoder state'),
  decodeSessionsEvicted: family('decode_sessions_evicted_total', 'counter', 'Decoder sessions dropped to stay within decode.maxSessions or the decoder state budget'),
  decodeStateBytes: family('decode_state_bytes', 'gauge', 'Bytes of decoder state charged to the budget (decode.maxStateBytes; an upper estimate of its memory)'),
  decodeStateEvictions: family('decode_state_evictions_total', 'counter', 'Decoder sessions evicted to make room, by reason (exporter = its own budget, total = the total budget, sessions = decode.maxSessions)', ['reason']),
  decodeStateRefusals: family('decode_state_refusals_total', 'counter', 'New decoder state (session, domain, template, sampler, held set) refused for lack of room, by reason', ['reason']),
  heldSets: family('decode_held_sets_total', 'counter', 'Data sets held for a template not known yet, by outcome (held, decoded, expired, unknown_template)', ['event']),
  pendingBytes: family('decode_pending_bytes', 'gauge', 'Bytes of data sets waiting for their template'),
  optionsRecords: family('decode_options_records_total', 'counter', 'Options data records decoded (sampling, interface names, uptime)'),
  samplerUnknown: family('decode_sampler_unknown_records_total', 'counter', 'Records naming a sampler no options data described (sampled at the domain default)'),
  sequenceReordered: family('decode_sequence_reordered_packets_total', 'counter', 'Packets slightly behind the expected sequence number (reordered or duplicated)'),

  filterRecords: family('filter_records_total', 'counter', 'Records through the flow filters, by action', ['action']),
  filterRuleMatches: family('filter_rule_matches_total', 'counter', 'Records a filter rule matched first (since the last reload)', ['rule', 'action']),

  batches: family('spool_appended_batches_total', 'counter', 'Batches the ingest worker committed to the spool'),
  spoolBatches: family('spool_batches', 'gauge', 'Batches waiting in the spool (not yet acknowledged by Fusion, parked ones included)'),
  spoolRecords: family('spool_records', 'gauge', 'Flow records waiting in the spool'),
  spoolBytes: family('spool_bytes', 'gauge', 'Sealed bytes stored in the spool (what spool.quotaBytes limits)'),
  spoolFileBytes: family('spool_file_bytes', 'gauge', 'Size of spool.db and its WAL on disk'),
  spoolQuotaUsed: family('spool_quota_used_ratio', 'gauge', 'Spool bytes over spool.quotaBytes (1 = full: new batches evict the oldest or are dropped)'),
  spoolOldestAge: family('spool_oldest_record_age_seconds', 'gauge', 'Age of the oldest unacknowledged batch in the spool (0 when empty)'),
  spoolLeased: family('spool_leased_batches', 'gauge', 'Batches out with the drain (leased, not yet acknowledged or released)'),
  spoolParked: family('spool_parked_batches', 'gauge', 'Batches Fusion rejected permanently, kept encrypted for inspection'),
  spoolKeyEpochs: family('spool_key_epochs', 'gauge', 'Data-key epochs held in the spool'),
  spoolKeysShredded: family('spool_keys_shredded_total', 'counter', 'Epoch data keys deleted (their batches unrecoverable)'),
  spoolQuarantined: family('spool_quarantined_batches_total', 'counter', 'Batches that failed authentication and were set aside'),
  spoolIoErrors: family('spool_io_errors_total', 'counter', 'SQLite I/O errors of the spool'),
  spoolCheckpoints: family('spool_wal_checkpoints_total', 'counter', 'WAL checkpoints by the thread that ran them and result', ['thread', 'result']),
  spoolCompressed: family('spool_batches_sealed_total', 'counter', 'Batches sealed, by where they were compressed (compressor thread, inline, or stored uncompressed under overload)', ['compression']),

  drainBatches: family('drain_delivered_batches_total', 'counter', 'Batches Fusion acknowledged (and the spool deleted)'),
  drainRecords: family('drain_delivered_records_total', 'counter', 'Flow records Fusion acknowledged'),
  drainBytes: family('drain_sent_bytes_total', 'counter', 'Request body bytes (compressed) of acknowledged uploads'),
  drainRawBytes: family('drain_sent_uncompressed_bytes_total', 'counter', 'Uncompressed size of acknowledged uploads'),
  drainRequests: family('drain_requests_total', 'counter', 'Upload requests sent to Fusion'),
  drainRetries: family('drain_retries_total', 'counter', 'Failed uploads that will be retried, by reason', ['reason']),
  drainParked: family('drain_parked_batches_total', 'counter', 'Batches Fusion rejected permanently (4xx), parked in the spool'),
  drainChunksSkipped: family('drain_chunks_skipped_total', 'counter', 'Chunks not resent on retry because Fusion already acknowledged them'),
  drainTokens: family('drain_auth_tokens_issued_total', 'counter', 'Access tokens obtained from Fusion'),
  drainAuthFailures: family('drain_auth_failures_total', 'counter', 'Failed Fusion token requests, by reason', ['reason']),
  drainInFlight: family('drain_in_flight_batches', 'gauge', 'Batches being uploaded now'),
  drainFailures: family('drain_consecutive_failures', 'gauge', 'Upload attempts failed in a row (0 after a success)'),
  drainLastSuccess: family('drain_last_success_timestamp_seconds', 'gauge', 'Unix time of the last acknowledged upload'),
  drainLastError: family('drain_last_error_timestamp_seconds', 'gauge', 'Unix time of the last failed upload'),
  drainGzipLevel: family('drain_gzip_level', 'gauge', 'gzip level in use (adapts down when compression is the bottleneck)'),
  drainDevices: family('drain_device_registrations_total', 'counter', 'Exporter device registrations at Fusion, by result', ['result']),

  pseudonymizeAddresses: family('pseudonymize_addresses_total', 'counter', 'Addresses in the fields privacy.pseudonymize lists, by result (pseudonymized, kept in clear, removed because no pseudonym could be placed)', ['result']),
  pseudonymizeCache: family('pseudonymize_cache_lookups_total', 'counter', 'Address to pseudonym cache lookups on the ingest worker, by result (a miss costs one Crypto-PAn computation)', ['result']),
  pseudonymizeRotations: family('pseudonymize_key_rotations_total', 'counter', 'Pseudonymisation key periods begun since start (privacy.pseudonymize.rotation)'),
  pseudonymizePeriodStart: family('pseudonymize_key_period_start_timestamp_seconds', 'gauge', 'Unix time at which the pseudonymisation key in force began (0: a key that never rotates)'),
} as const;

/** Everything the collector reads; null where the module is not running. */
export interface ProbeSnapshot {
  readonly build: BuildInfo;
  readonly certificates: readonly CertificateExpiry[];
  readonly worker: IngestWorkerStats | null;
  readonly channel: IngestChannelStats | null;
  readonly udp: UdpListenerStats | null;
  readonly tls: TlsListenerStats | null;
  readonly dtls: DtlsListenerStats | null;
  readonly drain: DrainStats | null;
  /** Records of spooled batches the drain's spool connection set aside because they failed authentication. */
  readonly quarantinedRecords: number | null;
  /** The loss ledger's totals (null before it is open). */
  readonly loss: LossTotals | null;
}

/** One sample per entry of a count map (reason → count), the key as the label `label`. */
function each(emit: SampleSink, fam: MetricFamily, label: string, counts: Readonly<Record<string, number | null | undefined>>): void {
  for (const [k, v] of Object.entries(counts)) emit(fam, v, { [label]: k });
}

export function collectProbeMetrics(s: ProbeSnapshot, emit: SampleSink): void {
  emit(F.buildInfo, 1, { version: s.build.version, node: s.build.node, openssl: s.build.openssl });
  for (const c of s.certificates) emit(F.certificateNotAfter, c.notAfterMs / 1000, { setting: c.setting });
  collectLoss(s, emit);
  if (s.udp !== null) collectUdp(s.udp, emit);
  if (s.tls !== null) collectTls(s.tls, emit);
  if (s.dtls !== null) collectDtls(s.dtls, emit);
  if (s.channel !== null) {
    emit(F.channelInFlight, s.channel.inFlightBytes);
    emit(F.channelPackets, s.channel.packetsPosted);
  }
  if (s.worker !== null) collectWorker(s.worker, emit);
  if (s.drain !== null) collectDrain(s.drain, emit);
}

/**
 * The module counters that feed the loss ledger, as samples: each a process-lifetime counter
 * (the ledger adds what it gained since its last reading), null where the module has no figure.
 */
export function lossSamples(s: Omit<ProbeSnapshot, 'loss'>): LossSample[] {
  const out: LossSample[] = [];
  const w = s.worker;
  if (w !== null) {
    for (const [reason, value] of Object.entries(w.loss.records) as [RecordLossReason, number][]) out.push({ unit: 'records', reason, source: 'ingest-worker', value });
    for (const [reason, value] of Object.entries(w.loss.packets) as [PacketLossReason, number][]) out.push({ unit: 'packets', reason, source: 'ingest-worker', value });
  }
  if (s.drain !== null) out.push({ unit: 'records', reason: 'parked', source: 'drain', value: s.drain.parkedRecords });
  out.push({ unit: 'records', reason: 'integrity', source: 'drain-spool', value: s.quarantinedRecords });
  if (s.channel !== null) out.push({ unit: 'packets', reason: 'channel_full', source: 'ingest-channel', value: s.channel.droppedPackets });
  for (const l of s.udp?.listeners ?? []) {
    out.push({ unit: 'packets', reason: 'kernel_drop', source: `udp:${l.name}`, value: l.kernelDrops });
    out.push({ unit: 'packets', reason: 'oversize', source: `udp:${l.name}`, value: l.oversize });
  }
  if (s.dtls !== null) out.push({ unit: 'packets', reason: 'decode_error', source: 'dtls', value: s.dtls.messagesNotIpfix });
  return out;
}

function collectLoss(s: ProbeSnapshot, emit: SampleSink): void {
  if (s.loss === null) return;
  each(emit, F.recordsLost, 'reason', s.loss.records);
  each(emit, F.packetsLost, 'reason', s.loss.packets);
}

function collectUdp(u: UdpListenerStats, emit: SampleSink): void {
  for (const l of u.listeners) {
    const listener = { listener: l.name };
    emit(F.udpPackets, l.packets, listener);
    emit(F.udpBytes, l.bytes, listener);
    emit(F.udpRejected, l.rejected, listener);
    emit(F.udpBackpressured, l.backpressured, listener);
    emit(F.udpSocketErrors, l.socketErrors, listener);
    emit(F.udpReceiveBuffer, l.recvBufferGranted, listener);
  }
}

function collectTls(t: TlsListenerStats, emit: SampleSink): void {
  emit(F.tlsConnectionsOpen, t.connectionsOpen);
  emit(F.tlsSessionsOpen, t.sessionsOpen);
  emit(F.tlsConnections, t.connectionsAccepted);
  emit(F.tlsSessions, t.sessionsAuthenticated);
  emit(F.tlsMessages, t.messages);
  emit(F.tlsBytes, t.bytes);
  emit(F.tlsBackpressure, t.backpressurePauses);
  for (const [reason, v] of Object.entries(t.authFailures)) emit(F.authFailures, v, { transport: 'tls', reason });
  each(emit, F.tlsLimitHits, 'limit', t.limitHits);
  each(emit, F.tlsFramingErrors, 'reason', t.framingErrors);
  emit(F.trustReloads, t.reloads, { transport: 'tls', result: 'ok' });
  emit(F.trustReloads, t.reloadFailures, { transport: 'tls', result: 'failed' });
}

function collectDtls(d: DtlsListenerStats, emit: SampleSink): void {
  const c = d.counters;
  emit(F.dtlsSessionsOpen, d.sessionsOpen);
  emit(F.dtlsSessionsHandshaking, d.sessionsHandshaking);
  emit(F.dtlsDatagrams, c.datagrams);
  each(emit, F.dtlsDatagramsDropped, 'reason', { too_large: c.datagramsTooLarge, malformed: c.datagramsMalformed, unknown_peer: c.datagramsUnknownPeer, hello_dropped: c.hellosDropped });
  each(emit, F.dtlsHandshakes, 'result', { completed: c.handshakesCompleted, failed: c.handshakesFailed, timeout: c.handshakeTimeouts });
  each(emit, F.dtlsLimitHits, 'limit', { max_sessions: c.limitSessions, max_sessions_per_source: c.limitSessionsPerSource, handshake_rate: c.limitHandshakeRate });
  emit(F.dtlsMessages, d.messages);
  each(emit, F.dtlsMessagesDropped, 'reason', { domain_not_bound: d.messagesDomainRejected, not_ipfix: d.messagesNotIpfix });
  for (const [reason, v] of Object.entries(d.rejected)) emit(F.authFailures, v, { transport: 'dtls', reason });
}

function collectWorker(w: IngestWorkerStats, emit: SampleSink): void {
  for (const e of w.exporters) {
    const labels = { transport: e.transport, exporter: e.exporter, identity: e.identity ?? '' };
    emit(F.exporterPackets, e.packets, labels);
    emit(F.exporterRecords, e.records, labels);
    emit(F.exporterDecodeErrors, e.decodeErrors, labels);
    emit(F.exporterSequenceLost, e.sequenceLost, labels);
    emit(F.exporterLastSeen, e.lastSeenMs / 1000, labels);
  }
  emit(F.ingestOverloaded, w.compression.overloaded ? 1 : 0);
  const d = w.decode;
  emit(F.decodePackets, d.packets);
  emit(F.decodeRecords, d.records);
  emit(F.decodeFusedRecords, d.fusedRecords);
  each(emit, F.decodeErrors, 'code', d.errorsByCode);
  emit(F.templatesActive, d.templatesLive);
  each(emit, F.templateEvents, 'event', { learned: d.templatesLearned, replaced: d.templatesReplaced, withdrawn: d.templatesWithdrawn, expired: d.templatesExpired, withdrawal_ignored: d.withdrawalsIgnored });
  emit(F.decodeSessions, d.sessions);
  emit(F.decodeSessionsEvicted, d.sessionsEvicted);
  emit(F.decodeStateBytes, d.stateBytes);
  each(emit, F.decodeStateEvictions, 'reason', d.stateBudget.evictions);
  each(emit, F.decodeStateRefusals, 'reason', d.stateBudget.refusals);
  each(emit, F.heldSets, 'event', { held: d.pendingHeld, decoded: d.pendingDecoded, expired: d.pendingExpired, unknown_template: d.unknownTemplateSets });
  emit(F.pendingBytes, d.pendingBytes);
  emit(F.optionsRecords, d.optionsRecords);
  emit(F.samplerUnknown, d.samplerUnknown);
  emit(F.sequenceReordered, d.sequenceReordered);

  each(emit, F.filterRecords, 'action', { accept: w.filter.accepted, drop: w.filter.dropped });
  for (const r of w.filter.rules) emit(F.filterRuleMatches, r.matched, { rule: r.label, action: r.action });
  emit(F.filterRuleMatches, w.filter.defaultMatched, { rule: 'default', action: w.filter.defaultAction });

  emit(F.batches, w.batcher.batches);
  const sp = w.spool;
  emit(F.spoolBatches, sp.batches);
  emit(F.spoolRecords, sp.records);
  emit(F.spoolBytes, sp.bytes);
  emit(F.spoolFileBytes, sp.fileBytes);
  emit(F.spoolQuotaUsed, sp.quotaUsed);
  emit(F.spoolOldestAge, sec(sp.oldestAgeMs) ?? 0);
  emit(F.spoolLeased, sp.leased);
  emit(F.spoolParked, sp.parkedBatches);
  emit(F.spoolKeyEpochs, sp.epochs);
  emit(F.spoolKeysShredded, sp.shreddedEpochs);
  emit(F.spoolQuarantined, sp.quarantined);
  emit(F.spoolIoErrors, sp.ioErrors);
  const wal = w.walCheckpointer;
  if (wal !== null) {
    emit(F.spoolCheckpoints, wal.checkpoints, { thread: 'background', result: 'complete' });
    emit(F.spoolCheckpoints, wal.partial, { thread: 'background', result: 'partial' });
    emit(F.spoolCheckpoints, wal.failures, { thread: 'background', result: 'failed' });
  }
  emit(F.spoolCheckpoints, sp.inlineCheckpoints, { thread: 'ingest', result: 'complete' });
  emit(F.spoolCheckpoints, sp.busyCheckpoints, { thread: 'ingest', result: 'busy' });
  each(emit, F.spoolCompressed, 'compression', { compressor_thread: w.compression.offThread, inline: w.compression.inline, none: w.compression.bypassed });
  const pz = w.pseudonymize;
  if (pz !== null) {
    each(emit, F.pseudonymizeAddresses, 'result', { pseudonymized: pz.pseudonymized, kept: pz.kept, removed: pz.unmappable });
    each(emit, F.pseudonymizeCache, 'result', { hit: pz.cacheHits, miss: pz.cacheMisses });
    emit(F.pseudonymizeRotations, pz.rotations);
    emit(F.pseudonymizePeriodStart, pz.periodStartS);
  }
}

function collectDrain(d: DrainStats, emit: SampleSink): void {
  emit(F.drainBatches, d.deliveredBatches);
  emit(F.drainRecords, d.deliveredRecords);
  emit(F.drainBytes, d.deliveredBytes);
  emit(F.drainRawBytes, d.deliveredRawBytes);
  emit(F.drainRequests, d.requests);
  each(emit, F.drainRetries, 'reason', d.retries);
  emit(F.drainParked, d.parkedBatches);
  emit(F.drainChunksSkipped, d.chunksSkipped);
  emit(F.drainTokens, d.auth.tokensIssued);
  each(emit, F.drainAuthFailures, 'reason', d.auth.failures);
  emit(F.drainInFlight, d.inFlightBatches);
  emit(F.drainFailures, d.consecutiveFailures);
  emit(F.drainLastSuccess, sec(d.lastSuccessAtMs));
  emit(F.drainLastError, sec(d.lastErrorAtMs));
  emit(F.drainGzipLevel, d.gzipLevel);
  emit(F.drainDevices, d.devicesRegistered, { result: 'ok' });
  emit(F.drainDevices, d.deviceRegistrationFailures, { result: 'failed' });
}

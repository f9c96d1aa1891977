/**
 * The spool database schema (SQLite, WAL). Only ciphertext and non-identifying metadata are
 * stored: ids, sizes, record counts, minute-resolution times, key epochs, tags, nonces and
 * KEK fingerprints. Flow data exists only inside `payloads.data` (sealed) and keys only
 * wrapped by the KEK. The sealed bytes live in their own table so that metadata updates
 * (lease attempts, park, ack) never rewrite a batch's large record.
 *
 * batches.state: 0 = ready, 1 = parked (excluded from lease; reason in park_reason),
 *                2 = acknowledged out of order (a tombstone: payload deleted, row kept only so
 *                    the hash chain stays contiguous until everything before it is gone; its
 *                    ack_mac, keyed from the spool key, proves the ack was ours).
 * meta holds one row: spool identity, the wrapped spool key, the chain anchor (the last batch
 * removed from the front of the chain, MAC'd) and counters kept exact by triggers.
 */
export const SPOOL_SCHEMA_VERSION = 1;

export const BATCH_STATE_READY = 0;
export const BATCH_STATE_PARKED = 1;
export const BATCH_STATE_ACKED = 2;

export const SCHEMA_SQL = `
CREATE TABLE meta (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  schema_version INTEGER NOT NULL,
  spool_id BLOB NOT NULL,
  kek_fp BLOB NOT NULL,
  spool_key BLOB NOT NULL,
  created_min INTEGER NOT NULL,
  anchor_id INTEGER NOT NULL,
  anchor_tag BLOB NOT NULL,
  anchor_mac BLOB NOT NULL,
  live_batches INTEGER NOT NULL DEFAULT 0,
  live_records INTEGER NOT NULL DEFAULT 0,
  live_bytes INTEGER NOT NULL DEFAULT 0,
  evicted_batches INTEGER NOT NULL DEFAULT 0,
  evicted_records INTEGER NOT NULL DEFAULT 0,
  dropped_batches INTEGER NOT NULL DEFAULT 0, -- unused: drops are in the loss ledger (spool.loss)
  dropped_records INTEGER NOT NULL DEFAULT 0, -- unused, as dropped_batches
  shredded_epochs INTEGER NOT NULL DEFAULT 0,
  hwm_seen INTEGER NOT NULL DEFAULT 0,
  rollback_expected INTEGER,
  rollback_found INTEGER,
  expired_batches INTEGER NOT NULL DEFAULT 0,
  expired_records INTEGER NOT NULL DEFAULT 0,
  max_age_s INTEGER
);
CREATE TABLE epochs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kek_fp BLOB NOT NULL,
  wrapped BLOB NOT NULL,
  created_min INTEGER NOT NULL,
  ends_min INTEGER NOT NULL
);
CREATE TABLE batches (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  format INTEGER NOT NULL,
  epoch INTEGER NOT NULL,
  state INTEGER NOT NULL DEFAULT 0,
  records INTEGER NOT NULL,
  bytes INTEGER NOT NULL,
  created_min INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  prev_id INTEGER NOT NULL,
  park_reason TEXT,
  ack_mac BLOB,
  nonce BLOB NOT NULL,
  tag BLOB NOT NULL
);
CREATE TABLE payloads (
  id INTEGER PRIMARY KEY,
  data BLOB NOT NULL
);
CREATE INDEX batches_state ON batches (state, id);
CREATE INDEX batches_epoch ON batches (epoch, state);
CREATE TABLE decoder_state (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  blob BLOB NOT NULL
);
CREATE TRIGGER batches_ins AFTER INSERT ON batches WHEN NEW.state != 2 BEGIN
  UPDATE meta SET live_batches = live_batches + 1, live_records = live_records + NEW.records, live_bytes = live_bytes + NEW.bytes WHERE id = 1;
END;
CREATE TRIGGER batches_del AFTER DELETE ON batches WHEN OLD.state != 2 BEGIN
  UPDATE meta SET live_batches = live_batches - 1, live_records = live_records - OLD.records, live_bytes = live_bytes - OLD.bytes WHERE id = 1;
END;
CREATE TRIGGER batches_ack AFTER UPDATE OF state ON batches WHEN NEW.state = 2 AND OLD.state != 2 BEGIN
  UPDATE meta SET live_batches = live_batches - 1, live_records = live_records - OLD.records, live_bytes = live_bytes - OLD.bytes WHERE id = 1;
END;
`;

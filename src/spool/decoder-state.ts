import type { Keyring } from './keyring.js';
import { openBlob, sealBlob } from './spool-crypto.js';
import type { SpoolStore } from './store.js';

/**
 * The decoder's state (templates, sampling, uptime anchors: exporter metadata, no flow data)
 * kept in the spool database, sealed with a key derived from the spool key, so a restarted
 * probe decodes UDP data at once. One blob; each save replaces it.
 */
export class DecoderStateStore {
  constructor(
    private readonly store: SpoolStore,
    private readonly keyring: Keyring,
  ) {}

  /** Stores the decoder state encrypted; replaces the previous one. */
  save(state: Uint8Array): void {
    this.store.assertOpen();
    const blob = sealBlob(this.keyring.stateKey, state, this.ad());
    this.store.q('INSERT OR REPLACE INTO decoder_state (id, blob) VALUES (1, ?)').run(blob);
  }

  /** The last saved decoder state, or null (none saved, or it fails authentication — logged). */
  load(): Uint8Array | null {
    this.store.assertOpen();
    const row = this.store.q('SELECT blob FROM decoder_state WHERE id = 1').get() as { blob: Uint8Array } | undefined;
    if (row === undefined) return null;
    const state = openBlob(this.keyring.stateKey, row.blob, this.ad());
    if (state === null) this.store.logger.error({ event: 'spool.decoder_state_invalid' }, 'saved decoder state fails authentication; starting without it');
    return state;
  }

  private ad(): Uint8Array {
    return Buffer.concat([Buffer.from('sealflow decoder state\0'), this.keyring.spoolId]);
  }
}

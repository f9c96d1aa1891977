import type { DrainRuntimeExtras } from '../drain/drain-config.js';
import type { FusionCredentials } from '../drain/netosecret.js';
import { createDevCertificate } from './dev-certificate.js';
import { startFusionSim, type FusionSim } from './fusion-sim.js';

/**
 * The stand-in as the daemon's embedded default (`npm start`, drain.fusion.embeddedSim): a
 * loopback HTTPS server with a fresh self-signed certificate and netosecret, plus what the
 * drain needs to reach it (credentials, the upload URL and the certificate to trust). Records
 * are validated and counted, not kept, so a long-running demo does not grow in memory.
 */
export interface EmbeddedFusionSim {
  readonly sim: FusionSim;
  readonly credentials: FusionCredentials;
  /** Pass to drainSettingsFromConfig(config.drain, extras). */
  readonly extras: DrainRuntimeExtras;
}

export async function startEmbeddedFusionSim(options: { readonly port?: number; readonly onRecord?: (r: Record<string, unknown>) => void } = {}): Promise<EmbeddedFusionSim> {
  const cert = await createDevCertificate();
  const sim = await startFusionSim({
    host: '127.0.0.1',
    port: options.port ?? 0,
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    keepRecords: false,
    ...(options.onRecord === undefined ? {} : { onRecord: options.onRecord }),
  });
  return { sim, credentials: sim.credentials, extras: { caPem: cert.certPem, uploadUrl: sim.uploadUrl } };
}

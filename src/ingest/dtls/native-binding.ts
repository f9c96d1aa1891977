import { existsSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { IngestError, IngestErrorCode } from '../../flow/errors.js';

/**
 * Typed view of the N-API addon in ./native (dtls_addon.cc). The addon is built by node-gyp
 * against node's own headers and resolves its OpenSSL symbols against the running node
 * binary; this module loads it eagerly (RTLD_NOW) so a node without exported OpenSSL fails
 * here with one clear error instead of crashing at the first handshake.
 */

/** Session states as the addon reports them. */
export const NativeState = { Handshake: 0, Open: 1, Closed: 2, Failed: 3 } as const;
export type NativeState = (typeof NativeState)[keyof typeof NativeState];

export interface NativeContextOptions {
  readonly server: boolean;
  /** PEM certificate, then optional intermediates. */
  readonly cert?: Buffer;
  /** PEM private key (unencrypted). Read by the caller from a file; never logged. */
  readonly key?: Buffer;
  /** PEM trust anchors (one or more certificates). */
  readonly ca?: Buffer;
  /** PEM CRLs; when present, leaf certificates are checked for revocation. */
  readonly crl?: Buffer;
  readonly ciphers?: string;
}

export interface NativeContext {
  destroy(): void;
}

export interface NativeResult {
  /** Datagrams to send to the peer, each one UDP payload. */
  readonly out: Buffer[];
  /** Decrypted application records (one per DTLS record). */
  readonly data: Buffer[];
  readonly state: NativeState;
  /** True on the call that completed the handshake. */
  readonly opened: boolean;
  readonly errorLib?: number;
  readonly errorReason?: number;
  readonly errorText?: string;
  /** X509_V_* result of the peer chain verification (0 = ok or not reached). */
  readonly verifyResult: number;
  readonly alertSent: number;
  readonly alertReceived: number;
}

export interface NativeSession {
  feed(datagram: Buffer): NativeResult;
  /**
   * Runs the handshake without new input: the client's first flight, or the server's reply to
   * the ClientHello that the Listener buffered when it accepted the cookie.
   */
  advance(): NativeResult;
  write(record: Buffer): Buffer[];
  /** Milliseconds until the handshake retransmission timer fires, or -1 when none runs. */
  timeoutMs(): number;
  handleTimeout(): NativeResult;
  shutdown(): Buffer[];
  peerCertificate(): Buffer | null;
  info(): { state: NativeState; protocol?: string; cipher?: string };
  /** Explicit nonce + AEAD tag bytes per protected record with the negotiated cipher; -1 before one is set. */
  recordOverhead(): number;
  destroy(): void;
}

export const ListenKind = { Dropped: 0, VerifyRequest: 1, Accepted: 2 } as const;
export type ListenKind = (typeof ListenKind)[keyof typeof ListenKind];

export interface ListenResult {
  readonly kind: ListenKind;
  readonly out: Buffer[];
  readonly session?: NativeSession;
}

export interface NativeListener {
  /** 32 random bytes; the previous secret stays valid until the next rotation. */
  setCookieSecret(secret: Buffer): void;
  setContext(ctx: NativeContext): void;
  handle(datagram: Buffer, peerKey: string): ListenResult;
  destroy(): void;
}

export interface NativeAddon {
  readonly Context: new (options: NativeContextOptions) => NativeContext;
  readonly Listener: new (ctx: NativeContext, mtu: number) => NativeListener;
  readonly Session: new (ctx: NativeContext, peerKey: string, mtu: number) => NativeSession;
  readonly opensslVersion: string;
  readonly reasons: Readonly<Record<
    'peerDidNotReturnCertificate' | 'certificateVerifyFailed' | 'unsupportedProtocol' | 'versionTooLow' |
    'wrongVersionNumber' | 'noSharedCipher' | 'readTimeoutExpired', number>>;
  readonly verifyErrors: Readonly<Record<
    'ok' | 'certHasExpired' | 'certNotYetValid' | 'certRevoked' | 'unableToGetIssuerCertLocally' |
    'unableToGetIssuerCert' | 'depthZeroSelfSigned' | 'selfSignedInChain' | 'unableToVerifyLeafSignature' |
    'certSignatureFailure' | 'unableToGetCrl' | 'crlHasExpired' | 'invalidPurpose', number>>;
}

const ADDON_FILE = 'sealflow_dtls.node';
/** Where node-gyp puts the addon, relative to this module in src/ (tsx) and in dist/ (tsc). */
const CANDIDATES = [
  `./native/build/Release/${ADDON_FILE}`,
  `../../../src/ingest/dtls/native/build/Release/${ADDON_FILE}`,
] as const;

let cached: NativeAddon | undefined;

/** Loads the addon once. Throws IngestError ERR_INGEST_NATIVE with the fix in the message. */
export function loadDtlsAddon(): NativeAddon {
  if (cached !== undefined) return cached;
  const path = CANDIDATES.map((c) => fileURLToPath(new URL(c, import.meta.url))).find((p) => existsSync(p));
  if (path === undefined) {
    throw new IngestError(IngestErrorCode.Native,
      'DTLS addon is not built: run `npm run build:native` (node-gyp rebuild -C src/ingest/dtls/native) ' +
      'with the node headers installed, or disable the DTLS listener', { addon: ADDON_FILE });
  }
  cached = loadDtlsAddonFrom(path);
  return cached;
}

/**
 * Loads an addon file with every symbol resolved now (RTLD_NOW), so a node binary that does
 * not export OpenSSL fails here, naming the cause, instead of at the first handshake.
 */
export function loadDtlsAddonFrom(path: string): NativeAddon {
  const mod: { exports: unknown } = { exports: {} };
  try {
    process.dlopen(mod, path, osConstants.dlopen.RTLD_NOW);
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    const missingSymbol = /undefined symbol/i.test(text);
    throw new IngestError(IngestErrorCode.Native,
      missingSymbol
        ? `DTLS addon cannot load: this node binary does not export OpenSSL (${text}); ` +
          'use an official or distribution build of Node.js that exports its OpenSSL symbols, or disable the DTLS listener'
        : `DTLS addon cannot load (${text}); rebuild it with \`npm run build:native\` for this node version`,
      { addon: path }, { cause: err });
  }
  return mod.exports as NativeAddon;
}

import type { X509Certificate } from 'node:crypto';
import { PrefixSet, parsePrefix } from '../../flow/cidr.js';
import { ConfigError, ConfigErrorCode } from '../../flow/errors.js';
import { normaliseAddress } from '../../flow/ip.js';
import type { AuthFailureReason } from './auth-failure.js';
import { validityAt } from './trust-material.js';

/**
 * Who may export to a secure listener, and from where. RFC 7011 §11.3: the collector checks
 * the exporter's identity from its certificate, by the DNS-ID (subjectAltName dNSName) and,
 * only when the certificate has no dNSName at all, by the subject Common Name (RFC 6125
 * §6.4.4). Matching is exact and case-insensitive; wildcards are neither configurable nor
 * honoured in certificates (a presented "*.example.net" is just a name that matches nothing).
 *
 * Chain and revocation checks are OpenSSL's (node:tls, the DTLS addon) against the same CA
 * bundle and CRLs: callers pass only certificates that chain verification accepted, and this
 * policy adds the identity, validity, extended key usage and binding checks on top.
 */
export interface ExporterIdentitySettings {
  /** The exporter's certificate name (DNS-ID, or CN of a certificate without DNS-IDs). */
  readonly name: string;
  /** Source addresses/prefixes the exporter may connect from. Absent: any source. */
  readonly sources?: readonly string[];
  /** Observation domain IDs the exporter may claim. Absent: any. */
  readonly observationDomainIds?: readonly number[];
}

export type ExporterCheck = { readonly ok: true; readonly identity: string } | { readonly ok: false; readonly reason: AuthFailureReason };

interface Entry {
  readonly name: string;
  readonly sources: PrefixSet | null;
  readonly domains: ReadonlySet<number> | null;
}

/** id-kp-clientAuth (RFC 5280 §4.2.1.12). */
const EKU_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
/** anyExtendedKeyUsage (RFC 5280 §4.2.1.12). */
const EKU_ANY = '2.5.29.37.0';
/** RFC 1035 §2.3.4: 253 characters in text form. */
const MAX_DNS_NAME_LENGTH = 253;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const MAX_OBSERVATION_DOMAIN_ID = 0xffffffff;
const IDENTITY_KEYS: ReadonlySet<string> = new Set(['name', 'sources', 'observationDomainIds']);

/** Whether `name` (canonical form) is a DNS host name usable as an exporter identity: no wildcard, ≤ 253 characters. */
export function isExporterName(name: string): boolean {
  return name.length <= MAX_DNS_NAME_LENGTH && DNS_NAME.test(name);
}

/** Lower-cases and drops one trailing root dot, the canonical form names are compared in. */
export function canonicalName(name: string): string {
  const lower = name.trim().toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/**
 * Splits node's X509Certificate.subjectAltName ("DNS:a, IP Address:1.2.3.4, DNS:\"b,c\"")
 * into entries. Node JSON-quotes values that contain separators, so quoted runs are kept whole.
 */
function splitAltNames(text: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] ?? '';
    if (ch === '"' && text[i - 1] !== '\\') quoted = !quoted;
    if (!quoted && ch === ',' && text[i + 1] === ' ') {
      out.push(cur);
      cur = '';
      i++;
      continue;
    }
    cur += ch;
  }
  if (cur !== '') out.push(cur);
  return out;
}

function unquote(v: string): string {
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) {
    try {
      const parsed: unknown = JSON.parse(v);
      if (typeof parsed === 'string') return parsed;
    } catch {
      return v;
    }
  }
  return v;
}

/**
 * The reference identities a certificate presents for exporter matching: every dNSName SAN,
 * or, if there is none, the most specific (last) subject CN (RFC 6125 §6.4.4). Canonical form.
 */
export function presentedIdentities(cert: X509Certificate): string[] {
  const dns: string[] = [];
  for (const entry of splitAltNames(cert.subjectAltName ?? '')) {
    if (entry.startsWith('DNS:')) dns.push(canonicalName(unquote(entry.slice(4))));
  }
  if (dns.length > 0) return dns;
  let cn: string | null = null;
  for (const line of cert.subject.split('\n')) {
    if (line.startsWith('CN=')) cn = unquote(line.slice(3));
  }
  return cn === null || cn === '' ? [] : [canonicalName(cn)];
}

export class ExporterPolicy {
  private readonly entries: ReadonlyMap<string, Entry>;

  private constructor(entries: ReadonlyMap<string, Entry>) {
    this.entries = entries;
  }

  /**
   * Validates the allowlist. `setting` is its configuration path (e.g. 'listeners.tls.exporters');
   * a bad entry throws ConfigError naming `<setting>[i].name|sources[j]|observationDomainIds[j]`.
   * An empty allowlist is an error: a mutually authenticated listener that accepts nobody is
   * a misconfiguration, and accepting everybody is not on offer.
   */
  static fromSettings(settings: readonly ExporterIdentitySettings[], setting: string): ExporterPolicy {
    if (settings.length === 0) {
      throw new ConfigError(ConfigErrorCode.Invalid, setting, `${setting}: no exporter identities; list the certificate names (DNS-IDs) of the exporters allowed to connect`);
    }
    const entries = new Map<string, Entry>();
    settings.forEach((s, i) => {
      const at = `${setting}[${i}]`;
      // Reject unknown keys: a misspelt binding (say `observationDomains`) silently ignored
      // would leave a stolen certificate free to claim any domain.
      for (const key of Object.keys(s)) {
        if (!IDENTITY_KEYS.has(key)) {
          throw new ConfigError(ConfigErrorCode.Invalid, `${at}.${key}`, `${at}.${key}: unknown key; an exporter identity has ${[...IDENTITY_KEYS].join(', ')}`);
        }
      }
      const name = canonicalName(s.name);
      if (name.includes('*')) {
        throw new ConfigError(ConfigErrorCode.Invalid, `${at}.name`, `${at}.name: ${JSON.stringify(s.name)} contains a wildcard; list every exporter name exactly (RFC 7011 §11.3)`);
      }
      if (!isExporterName(name)) {
        throw new ConfigError(ConfigErrorCode.Invalid, `${at}.name`, `${at}.name: ${JSON.stringify(s.name)} is not a DNS name; use the exporter certificate's subjectAltName dNSName (or CN)`);
      }
      if (entries.has(name)) {
        throw new ConfigError(ConfigErrorCode.Invalid, `${at}.name`, `${at}.name: ${JSON.stringify(s.name)} is listed twice; merge the entries`);
      }
      let sources: PrefixSet | null = null;
      if (s.sources !== undefined) {
        if (s.sources.length === 0) {
          throw new ConfigError(ConfigErrorCode.Invalid, `${at}.sources`, `${at}.sources: empty list; remove the key to allow any source, or list the exporter's addresses/prefixes`);
        }
        s.sources.forEach((src, j) => {
          if (parsePrefix(src) === null) {
            throw new ConfigError(ConfigErrorCode.Invalid, `${at}.sources[${j}]`, `${at}.sources[${j}]: ${JSON.stringify(src)} is not an address or CIDR prefix (e.g. 192.0.2.0/24, 2001:db8::/48)`);
          }
        });
        sources = PrefixSet.parse(s.sources);
      }
      let domains: Set<number> | null = null;
      if (s.observationDomainIds !== undefined) {
        if (s.observationDomainIds.length === 0) {
          throw new ConfigError(ConfigErrorCode.Invalid, `${at}.observationDomainIds`, `${at}.observationDomainIds: empty list; remove the key to allow any domain, or list the IDs`);
        }
        s.observationDomainIds.forEach((d, j) => {
          if (!Number.isInteger(d) || d < 0 || d > MAX_OBSERVATION_DOMAIN_ID) {
            throw new ConfigError(ConfigErrorCode.Invalid, `${at}.observationDomainIds[${j}]`, `${at}.observationDomainIds[${j}]: ${String(d)} is not an unsigned 32-bit observation domain ID`);
          }
        });
        domains = new Set(s.observationDomainIds);
      }
      entries.set(name, { name, sources, domains });
    });
    return new ExporterPolicy(entries);
  }

  /** The allowed identities, canonical form. */
  names(): string[] {
    return [...this.entries.keys()];
  }

  /**
   * Decides whether a chain-verified peer certificate may export from `sourceAddress`
   * (textual; IPv4-mapped IPv6 is unmapped here). `nowMs` defaults to the wall clock.
   */
  checkExporter(cert: X509Certificate | null | undefined, sourceAddress: string, nowMs: number = Date.now()): ExporterCheck {
    if (cert === null || cert === undefined) return { ok: false, reason: 'no_certificate' };
    const validity = validityAt(cert, nowMs);
    if (validity !== 'ok') return { ok: false, reason: validity };
    const eku = cert.keyUsage as string[] | undefined;
    if (eku !== undefined && eku.length > 0 && !eku.includes(EKU_CLIENT_AUTH) && !eku.includes(EKU_ANY)) {
      return { ok: false, reason: 'bad_certificate' };
    }
    const source = normaliseAddress(sourceAddress);
    let nameMatched = false;
    for (const name of presentedIdentities(cert)) {
      const entry = this.entries.get(name);
      if (entry === undefined) continue;
      nameMatched = true;
      if (entry.sources === null || entry.sources.containsText(source)) return { ok: true, identity: entry.name };
    }
    return { ok: false, reason: nameMatched ? 'source_not_bound' : 'name_not_allowed' };
  }

  /** Whether `identity` (as returned by checkExporter) may send observation domain `observationDomainId`. */
  domainAllowed(identity: string, observationDomainId: number): boolean {
    const entry = this.entries.get(identity);
    if (entry === undefined) return false;
    return entry.domains === null || entry.domains.has(observationDomainId);
  }
}

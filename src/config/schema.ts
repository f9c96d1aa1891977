import { z } from 'zod';

/**
 * The one configuration schema: every setting sealflow reads, its type, bounds, default and
 * documentation. `describe()` text is the documentation: `sealflow config schema` turns this
 * schema into a JSON Schema for editors and src/config/settings-table.ts turns it into the
 * README table, so a setting documented anywhere else is a bug.
 *
 * Layering (src/config/load.ts): schema defaults (or the embedded `npm start` defaults) ←
 * config file ← SEALFLOW_* environment variables ← command-line flags. Every object is strict:
 * an unknown key is an error, never silently ignored (a typo must not disable a limit).
 *
 * Secrets (spool KEKs, the Fusion netosecret, the admin token) are never values in this
 * schema, only *sources* (env var name, file path or command); src/config/secrets.ts resolves
 * them when a component needs them, so the parsed config can be printed and logged.
 */

/** IANA port for IPFIX over UDP/TCP/SCTP (RFC 7011 §10.3.4 / IANA service-names). */
export const IPFIX_PORT = 4739;
/** IANA port for IPFIX over TLS / DTLS (RFC 7011 §10.3.4: "ipfixs"). */
export const IPFIXS_PORT = 4740;
/** The conventional NetFlow v5/v9 port (Cisco default). */
export const NETFLOW_PORT = 2055;
/** IANA port for sFlow (sflow 6343/udp). */
export const SFLOW_PORT = 6343;
/** Largest UDP payload a datagram can carry over IPv4 (65535 − 8 UDP − 20 IP, rounded to the u16 limit). */
export const MAX_UDP_DATAGRAM_BYTES = 65_535;
/** 32 MiB socket receive buffer: absorbs a few hundred ms of a 100k-flows/s burst (needs net.core.rmem_max ≥ this). */
export const DEFAULT_RECEIVE_BUFFER_BYTES = 32 * 1024 * 1024;
/** The IPFIX message header length field is 16 bits (RFC 7011 §3.1): no message exceeds 65535 bytes. */
export const MAX_IPFIX_MESSAGE_BYTES = 65_535;
/** Default spool quota: 10 GiB holds about a day of a busy branch router at ~100 bytes/record. */
export const DEFAULT_SPOOL_QUOTA_BYTES = 10 * 1024 * 1024 * 1024;
/** Default admin endpoint port (unassigned by IANA, outside common exporter ports). */
export const DEFAULT_ADMIN_PORT = 9180;
/**
 * NetoFlow's ingest host (its `apihost` default); Fusion's ingest path is not public
 * (docs/FUSION.md), so the path is this project's choice, matched by the stand-in: set
 * drain.fusion.uploadUrl to what Netography gives you.
 */
export const DEFAULT_FUSION_UPLOAD_URL = 'https://api-ingest.netography.com/api/v1/flows';
/** NetoFlow flushes every 2000 records: the same per-request cap keeps request sizes familiar to Fusion. */
export const DEFAULT_FUSION_RECORDS_PER_REQUEST = 2000;

/** IANA syslog port (514/udp; also the conventional plain-TCP port). */
export const SYSLOG_PORT = 514;
/** RFC 5424 §6.2.1 facility keywords accepted in log.syslog.facility. */
export const SYSLOG_FACILITY_NAMES = [
  'kern', 'user', 'mail', 'daemon', 'auth', 'syslog', 'lpr', 'news', 'uucp', 'cron', 'authpriv', 'ftp',
  'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
] as const;

const port = (what: string) =>
  z.number().int().min(1).max(65_535).describe(what);

const nonEmpty = z.string().min(1);

/** The three shapes a secret may come from. An inline value is rejected on purpose (see SECRET_INLINE_MESSAGE). */
export const SecretSourceSchema = z
  .union(
    [
      z.strictObject({ env: nonEmpty.describe('Name of the environment variable holding the secret.') }),
      z.strictObject({ file: nonEmpty.describe('Path of a file holding the secret (surrounding whitespace trimmed). Must not be group/other-readable.') }),
      z.strictObject({
        command: z
          .array(nonEmpty)
          .min(1)
          .describe('Command (argv, run without a shell) whose standard output is the secret; e.g. ["systemd-creds", "cat", "kek"].'),
        passEnv: z
          .array(
            z
              .string()
              .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name')
              .refine((n) => !n.startsWith('SEALFLOW_'), 'must not be a SEALFLOW_ variable: those configure sealflow and may hold its secrets'),
          )
          .optional()
          .describe('Environment variables the command gets besides PATH and LANG (e.g. ["CREDENTIALS_DIRECTORY"], ["VAULT_ADDR", "VAULT_TOKEN"]); nothing else of the probe\'s environment reaches it.'),
      }),
    ],
    {
      error: (issue) =>
        typeof issue.input === 'string' || typeof issue.input === 'number'
          ? SECRET_INLINE_MESSAGE
          : 'must be exactly one of {env: "VAR"}, {file: "/path"} or {command: ["argv0", "arg", ...]}',
    },
  )
  .describe('A secret source: {env: "VAR"}, {file: "/path"} or {command: ["argv0", ...], passEnv: ["VAR", ...]}. Inline secret values are rejected.');

export const SECRET_INLINE_MESSAGE =
  'inline secret values are not accepted in configuration; use {env: "VAR"}, {file: "/path"} or {command: ["argv0", ...]} (or the matching SEALFLOW_*, *_FILE, *_COMMAND environment variable)';

/** Dotted paths (a trailing `*` covers array items) whose values are secret sources. */
export const SECRET_SETTINGS: readonly string[] = ['spool.kek', 'spool.previousKeks', 'drain.fusion.netosecret', 'admin.token', 'privacy.pseudonymize.key', 'audit.signingKey'];

const LogSchema = z
  .strictObject({
    level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).default('info').describe('Minimum log level.'),
    format: z
      .enum(['auto', 'json', 'pretty'])
      .default('auto')
      .describe('Log format: JSON lines, pretty (human) lines, or auto = pretty when standard error (where logs go) is a terminal, JSON otherwise.'),
    syslog: z
      .strictObject({
        address: nonEmpty.describe('Syslog receiver host name or address.'),
        port: port('Syslog receiver port.').default(SYSLOG_PORT),
        protocol: z.enum(['udp', 'tcp']).default('udp').describe('udp (RFC 5426) or tcp with octet-counting framing (RFC 6587).'),
        facility: z.enum(SYSLOG_FACILITY_NAMES).default('daemon').describe('Syslog facility.'),
        appName: nonEmpty.max(48).default('sealflow').describe('RFC 5424 APP-NAME.'),
      })
      .optional()
      .describe('Also send every log line to a syslog receiver as RFC 5424 messages (the JSON line is the MSG). Omit: no syslog.'),
  })
  .prefault({})
  .describe('Logging (pino).');

const UdpListenerSchema = z
  .strictObject({
    name: nonEmpty.optional().describe('Label for logs, metrics and /stats (default: "udp-<port>", or "udp-<address>-<port>" when listeners share a port).'),
    address: nonEmpty.default('0.0.0.0').describe('Local address to bind ("0.0.0.0" all IPv4, "::" all IPv6, or one address).'),
    port: port('UDP port to bind (1-65535).'),
    receiveBufferBytes: z
      .number()
      .int()
      .min(65_536)
      .max(1024 * 1024 * 1024)
      .default(DEFAULT_RECEIVE_BUFFER_BYTES)
      .describe('SO_RCVBUF size in bytes; the kernel caps it at net.core.rmem_max (raise that sysctl to match).'),
    maxDatagramBytes: z
      .number()
      .int()
      .min(512)
      .max(MAX_UDP_DATAGRAM_BYTES)
      .default(MAX_UDP_DATAGRAM_BYTES)
      .describe('Datagrams longer than this are dropped and counted (reason "oversize").'),
  })
  .describe('A UDP listener for IPFIX, NetFlow v5/v9 or sFlow v5 (the version is detected per datagram).');

const IdentitySchema = z
  .strictObject({
    name: nonEmpty.describe('Exporter identity: a certificate DNS-ID (subjectAltName dNSName), or the subject CN when the certificate has no DNS-IDs.'),
    sources: z
      .array(nonEmpty)
      .optional()
      .describe('Addresses/CIDR prefixes this identity may connect from (omit: any address).'),
    observationDomains: z
      .array(z.number().int().min(0).max(0xffff_ffff))
      .optional()
      .describe('IPFIX observation domain IDs this identity may report (omit: any).'),
  })
  .describe('An exporter allowed to connect over TLS/DTLS.');

/** Trust material shared in shape by TLS and DTLS; DTLS inherits TLS's values for any it leaves unset. */
const trustFields = {
  certFile: nonEmpty.optional().describe("PEM file with the collector's certificate chain."),
  keyFile: nonEmpty.optional().describe("PEM file with the collector's private key (must not be group/other-readable)."),
  caFile: nonEmpty.optional().describe('PEM bundle of the CA(s) that issue exporter certificates.'),
  crlFiles: z.array(nonEmpty).optional().describe('PEM CRL files checked for every exporter certificate (reloaded on SIGHUP).'),
  identities: z
    .array(IdentitySchema)
    .optional()
    .describe('Exporter identities allowed to connect; a certificate from caFile whose identity is not listed is rejected.'),
};

const TlsListenerSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Accept IPFIX over TLS (RFC 7011 §10.4, mutual authentication).'),
    address: nonEmpty.default('0.0.0.0').describe('Local address to bind.'),
    port: port('TCP port to bind.').default(IPFIXS_PORT),
    ...trustFields,
    maxConnections: z.number().int().min(1).max(100_000).default(1024).describe('Concurrent TLS connections, all sources.'),
    // A router may run a few exporting processes (line cards) from one address.
    maxConnectionsPerSource: z.number().int().min(1).max(10_000).default(16).describe('Concurrent TLS connections from one source address.'),
    handshakesPerSecond: z.number().int().min(1).max(100_000).default(50).describe('New handshakes accepted per second, all sources (excess connections are closed).'),
    handshakeTimeoutMs: z.number().int().min(100).max(600_000).default(10_000).describe('A handshake not finished within this is aborted (reason "handshake_timeout").'),
    // IPFIX over TCP has no keepalive and a quiet exporter may send nothing for minutes
    // (30-minute active timeouts exist): 15 min frees dead peers without cutting quiet ones.
    idleTimeoutMs: z.number().int().min(1000).max(86_400_000).default(900_000).describe('A connection with no message for this long is closed.'),
    maxMessageBytes: z.number().int().min(16).max(MAX_IPFIX_MESSAGE_BYTES).default(MAX_IPFIX_MESSAGE_BYTES).describe('Largest IPFIX message accepted on the stream; a longer one closes the connection.'),
  })
  .prefault({})
  .describe('IPFIX over TLS listener.');

const DtlsListenerSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('Accept IPFIX over DTLS (RFC 7011 §10.5 / RFC 5153, mutual authentication).'),
    address: nonEmpty.default('0.0.0.0').describe('Local address to bind.'),
    port: port('UDP port to bind.').default(IPFIXS_PORT),
    ...trustFields,
    maxSessions: z.number().int().min(1).max(100_000).default(1024).describe('Concurrent DTLS sessions, all sources.'),
    maxSessionsPerSource: z.number().int().min(1).max(10_000).default(16).describe('Concurrent DTLS sessions from one source address.'),
    handshakesPerSecond: z.number().int().min(1).max(100_000).default(50).describe('New handshakes accepted per second, all sources.'),
    handshakeTimeoutMs: z.number().int().min(100).max(600_000).default(10_000).describe('A handshake not finished within this is aborted.'),
    idleTimeoutMs: z.number().int().min(1000).max(86_400_000).default(300_000).describe('A session with no datagram for this long is closed.'),
    maxDatagramBytes: z.number().int().min(512).max(MAX_UDP_DATAGRAM_BYTES).default(MAX_UDP_DATAGRAM_BYTES).describe('Largest DTLS datagram accepted.'),
  })
  .prefault({})
  .describe('IPFIX over DTLS listener. certFile, keyFile, caFile, crlFiles and identities default to the TLS listener\'s.');

const ListenersSchema = z
  .strictObject({
    allowlist: z
      .array(nonEmpty)
      .default([])
      .describe('Addresses/CIDR prefixes of UDP exporters whose datagrams are accepted; empty = none (TLS/DTLS use identities instead).'),
    udp: z
      .array(UdpListenerSchema)
      .default([
        { name: 'ipfix', address: '0.0.0.0', port: IPFIX_PORT, receiveBufferBytes: DEFAULT_RECEIVE_BUFFER_BYTES, maxDatagramBytes: MAX_UDP_DATAGRAM_BYTES },
        { name: 'netflow', address: '0.0.0.0', port: NETFLOW_PORT, receiveBufferBytes: DEFAULT_RECEIVE_BUFFER_BYTES, maxDatagramBytes: MAX_UDP_DATAGRAM_BYTES },
        { name: 'sflow', address: '0.0.0.0', port: SFLOW_PORT, receiveBufferBytes: DEFAULT_RECEIVE_BUFFER_BYTES, maxDatagramBytes: MAX_UDP_DATAGRAM_BYTES },
      ])
      .describe(`UDP listeners (default: ${IPFIX_PORT} ipfix, ${NETFLOW_PORT} netflow, ${SFLOW_PORT} sflow on 0.0.0.0).`),
    udpReceiver: z
      .enum(['auto', 'native', 'node'])
      .default('auto')
      .describe('UDP receive path: "native" = a receiver thread per socket reading batches with recvmmsg (Linux addon), "node" = node:dgram on the event loop, "auto" = native where available.'),
    tls: TlsListenerSchema,
    dtls: DtlsListenerSchema,
  })
  .prefault({})
  .describe('Where flows come in.');

const TeeSchema = z
  .strictObject({
    listenerPort: port('Only datagrams received on this UDP listener port (omit: all UDP listeners).').optional(),
    targets: z.array(nonEmpty).min(1).describe('"host:port" UDP destinations that get a copy of every accepted datagram ("[v6]:port" for IPv6).'),
    exporters: z.array(nonEmpty).optional().describe('Only datagrams from these exporter addresses/prefixes (omit: all).'),
  })
  .describe('Forward raw accepted UDP datagrams to other collectors (NetoFlow-style tee).');

const FilterRuleSchema = z
  .strictObject({
    name: nonEmpty.optional().describe('Label for the per-rule match counter.'),
    action: z.enum(['accept', 'drop']).describe('What a matching record gets.'),
    srcnets: z.array(nonEmpty).optional().describe('Source address prefixes.'),
    dstnets: z.array(nonEmpty).optional().describe('Destination address prefixes.'),
    srcports: z.array(z.union([z.number().int().min(0).max(65_535), nonEmpty])).optional().describe('Source ports or "low-high" ranges.'),
    dstports: z.array(z.union([z.number().int().min(0).max(65_535), nonEmpty])).optional().describe('Destination ports or "low-high" ranges.'),
    protocols: z.array(z.union([z.number().int().min(0).max(255), nonEmpty])).optional().describe('IP protocols by number or name ("tcp").'),
    srcasns: z.array(z.number().int().min(0).max(0xffff_ffff)).optional().describe('Source AS numbers.'),
    dstasns: z.array(z.number().int().min(0).max(0xffff_ffff)).optional().describe('Destination AS numbers.'),
    exporters: z.array(nonEmpty).optional().describe('Exporter addresses/prefixes.'),
  })
  .describe('A filter rule: every listed criterion must match (criteria lists match any of their entries); first matching rule wins.');

const FiltersSchema = z
  .strictObject({
    default: z.enum(['accept', 'drop']).default('accept').describe('Action for a record no rule matches.'),
    rules: z.array(FilterRuleSchema).default([]).describe('Rules tried in order; the first match decides.'),
  })
  .prefault({})
  .describe('Record filters applied after decoding, before the spool.');

const DecodeSchema = z
  .strictObject({
    // 30 min: ≥ 3× the common 5–10 min template refresh over UDP (RFC 7011 §8.4).
    templateLifetimeSeconds: z.number().int().min(1).max(86_400 * 7).default(1800).describe('Unrefreshed IPFIX/NetFlow v9 templates expire after this (RFC 7011 §8.4 UDP template lifetime).'),
    // Real exporters define tens of templates; 4096 bounds a hostile session's memory.
    maxTemplatesPerSession: z.number().int().min(1).max(65_536).default(4096).describe('Templates kept per transport session and observation domain; more are refused and counted.'),
    // The largest real templates (Ixia, nProbe) have ~100 fields; IPFIX's ceiling is ~16k.
    maxFieldsPerTemplate: z.number().int().min(1).max(65_535).default(512).describe('Templates declaring more fields are refused.'),
    // Templates normally follow within one refresh burst; 2 s covers reordering at startup.
    pendingHoldMs: z.number().int().min(0).max(600_000).default(2000).describe('Data sets that arrive before their template are held this long waiting for it.'),
    maxPendingRecordsPerSession: z.number().int().min(0).max(10_000_000).default(10_000).describe('Cap on held (template-less) data per session; beyond it they are dropped and counted.'),
    maxSessions: z.number().int().min(1).max(10_000_000).default(10_000).describe('Transport sessions (exporter × port × transport) with template state; beyond it the least recently seen session of the exporter with the most sessions is evicted.'),
    // A typical exporter's templates cost well under 1 MiB (docs/decoding.md, "Memory"): 256 MiB holds hundreds of them.
    maxStateBytes: z.number().int().min(1024 * 1024).max(64 * 1024 * 1024 * 1024).default(256 * 1024 * 1024).describe('Bytes of decoder state (sessions, templates, samplers, held data) in all, charged before allocation; beyond it the largest exporter\'s sessions are evicted. See docs/decoding.md, "Memory".'),
    // ~2,000 templates of 15 fields: far above any real exporter, a small share of the total.
    maxStateBytesPerExporter: z.number().int().min(64 * 1024).max(64 * 1024 * 1024 * 1024).default(16 * 1024 * 1024).describe('Bytes of decoder state one exporter address may hold (all its source ports and transports); beyond it its own older sessions are evicted, then new state is refused.'),
    tunnelLayer: z.enum(['inner', 'outer']).default('inner').describe('Which IP header of a tunnelled flow fills a record (addresses, protocol, ports, ToS, flags, ICMP all from that one header): a template repeating the IP header elements, or a packet section / sampled header with IP-in-IP, GRE or VXLAN. See docs/decoding.md.'),
    sflowOctets: z.enum(['ip', 'frame']).default('ip').describe('sFlow byte count: ip = the IP packet length (IP header + payload, as NetFlow/IPFIX octets count), frame = the sampled L2 frame length (goflow2). See docs/decoding.md.'),
  })
  .prefault({})
  .describe('Decoder limits.');

const SpoolSchema = z
  .strictObject({
    dir: nonEmpty.optional().describe('Spool directory: the SQLite database spool.db (with its WAL) and the sealed rollback marker spool.hwm (default: <dataDir>/spool).'),
    quotaBytes: z.number().int().min(1024 * 1024).default(DEFAULT_SPOOL_QUOTA_BYTES).describe('Largest size of spooled (encrypted) batches in bytes; see fullPolicy.'),
    fullPolicy: z.enum(['drop-oldest', 'drop-newest']).default('drop-oldest').describe('At the quota: evict the oldest batches, or refuse new records (both counted).'),
    reserveBytes: z.number().int().min(0).max(1024 * 1024 * 1024).default(8 * 1024 * 1024).describe('Space kept allocated in the spool directory (spool.reserve) and given back when the filesystem is full, so that acks, eviction and checkpoints can still free space; 0: none.'),
    batch: z
      .strictObject({
        maxRecords: z.number().int().min(1).max(1_000_000).default(20000).describe('Records per spooled batch (one SQLite commit each; also capped by maxBytes).'),
        maxBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024).describe('Encoded bytes per spooled batch.'),
        maxAgeMs: z.number().int().min(1).max(600_000).default(1000).describe('A non-empty batch is committed after this long even if not full (bounds loss on a crash).'),
      })
      .prefault({})
      .describe('How records are grouped before being encrypted and committed.'),
    synchronous: z.enum(['normal', 'full']).default('full').describe('SQLite synchronous mode: full survives power loss; normal (WAL) may lose the last commits on power loss, never on a process crash.'),
    epochSeconds: z.number().int().min(60).max(86_400 * 30).default(3600).describe('Data keys rotate every epoch; a whole epoch is erased by dropping its key.'),
    kek: SecretSourceSchema.optional().describe('Key-encryption key source (base64 of 32 bytes, `sealflow keygen`). Or set SEALFLOW_SPOOL_KEK / SEALFLOW_SPOOL_KEK_FILE / SEALFLOW_SPOOL_KEK_COMMAND.'),
    previousKeks: z.array(SecretSourceSchema).default([]).describe('Older KEK sources still accepted for unwrapping during a rotation (`sealflow rekey`).'),
    maxAgeSeconds: z
      .number()
      .int()
      .min(60)
      .max(86_400 * 3650)
      .optional()
      .describe('Retention: batches older than this are crypto-shredded, delivered or not, and never uploaded afterwards (counted and logged as retention expiries). Omit: no age limit (the quota alone bounds the spool).'),
  })
  .prefault({})
  .describe('The encrypted on-disk spool.');

const PseudonymizeRuleSchema = z
  .strictObject({
    name: nonEmpty.optional().describe('Label for logs and docs.'),
    action: z.enum(['pseudonymize', 'keep']).describe('pseudonymize: replace the address by its Crypto-PAn pseudonym inside the matching prefix; keep: store it in clear.'),
    prefixes: z.array(nonEmpty).min(1).describe('IPv4/IPv6 addresses or CIDR prefixes this rule covers.'),
  })
  .describe('A pseudonymisation rule; rules are tried in order and the first whose prefixes contain the address decides.');

const PseudonymizeSchema = z
  .strictObject({
    key: SecretSourceSchema.describe('Master pseudonymisation key source (base64 of 32 bytes, `sealflow keygen --purpose pseudonymize`). Or set SEALFLOW_PSEUDONYMIZE_KEY / _FILE / _COMMAND. Keep it off the spool\'s disk: it re-identifies every pseudonym.'),
    rotation: z
      .enum(['never', 'daily', 'epoch'])
      .default('daily')
      .describe('Key period: daily (UTC days), epoch (spool.epochSeconds, aligned to the Unix epoch) or never. Pseudonyms are linkable within a period and unlinkable across periods.'),
    fields: z
      .array(z.enum(['srcip', 'dstip', 'nexthop', 'bgpnexthop']))
      .min(1)
      .default(['srcip', 'dstip', 'nexthop', 'bgpnexthop'])
      .describe('Address fields (Fusion record names) the rules apply to; the same decision applies to an address in any of them. Exporter addresses (flowsrcip) are never pseudonymised.'),
    rules: z.array(PseudonymizeRuleSchema).min(1).describe('Ordered prefix rules; an address no rule contains is kept in clear.'),
    cacheEntries: z
      .number()
      .int()
      .min(1024)
      .max(1 << 22)
      .default(262_144)
      .describe('Address → pseudonym cache slots per address family on the ingest worker (memory only, emptied at each rotation; ~13 B per IPv4 and ~37 B per IPv6 slot). Size it to 2–4× the distinct addresses seen in a period: a miss costs one Crypto-PAn computation (~1.5 µs IPv4, ~5 µs IPv6).'),
  })
  .describe('Prefix-preserving keyed pseudonymisation (Crypto-PAn) of flow addresses before anything is stored.');

const PrivacySchema = z
  .strictObject({
    pseudonymize: PseudonymizeSchema.optional().describe('Omit: addresses are stored and uploaded as decoded.'),
  })
  .prefault({})
  .describe('Privacy at the edge: pseudonymisation of flow addresses (retention is spool.maxAgeSeconds).');

const FusionSchema = z
  .strictObject({
    netosecret: SecretSourceSchema.optional().describe('Fusion API key (netosecret) source. Or set SEALFLOW_FUSION_NETOSECRET / SEALFLOW_FUSION_NETOSECRET_FILE / _COMMAND.'),
    embeddedSim: z.boolean().default(false).describe('Drain to a local Fusion stand-in started in-process (development / `npm start`); no netosecret needed.'),
    uploadUrl: z.url({ protocol: /^https$/ }).default(DEFAULT_FUSION_UPLOAD_URL).describe('HTTPS URL flow records are POSTed to (not publicly documented by Fusion, hence configurable).'),
    framing: z.enum(['ndjson', 'json-array']).default('ndjson').describe('Request body framing of the records.'),
    compression: z.enum(['gzip', 'zstd', 'none']).default('gzip').describe('Request body compression (Content-Encoding).'),
    maxRecordsPerRequest: z.number().int().min(1).max(100_000).default(DEFAULT_FUSION_RECORDS_PER_REQUEST).describe('Records per upload request.'),
    // 2000 records × ~600 B ≈ 1.2 MB, so 4 MiB only bites on unusual records.
    maxBytesPerRequest: z.number().int().min(1024).max(256 * 1024 * 1024).default(4 * 1024 * 1024).describe('Uncompressed body bytes per upload request (a single larger record still goes alone).'),
    gzipLevel: z.number().int().min(1).max(9).default(6).describe('gzip level 1–9, and the ceiling of the adaptive level: 6 sends ~25 % fewer bytes than 1 (slow branch links), 1 costs ~3× less CPU per record (fast links, large backlogs).'),
    adaptiveGzip: z.boolean().default(true).describe('Step the gzip level down towards 1 while compression, not the uplink, is the bottleneck, and back up when the uplink is (false: always gzipLevel).'),
    caFile: nonEmpty.optional().describe('PEM CA bundle trusted in addition to the system store (private CA, TLS-inspecting proxy).'),
    pinSha256: z
      .array(z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 SHA-256 SPKI pin (44 characters ending in "=")'))
      .optional()
      .describe("Base64 SHA-256 pins of acceptable server public keys (SPKI); any match is accepted."),
    proxyUrl: z.url({ protocol: /^https?$/ }).optional().describe('HTTP(S) proxy for the uplink (credentials in the URL are redacted in output).'),
    connectTimeoutMs: z.number().int().min(100).max(600_000).default(10_000).describe('TCP+TLS connect timeout.'),
    // A 2000-record gzip chunk is ~100 KB: ~1 s on a 1 Mbit/s branch link, well inside this.
    headersTimeoutMs: z.number().int().min(100).max(600_000).default(30_000).describe('Time to receive response headers.'),
    bodyTimeoutMs: z.number().int().min(100).max(600_000).default(30_000).describe('Time between response body chunks.'),
    registerDevices: z.boolean().default(false).describe('Register unseen exporters as Fusion devices (POST /api/v1/device).'),
  })
  .prefault({})
  .describe('Fusion uplink.');

const DrainSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Drain the spool to Fusion (false: spool only, e.g. for a later `sealflow drain`).'),
    fusion: FusionSchema,
    concurrency: z.number().int().min(1).max(64).default(2).describe('Batches in flight (uploads run in parallel up to this many; raised to uploadWorkers when lower).'),
    uploadWorkers: z.number().int().min(0).max(32).default(1).describe('Worker threads that serialize, compress and upload (0: on the main thread, which also receives UDP; more than one only helps with free cores).'),
    maxBytesPerSecond: z.number().int().min(1024).optional().describe('Uplink rate cap in request bytes per second (omit: none).'),
    maxRecordsPerSecond: z.number().int().min(1).optional().describe('Uplink rate cap in records per second (omit: none).'),
    retry: z
      .strictObject({
        initialDelayMs: z.number().int().min(10).max(3_600_000).default(1000).describe('First retry delay; doubles per failure with jitter.'),
        maxDelayMs: z.number().int().min(10).max(86_400_000).default(300_000).describe('Longest retry delay.'),
      })
      .prefault({})
      .describe('Backoff for failed uploads (records stay spooled until acknowledged).'),
  })
  .prefault({})
  .describe('Spool → Fusion uploader.');

const AdminSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Serve /healthz, /readyz, /stats and /metrics.'),
    address: nonEmpty.default('127.0.0.1').describe('Bind address (loopback by default; set a token before exposing it).'),
    port: z.number().int().min(0).max(65_535).default(DEFAULT_ADMIN_PORT).describe('TCP port (0 = any free port, for tests).'),
    token: SecretSourceSchema.optional().describe('Bearer token source required on every request (or SEALFLOW_ADMIN_TOKEN / _FILE / _COMMAND). Omit: no authentication.'),
  })
  .prefault({})
  .describe('Admin HTTP endpoint.');

/** PCI DSS 4.0 10.5.1: audit logs are kept at least 12 months; 400 days leaves a margin for a late audit. */
const DEFAULT_AUDIT_RETENTION_DAYS = 400;

const AuditSchema = z
  .strictObject({
    signingKey: SecretSourceSchema.optional().describe(
      'Device signing key source: an Ed25519 seed, base64 of 32 bytes (`sealflow keygen --purpose audit`). Signs the audit trail\'s digests, deletion receipts, attestation reports and evidence packs; `sealflow audit pubkey` prints its public key. Or set SEALFLOW_AUDIT_SIGNING_KEY / _FILE / _COMMAND. Omit: the trail is hash-chained but not signed (logged, and an attestation finding).',
    ),
    digestIntervalSeconds: z.number().int().min(60).max(86_400).default(3600).describe('A signed digest of the trail is made this often while running, and at every start and stop.'),
    retentionDays: z.number().int().min(1).max(3650).default(DEFAULT_AUDIT_RETENTION_DAYS).describe('Audit events older than this, once signed, are removed (digests and deletion receipts are kept).'),
  })
  .prefault({})
  .describe('Audit trail, signed digests and receipts (docs/audit.md).');

const DevelopmentSchema = z
  .strictObject({
    generatePki: z.boolean().default(false).describe('Create a development CA and collector certificate at listeners.tls cert/key/ca paths when missing. Never in production.'),
    generateKek: z.boolean().default(false).describe('When spool.kek is a {file} source and the file is missing, create a development KEK there. Never in production.'),
    generateSigningKey: z.boolean().default(false).describe('When audit.signingKey is a {file} source and the file is missing, create a development signing key there. Never in production.'),
  })
  .prefault({})
  .describe('Development conveniences used by the embedded `npm start` configuration.');

export const ConfigSchema = z
  .strictObject({
    dataDir: nonEmpty.default('./.sealflow').describe('Directory for the spool database and development PKI/KEK; relative paths resolve against the working directory.'),
    log: LogSchema,
    listeners: ListenersSchema,
    tees: z.array(TeeSchema).default([]).describe('UDP datagram forwarding.'),
    filters: FiltersSchema,
    decode: DecodeSchema,
    spool: SpoolSchema,
    privacy: PrivacySchema,
    drain: DrainSchema,
    admin: AdminSchema,
    audit: AuditSchema,
    stats: z
      .strictObject({
        intervalSeconds: z.number().int().min(0).max(86_400).default(60).describe('Seconds between one-line stats log entries (0 = off).'),
      })
      .prefault({})
      .describe('Periodic stats log line (NetoFlow statsinterval).'),
    shutdown: z
      .strictObject({
        deadlineMs: z.number().int().min(100).max(600_000).default(10_000).describe('Graceful stop deadline; after it the process exits naming what overran.'),
      })
      .prefault({})
      .describe('Stopping.'),
    development: DevelopmentSchema,
  })
  .describe('sealflow configuration.');

/** What a config file / override layer may contain (every key optional where a default exists). */
export type ConfigInput = z.input<typeof ConfigSchema>;
/** The parsed schema output, before path resolution and DTLS trust inheritance. */
export type ParsedConfig = z.output<typeof ConfigSchema>;
/** Where a secret comes from (never the secret itself). */
export type SecretSource = { readonly env: string } | { readonly file: string } | { readonly command: readonly string[]; readonly passEnv?: readonly string[] | undefined };

type DeepReadonly<T> = T extends (infer U)[] ? readonly DeepReadonly<U>[] : T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

type Resolved = Omit<ParsedConfig, 'spool' | 'listeners'> & {
  spool: Omit<ParsedConfig['spool'], 'dir'> & { dir: string };
  listeners: Omit<ParsedConfig['listeners'], 'tls' | 'dtls'> & {
    tls: ParsedConfig['listeners']['tls'] & { crlFiles: string[]; identities: ParsedConfig['listeners']['tls']['identities'] & object };
    dtls: ParsedConfig['listeners']['dtls'] & { crlFiles: string[]; identities: ParsedConfig['listeners']['tls']['identities'] & object };
  };
};

/**
 * The validated, frozen configuration every component receives a slice of. Compared with the
 * raw schema output: dataDir and every file path are absolute, spool.dir is filled in,
 * DTLS trust fields inherit from TLS, crlFiles/identities are always arrays.
 */
export type Config = DeepReadonly<Resolved>;
export type UdpListenerConfig = Config['listeners']['udp'][number];
export type TlsListenerConfig = Config['listeners']['tls'];
export type DtlsListenerConfig = Config['listeners']['dtls'];
export type IdentityConfig = TlsListenerConfig['identities'][number];
export type FilterConfig = Config['filters'];
export type FilterRuleConfig = FilterConfig['rules'][number];
export type TeeConfig = Config['tees'][number];
export type DecodeConfig = Config['decode'];
export type SpoolConfig = Config['spool'];
export type DrainConfig = Config['drain'];
export type FusionConfig = DrainConfig['fusion'];
export type AdminConfig = Config['admin'];
export type AuditConfig = Config['audit'];
export type LogConfig = Config['log'];
export type PseudonymizeConfig = NonNullable<Config['privacy']['pseudonymize']>;

import { createDevPki, DEFAULT_DEV_EXPORTER, DEV_PKI_WARNING, type DevPkiOptions } from '../ingest/trust/dev-pki.js';
import type { CommandMain } from './command.js';
import { ExitCode, parseCommandArgs } from './command.js';

const HELP = `usage: sealflow pki --out DIR [--exporter NAME ...] [--collector-name NAME ...]
                   [--collector-ip ADDR ...] [--days N]

Creates a DEVELOPMENT PKI with the openssl CLI: a CA, a collector (server) certificate for
localhost, 127.0.0.1, ::1 and this host's name, and one client certificate per exporter
(extendedKeyUsage clientAuth, subjectAltName DNS:<NAME>). The CA key is stored unprotected
in DIR/ca/: never use this PKI in production (see certs/README.md for a real one).

  --out DIR             directory to write (created; existing files are replaced)
  --exporter NAME       exporter identity (DNS name); repeatable (default ${DEFAULT_DEV_EXPORTER})
  --collector-name NAME extra DNS name for the collector certificate; repeatable
  --collector-ip ADDR   extra IP address for the collector certificate; repeatable
  --days N              certificate lifetime in days (default 825)

Prints the files and the matching listeners.tls configuration.
`;

/** `sealflow pki`: the development PKI (same generation as the daemon's embedded default). */
export const main: CommandMain = async (argv, io) => {
  const parsed = parseCommandArgs('pki', HELP, argv, io, {
    out: { type: 'string' },
    exporter: { type: 'string', multiple: true },
    'collector-name': { type: 'string', multiple: true },
    'collector-ip': { type: 'string', multiple: true },
    days: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  if (values.out === undefined || values.out === '') {
    io.stderr.write(`sealflow pki: --out DIR is required\n\n${HELP}`);
    return ExitCode.Usage;
  }
  const options: { -readonly [K in keyof DevPkiOptions]: DevPkiOptions[K] } = {};
  if (values.exporter !== undefined) options.exporters = values.exporter;
  if (values['collector-name'] !== undefined) options.collectorNames = values['collector-name'];
  if (values['collector-ip'] !== undefined) options.collectorAddresses = values['collector-ip'];
  if (values.days !== undefined) {
    const days = Number(values.days);
    if (!/^\d+$/.test(values.days) || days < 1 || days > 36_500) {
      io.stderr.write(`sealflow pki: --days must be a whole number of days between 1 and 36500, got ${JSON.stringify(values.days)}\n`);
      return ExitCode.Usage;
    }
    options.days = days;
  }

  io.stderr.write(`\n*** ${DEV_PKI_WARNING} ***\n\n`);
  let pki;
  try {
    pki = await createDevPki(values.out, options);
  } catch (err) {
    io.stderr.write(`sealflow pki: ${(err as Error).message}\n`);
    return err instanceof RangeError ? ExitCode.Usage : ExitCode.Software;
  }
  const lines = [
    `development PKI written to ${pki.dir}`,
    `  CA certificate         ${pki.caFile}`,
    `  CRL (empty)            ${pki.crlFile}`,
    `  collector certificate  ${pki.collectorCertFile}`,
    `  collector key          ${pki.collectorKeyFile}`,
    ...pki.exporters.map((e) => `  exporter ${e.name}: ${e.certFile} ${e.keyFile}`),
    '',
    'configuration (YAML):',
    'listeners:',
    '  tls:',
    '    enabled: true',
    `    caFile: ${pki.caFile}`,
    `    crlFiles: [${pki.crlFile}]`,
    `    certFile: ${pki.collectorCertFile}`,
    `    keyFile: ${pki.collectorKeyFile}`,
    '    identities:',
    ...pki.exporters.map((e) => `      - name: ${e.name}`),
    '',
    'try it (IPFIX over TLS, port 4740):',
    ...pki.exporters.slice(0, 1).map((e) => `  openssl s_client -connect 127.0.0.1:4740 -CAfile ${pki.caFile} -cert ${e.certFile} -key ${e.keyFile} -quiet < messages.ipfix`),
    '',
  ];
  io.stdout.write(lines.join('\n'));
  io.stderr.write(`\n*** ${DEV_PKI_WARNING} ***\n`);
  return ExitCode.Ok;
};

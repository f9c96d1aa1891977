import { createHash } from 'node:crypto';
import type { CanonicalValue } from '../audit/canonical-json.js';
import { canonicalJson } from '../audit/canonical-json.js';
import type { Signed } from '../audit/notary.js';
import type { AttestReport } from './attest.js';

/**
 * The attestation report as one printable page (A4/Letter): verdict, identity, every check
 * with its status, the canary run in figures, and how to verify the signed JSON. Self-contained
 * (inline CSS, no script, no external resource), so it renders the same offline and in a
 * headless browser. Everything interpolated is escaped.
 */

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c);
const iso = (ms: number): string => new Date(ms).toISOString().replace('.000Z', 'Z');
const STATUS_LABEL = { pass: 'PASS', warn: 'WARN', fail: 'FAIL' } as const;

export function renderAttestHtml(report: AttestReport, signed: Signed<AttestReport> | null, jsonFileName: string): string {
  const r = report;
  const digest = createHash('sha256').update(canonicalJson(r as unknown as CanonicalValue)).digest('hex');
  const rows = r.checks
    .map((c) => `<tr class="${c.status}"><td class="st">${STATUS_LABEL[c.status]}</td><td><b>${esc(c.title)}</b><br><span class="d">${esc(c.detail)}</span></td></tr>`)
    .join('\n');
  const scans = r.canary.scans.map((s) => `${esc(s.phase)}: ${s.files} files, ${s.bytes} bytes, ${s.hits} hit(s)`).join('<br>');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sealflow attestation ${esc(iso(r.finishedAtMs))}</title>
<style>
@page { size: A4; margin: 12mm; }
body { font: 10.5px/1.35 system-ui, sans-serif; color: #111; margin: 0 auto; max-width: 190mm; }
h1 { font-size: 17px; margin: 0 0 4px; }
.verdict { font-size: 15px; font-weight: 700; padding: 5px 8px; margin: 6px 0; }
.verdict.passed { background: #d9f2dd; } .verdict.failed { background: #f8d7d7; }
table { border-collapse: collapse; width: 100%; }
td { border-top: 1px solid #ddd; padding: 2px 4px; vertical-align: top; }
td.st { width: 34px; font-weight: 700; }
tr.pass td.st { color: #17692b; } tr.warn td.st { color: #8a5a00; } tr.fail td.st { color: #a40000; }
.d { color: #333; word-break: break-word; }
dl { display: grid; grid-template-columns: 110px 1fr; gap: 1px 8px; margin: 4px 0; }
dt { color: #555; } dd { margin: 0; word-break: break-all; }
code { font: 9.5px ui-monospace, monospace; }
footer { margin-top: 6px; color: #444; font-size: 9.5px; }
</style></head>
<body>
<h1>sealflow self-attestation</h1>
<div class="verdict ${r.passed ? 'passed' : 'failed'}" id="verdict">${r.passed ? 'PASSED' : `FAILED — ${r.findings.length} finding(s): ${esc(r.findings.map((f) => f.check).join(', '))}`}</div>
<dl>
<dt>Host</dt><dd>${esc(r.host)} · sealflow ${esc(r.version)}</dd>
<dt>Spool</dt><dd><code>${esc(r.spoolId)}</code></dd>
<dt>Run</dt><dd>${esc(iso(r.startedAtMs))} → ${esc(iso(r.finishedAtMs))}</dd>
<dt>Configuration</dt><dd>SHA-256 <code>${esc(r.configHash)}</code> (canonical JSON, secrets redacted)</dd>
<dt>Signed by</dt><dd>${signed === null ? '<b>not signed</b> (no audit.signingKey)' : `device key <code>${esc(r.keyId ?? '')}</code>`}</dd>
<dt>Report digest</dt><dd><code>${digest}</code></dd>
</dl>
<table>${rows}</table>
<h2 style="font-size:12px;margin:8px 0 2px">Canary run</h2>
<p>${r.canary.records} canary records sent over loopback UDP through the ingest worker into the spool (batch${r.canary.batches.length === 1 ? '' : 'es'} ${r.canary.batches.map((b) => b.id).join(', ') || '—'}, held: never uploaded), then removed (${r.canary.discardedBatches}) and their key epoch${r.canary.shreddedEpochs.length === 1 ? '' : 's'} ${r.canary.shreddedEpochs.join(', ') || '—'} destroyed. Searched for ${r.canary.encodings.length} encodings.<br>${scans}</p>
<footer>Verify: <code>sealflow attest verify --pubkey KEY ${esc(jsonFileName)}</code>, or with OpenSSL only: the signature (base64, field <code>signature</code>) is Ed25519 over the RFC 8785 canonical JSON of the field <code>body</code>; see docs/audit.md.</footer>
</body></html>
`;
}

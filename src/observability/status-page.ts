import type { ProbeSnapshot } from './probe-metrics.js';
import { formatBytes, formatDuration } from './stats-line.js';
import { timeToEmptySeconds } from './stats-document.js';
import { exporterKey, type RecentLogLine, type Series, type StatusHistory } from './status-history.js';

/**
 * The status page on the admin endpoint's `/`: one self-contained HTML document rendered on
 * the server (inline CSS, charts as inline SVG, no script, no external asset, so it works
 * offline and under `Content-Security-Policy: default-src 'none'`). It reloads itself every
 * REFRESH_SECONDS. It shows counters, exporter addresses and identities, never flow data.
 */

export const REFRESH_SECONDS = 10;
/** The page's policy: nothing may be loaded from anywhere, styles are inline. */
export const STATUS_PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface StatusEndpoint {
  readonly transport: string;
  readonly name: string;
  readonly address: string;
  readonly port: number;
}

export interface StatusView {
  readonly snapshot: ProbeSnapshot;
  readonly state: string;
  readonly startedAtMs: number;
  readonly nowMs: number;
  readonly endpoints: readonly StatusEndpoint[];
  readonly history: StatusHistory;
  readonly warnings: readonly RecentLogLine[];
  /** An exporter counts as active when heard from within this window. */
  readonly activeWindowMs: number;
}

function esc(v: unknown): string {
  return String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function num(v: number | null | undefined): string {
  if (v === null || v === undefined) return '–';
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toLocaleString('en-US', { maximumFractionDigits: 1 });
}

function ago(nowMs: number, atMs: number | null | undefined): string {
  if (atMs === null || atMs === undefined || atMs <= 0) return 'never';
  return `${formatDuration(Math.max(0, nowMs - atMs))} ago`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${esc(empty)}</p>`;
  return `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('')}</tbody></table>`;
}

const CHART_W = 300;
const CHART_H = 70;

/** A small line chart of `series` over the last hour, as inline SVG with its last value and maximum. */
export function chart(title: string, unit: string, series: Series, nowMs: number, windowMs: number): string {
  const max = series.reduce((m, [, v]) => Math.max(m, v), 0);
  const last = series.at(-1)?.[1];
  const x = (t: number): number => Math.max(0, Math.min(CHART_W, CHART_W - ((nowMs - t) / windowMs) * CHART_W));
  const y = (v: number): number => CHART_H - 2 - (max > 0 ? (v / max) * (CHART_H - 4) : 0);
  const points = series.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const line = series.length >= 2 ? `<polyline fill="none" stroke="#2563eb" stroke-width="1.5" points="${points}"/>` : `<text x="${CHART_W / 2}" y="${CHART_H / 2}" text-anchor="middle" class="muted">collecting…</text>`;
  return (
    `<figure class="chart"><figcaption>${esc(title)} <b>${esc(num(last ?? null))}</b> ${esc(unit)} <span class="muted">max ${esc(num(max))}</span></figcaption>` +
    `<svg viewBox="0 0 ${CHART_W} ${CHART_H}" width="${CHART_W}" height="${CHART_H}" role="img" aria-label="${esc(title)}"><rect width="${CHART_W}" height="${CHART_H}" class="bg"/>${line}</svg>` +
    `<div class="axis"><span>-60 min</span><span>now</span></div></figure>`
  );
}

const STYLE = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f6f7f9;color:#111827}
header{background:#111827;color:#f9fafb;padding:10px 20px;display:flex;gap:20px;align-items:baseline;flex-wrap:wrap}
header h1{font-size:18px;margin:0}main{padding:12px 20px;display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:14px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:6px;padding:10px 14px}section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:3px 8px 3px 0;border-bottom:1px solid #f0f1f3;font-variant-numeric:tabular-nums}
th{font-weight:600;color:#4b5563;font-size:12px}.muted,.empty{color:#6b7280}.ok{color:#047857}.bad{color:#b91c1c;font-weight:600}.warn{color:#b45309}
.charts{display:flex;flex-wrap:wrap;gap:16px}.chart{margin:0}.chart svg .bg{fill:#f9fafb}.axis{display:flex;justify-content:space-between;width:${CHART_W}px;font-size:11px;color:#6b7280}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}dt{color:#4b5563}dd{margin:0;font-variant-numeric:tabular-nums}`;

export function renderStatusPage(v: StatusView): string {
  const s = v.snapshot;
  const w = s.worker;
  const d = s.drain;
  const now = v.nowMs;
  const series = v.history.series();
  const exporters = w?.exporters ?? [];
  const active = exporters.filter((e) => now - e.lastSeenMs <= v.activeWindowMs).length;

  const exporterRows = [...exporters]
    .sort((a, b) => b.lastSeenMs - a.lastSeenMs)
    .map((e) => {
      const silent = now - e.lastSeenMs > v.activeWindowMs;
      return [esc(e.transport), esc(e.exporter), esc(e.identity ?? '–'), `<span class="${silent ? 'warn' : 'ok'}">${esc(ago(now, e.lastSeenMs))}</span>`, esc(num(v.history.exporterRate(exporterKey(e)))), esc(num(e.records)), esc(num(e.packets)), esc(num(e.decodeErrors)), esc(num(e.sequenceLost))];
    });

  const udpByName = new Map((s.udp?.listeners ?? []).map((l) => [l.name, l]));
  const listenerRows = v.endpoints.map((e) => {
    const u = e.transport === 'udp' ? udpByName.get(e.name) : undefined;
    const traffic =
      u !== undefined ? `${num(u.packets)} datagrams, ${num(u.rejected)} rejected` :
      e.transport === 'tls' && s.tls !== null ? `${num(s.tls.sessionsOpen)} sessions, ${num(s.tls.messages)} messages` :
      e.transport === 'dtls' && s.dtls !== null ? `${num(s.dtls.sessionsOpen)} sessions, ${num(s.dtls.messages)} messages` : '';
    return [esc(e.transport), esc(e.name), esc(`${e.address.includes(':') ? `[${e.address}]` : e.address}:${e.port}`), esc(traffic)];
  });

  const sp = w?.spool;
  const spool = sp === undefined
    ? '<p class="empty">the ingest worker has not reported yet</p>'
    : `<dl><dt>records</dt><dd>${esc(num(sp.records))} in ${esc(num(sp.batches))} batches</dd>` +
      `<dt>size</dt><dd>${esc(formatBytes(sp.bytes))} of ${esc(formatBytes(sp.quotaBytes))} quota (<span class="${sp.quotaUsed >= 0.9 ? 'bad' : sp.quotaUsed >= 0.5 ? 'warn' : 'ok'}">${esc((sp.quotaUsed * 100).toFixed(1))}%</span>), ${esc(formatBytes(sp.fileBytes))} on disk</dd>` +
      `<dt>oldest record</dt><dd>${sp.oldestAgeMs === null ? 'spool empty' : esc(formatDuration(sp.oldestAgeMs))}</dd>` +
      `<dt>parked</dt><dd>${esc(num(sp.parkedBatches))} batches (${esc(num(sp.parkedRecords))} records)</dd></dl>`;

  const eta = d === null ? null : timeToEmptySeconds(sp?.records ?? 0, d.recordsPerSec);
  const failing = d !== null && d.consecutiveFailures > 0;
  const drain = d === null
    ? '<p class="empty">drain disabled: records are spooled only</p>'
    : `<dl><dt>state</dt><dd class="${failing ? 'bad' : 'ok'}">${esc(failing ? `failing (${d.consecutiveFailures} in a row)` : d.state)}</dd>` +
      `<dt>delivered</dt><dd>${esc(num(d.deliveredRecords))} records in ${esc(num(d.deliveredBatches))} batches</dd>` +
      `<dt>last success</dt><dd>${esc(ago(now, d.lastSuccessAtMs))}</dd>` +
      `<dt>last error</dt><dd>${d.lastError === null ? 'none' : `<span class="bad">${esc(d.lastError)}</span> (${esc(ago(now, d.lastErrorAtMs))})`}</dd>` +
      `<dt>time to empty</dt><dd>${eta === null ? 'unknown (nothing delivered recently)' : eta === 0 ? 'spool empty' : esc(formatDuration(eta * 1000))}</dd></dl>`;

  // The loss ledger (spool.loss): totals by reason since it was created, across restarts.
  const lossRows = [
    ...Object.entries(s.loss?.records ?? {}).map(([r, n]) => ['records', esc(r), esc(num(n))]),
    ...Object.entries(s.loss?.packets ?? {}).map(([r, n]) => ['packets', esc(r), esc(num(n))]),
    ...Object.entries(w?.decode.errorsByCode ?? {}).map(([code, n]) => ['decode errors', esc(code), esc(num(n))]),
  ];
  const authRows = [
    ...Object.entries(s.tls?.authFailures ?? {}).filter(([, n]) => n > 0).map(([r, n]) => ['tls', esc(r), esc(num(n))]),
    ...Object.entries(s.dtls?.rejected ?? {}).filter(([, n]) => n > 0).map(([r, n]) => ['dtls', esc(r), esc(num(n))]),
  ];
  const certRows = s.certificates.map((c) => {
    const days = Math.floor((c.notAfterMs - now) / 86_400_000);
    return [esc(c.setting), esc(c.subject), `<span class="${days < 14 ? 'bad' : days < 30 ? 'warn' : 'ok'}">${esc(new Date(c.notAfterMs).toISOString().slice(0, 10))} (${esc(days)} days)</span>`];
  });
  const warningRows = [...v.warnings].reverse().map((l) => [esc(new Date(l.atMs).toISOString().slice(11, 19)), `<span class="${l.level === 'warn' ? 'warn' : 'bad'}">${esc(l.level)}</span>`, esc(l.component ?? ''), esc(l.msg)]);

  const window = 3_600_000;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="${REFRESH_SECONDS}"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>sealflow ${esc(v.state)}</title><style>${STYLE}</style></head>
<body><header><h1>sealflow</h1><span>${esc(v.state)}</span><span>up ${esc(formatDuration(now - v.startedAtMs))}</span><span>${esc(active)} active exporters</span>
<span class="muted">v${esc(s.build.version)} · Node.js ${esc(s.build.node)} · OpenSSL ${esc(s.build.openssl)} · ${esc(new Date(now).toISOString().slice(0, 19).replace('T', ' '))} UTC</span></header>
<main>
<section class="wide"><h2>Last hour</h2><div class="charts">${chart('records in', 'rec/s', series.recordsIn, now, window)}${chart('delivered to Fusion', 'rec/s', series.recordsOut, now, window)}${chart('spool', 'records', series.spoolRecords, now, window)}${chart('lost', 'per s', series.lost, now, window)}</div></section>
<section class="wide"><h2>Exporters</h2>${table(['transport', 'exporter', 'identity', 'last seen', 'rec/s', 'records', 'packets', 'decode errors', 'sequence lost'], exporterRows, 'no exporter has sent anything yet')}</section>
<section><h2>Listeners</h2>${table(['transport', 'name', 'address', 'traffic'], listenerRows, 'no listener')}</section>
<section><h2>Spool</h2>${spool}</section>
<section><h2>Drain to Fusion</h2>${drain}</section>
<section><h2>Loss by reason${s.loss === null ? '' : ` <small>since ${esc(new Date(s.loss.sinceMs).toISOString())}</small>`}</h2>${table(['unit', 'reason', 'count'], lossRows, 'the loss ledger is not open yet')}</section>
<section><h2>Authentication failures</h2>${table(['transport', 'reason', 'count'], authRows, 'none')}</section>
<section><h2>Certificates</h2>${table(['setting', 'subject', 'expires'], certRows, 'no certificate configured')}</section>
<section class="wide"><h2>Recent warnings</h2>${table(['time (UTC)', 'level', 'component', 'message'], warningRows, 'none')}</section>
</main></body></html>
`;
}

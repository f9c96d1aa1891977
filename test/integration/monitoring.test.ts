/**
 * The monitoring files shipped under deploy/monitoring, checked with Debian's promtool:
 * the alert rules load (`promtool check rules`) and behave as their test series say
 * (`promtool test rules`), a deliberately loosened rule fails those tests, the example
 * prometheus.yml is valid (`promtool check config`), and every dashboard query is valid PromQL
 * over families sealflow declares. test/e2e/operator-surface.test.ts checks the same names
 * against a live probe's /metrics.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { F } from '../../src/observability/probe-metrics.js';
import { dashboardExpressions, monitoringDir, queriedMetricNames } from '../support/monitoring-files.js';
import { repoRoot, requireTool } from '../support/softflowd.js';

function promtool(args: readonly string[], cwd: string): { status: number | null; out: string } {
  const r = spawnSync('promtool', args, { cwd, encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

const havePromtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).error === undefined;
const scratch = mkdtempSync(path.join(tmpdir(), 'sealflow-monitoring-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('deploy/monitoring', () => {
  test('alert rules load and pass their unit tests (promtool check rules, promtool test rules)', (t) => {
    if (!requireTool(t, havePromtool, 'promtool (Debian package prometheus)')) return;
    const check = promtool(['check', 'rules', 'alerts.yml'], monitoringDir);
    assert.equal(check.status, 0, check.out);
    assert.match(check.out, /SUCCESS: 9 rules found/);
    const run = promtool(['test', 'rules', 'alerts.test.yml'], monitoringDir);
    assert.equal(run.status, 0, run.out);
    // Every alert has test series.
    const alerts = [...readFileSync(path.join(monitoringDir, 'alerts.yml'), 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    const tested = readFileSync(path.join(monitoringDir, 'alerts.test.yml'), 'utf8');
    for (const a of alerts) assert.match(tested, new RegExp(`alertname: ${String(a)}\\b`), `${String(a)} has a test`);
  });

  test('the rule tests can fail: a loosened threshold breaks them', (t) => {
    if (!requireTool(t, havePromtool, 'promtool (Debian package prometheus)')) return;
    const dir = path.join(scratch, 'loosened');
    cpSync(monitoringDir, dir, { recursive: true });
    const rules = readFileSync(path.join(dir, 'alerts.yml'), 'utf8');
    const loosened = rules.replace('(sealflow_certificate_not_after_timestamp_seconds - time()) < 14 * 86400', '(sealflow_certificate_not_after_timestamp_seconds - time()) < 7 * 86400');
    assert.notEqual(loosened, rules);
    writeFileSync(path.join(dir, 'alerts.yml'), loosened);
    const run = promtool(['test', 'rules', 'alerts.test.yml'], dir);
    assert.notEqual(run.status, 0);
    assert.match(run.out, /SealflowCertificateExpiring/);
  });

  test('the example prometheus.yml is valid (promtool check config)', (t) => {
    if (!requireTool(t, havePromtool, 'promtool (Debian package prometheus)')) return;
    const r = promtool(['check', 'config', 'prometheus.yml'], monitoringDir);
    assert.equal(r.status, 0, r.out);
  });

  test('the dashboard has the panels an operator needs, and every query is valid PromQL', (t) => {
    const dash = JSON.parse(readFileSync(path.join(monitoringDir, 'grafana-dashboard.json'), 'utf8')) as { uid: string; panels: { type: string; title: string; targets?: { expr: string }[] }[] };
    assert.equal(dash.uid, 'sealflow-probe');
    const titles = dash.panels.map((p) => p.title);
    for (const want of ['Active exporters', 'Records in / out', 'Loss by reason', 'Spool depth', 'Oldest record age', 'Quota used', 'Drain rate', 'Authentication failures', 'Certificate expiry']) {
      assert.ok(titles.includes(want), `panel "${want}"`);
    }
    for (const p of dash.panels) if (p.type !== 'row') assert.ok((p.targets?.length ?? 0) > 0, `panel ${p.title} has queries`);
    if (!requireTool(t, havePromtool, 'promtool (Debian package prometheus)')) return;
    // promtool parses PromQL in rule files: each dashboard query becomes a recording rule.
    const exprs = dashboardExpressions();
    const file = path.join(scratch, 'dashboard-queries.yml');
    writeFileSync(file, stringify({ groups: [{ name: 'dashboard', rules: exprs.map((expr, i) => ({ record: `dashboard:query${i}`, expr })) }] }));
    const r = promtool(['check', 'rules', file], scratch);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp(`SUCCESS: ${exprs.length} rules found`));
  });

  test('docs/monitoring.md lists every family with its type and labels, and no other', () => {
    const doc = readFileSync(path.join(repoRoot, 'docs/monitoring.md'), 'utf8');
    const rows = new Map([...doc.matchAll(/^\| `(sealflow_[a-z0-9_]+)` \| (counter|gauge) \| ([^|]*) \|/gm)].map((m) => [m[1], `${String(m[2])} ${String(m[3]).trim()}`]));
    for (const f of Object.values(F)) assert.equal(rows.get(f.name), `${f.type} ${f.labelNames.join(', ') || '—'}`, `${f.name} in docs/monitoring.md`);
    assert.equal(rows.size, Object.values(F).length);
  });

  test('every sealflow metric the dashboard and the rules query is declared', () => {
    const declared = new Set(Object.values(F).map((f) => f.name));
    for (const name of queriedMetricNames()) {
      if (name.startsWith('sealflow_process_')) continue; // prom-client's process metrics
      assert.ok(declared.has(name), `${name} is queried but not exported`);
    }
  });
});

/** The shipped monitoring files (deploy/monitoring) as tests read them. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './softflowd.js';

export const monitoringDir = path.join(repoRoot, 'deploy/monitoring');

interface Panel {
  readonly targets?: readonly { readonly expr: string }[];
}

/** Every query of the Grafana dashboard, with its variables replaced by values Prometheus accepts. */
export function dashboardExpressions(): string[] {
  const dash = JSON.parse(readFileSync(path.join(monitoringDir, 'grafana-dashboard.json'), 'utf8')) as { panels: Panel[] };
  return dash.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr.replaceAll('$__rate_interval', '5m').replaceAll('$instance', '.*')));
}

/** The sealflow_* metric names the dashboard and the alert rules query. */
export function queriedMetricNames(): Set<string> {
  const rules = readFileSync(path.join(monitoringDir, 'alerts.yml'), 'utf8');
  const text = [rules, ...dashboardExpressions()].join('\n');
  return new Set([...text.matchAll(/\bsealflow_[a-z0-9_]+/g)].map((m) => m[0]));
}

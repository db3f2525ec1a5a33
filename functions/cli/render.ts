/** Human output: a compact table, one line per check, coloured by status. */
import type { ActionOutcome, ActionReport, ActionsReport, CheckResult, HealthReport, MetricDatum, ReportEnvelope, Status } from '../contract/index.ts';

const COLORS: Record<Status, string> = { ok: '32', warning: '33', critical: '31', unknown: '35', skipped: '90' };

export function paint(text: string, status: Status, color: boolean): string {
  return color ? `\u001b[${COLORS[status]}m${text}\u001b[0m` : text;
}

function pad(text: string, width: number): string {
  return text.length >= width ? text : text + ' '.repeat(width - text.length);
}

function formatValue(c: CheckResult): string {
  if (c.value === null) return '-';
  return Number.isInteger(c.value) ? String(c.value) : c.value.toFixed(2);
}

export function renderHealthReport(r: HealthReport, color: boolean, runbookBase = ''): string {
  const lines: string[] = [];
  lines.push(`attempt-ops check · target ${r.target} · scope ${r.scope} · ${r.startedAt} · ${r.durationMs} ms`);
  lines.push('');
  lines.push(`${pad('STATUS', 9)} ${pad('CHECK', 15)} ${pad('SEV', 3)} ${pad('VALUE', 8)} MESSAGE`);
  for (const c of r.checks) {
    const status = paint(pad(c.status === 'ok' || c.status === 'skipped' ? c.status : c.status.toUpperCase(), 9), c.status, color);
    let line = `${status} ${pad(c.name, 15)} ${pad(c.severity, 3)} ${pad(formatValue(c), 8)} ${c.message}`;
    if (c.status !== 'ok' && c.status !== 'skipped') line += `\n${' '.repeat(38)}runbook: ${runbookBase}${c.runbook}`;
    lines.push(line);
  }
  lines.push('');
  lines.push(summaryLine(r, r.checks.map((c) => c.status), color));
  return `${lines.join('\n')}\n`;
}

export function summaryLine(r: ReportEnvelope, statuses: Status[], color: boolean): string {
  const counts = new Map<Status, number>();
  for (const s of statuses) counts.set(s, (counts.get(s) ?? 0) + 1);
  const parts = (['critical', 'warning', 'unknown', 'ok', 'skipped'] as const).filter((s) => counts.get(s)).map((s) => `${counts.get(s)} ${s}`);
  return `status: ${paint(r.status.toUpperCase(), r.status, color)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

const OUTCOME_STATUS: Record<ActionOutcome, Status> = { done: 'ok', planned: 'warning', exists: 'ok', skipped: 'skipped', blocked: 'critical' };

function jobHeader(r: ActionsReport, command: string): string {
  return `attempt-ops ${command} · target ${r.target} · ${r.startedAt} · ${r.durationMs} ms${r.dryRun ? ' · dry run' : ''}`;
}

/** One line per action, its SQL beneath when there is any, then the notes and the status line. */
export function renderActionsReport(r: ActionsReport, command: string, color: boolean): string {
  const lines: string[] = [jobHeader(r, command), ''];
  const objectWidth = Math.min(44, Math.max(6, ...r.actions.map((a) => a.object.length)));
  const actionWidth = Math.max(6, ...r.actions.map((a) => a.action.length));
  lines.push(`${pad('OUTCOME', 8)} ${pad('OBJECT', objectWidth)} ${pad('ACTION', actionWidth)} ${pad('MS', 6)} MESSAGE`);
  for (const a of r.actions) {
    const outcome = paint(pad(a.outcome, 8), OUTCOME_STATUS[a.outcome], color);
    lines.push(`${outcome} ${pad(a.object, objectWidth)} ${pad(a.action, actionWidth)} ${pad(a.durationMs === undefined ? '-' : String(a.durationMs), 6)} ${a.message}`);
    if (a.sql && (a.outcome === 'planned' || a.outcome === 'done')) {
      for (const sql of a.sql) lines.push(`${' '.repeat(9)}${sql.replace(/\s*\n\s*/g, ' ')}`);
    }
  }
  for (const note of r.notes) lines.push(`note: ${note}`);
  lines.push('');
  lines.push(actionSummaryLine(r, color));
  return `${lines.join('\n')}\n`;
}

/** The metrics a run collected, one per line, then what it could not collect and the status line. */
export function renderMetricsReport(r: ActionsReport, command: string, color: boolean): string {
  const lines: string[] = [jobHeader(r, command), ''];
  const label = (m: MetricDatum) => {
    const extra = Object.entries(m.dimensions).filter(([k]) => k !== 'Database').map(([k, v]) => `${k}=${v}`);
    return extra.length ? `${m.name}{${extra.join(',')}}` : m.name;
  };
  const width = Math.max(6, ...r.metrics.map((m) => label(m).length));
  lines.push(`${pad('METRIC', width)} ${pad('VALUE', 10)} UNIT`);
  for (const m of r.metrics) lines.push(`${pad(label(m), width)} ${pad(Number.isInteger(m.value) ? String(m.value) : m.value.toFixed(2), 10)} ${m.unit}`);
  // A note that already says why a metric was skipped stands for that metric's line.
  const said = (a: ActionReport) => r.notes.some((n) => n.includes(a.message));
  for (const a of r.actions.filter((x) => x.outcome !== 'done' && !said(x))) {
    lines.push(`${paint(pad(a.outcome, 8), OUTCOME_STATUS[a.outcome], color)} ${a.object}: ${a.message}`);
  }
  for (const note of r.notes) lines.push(`note: ${note}`);
  lines.push('');
  lines.push(actionSummaryLine(r, color));
  return `${lines.join('\n')}\n`;
}

export function actionSummaryLine(r: ActionsReport, color: boolean): string {
  const counts = new Map<ActionOutcome, number>();
  for (const a of r.actions) counts.set(a.outcome, (counts.get(a.outcome) ?? 0) + 1);
  const parts = [...counts].map(([o, n]) => `${n} ${o}`);
  return `status: ${paint(r.status.toUpperCase(), r.status, color)}${parts.length ? ` (${parts.join(', ')})` : ''}`;
}

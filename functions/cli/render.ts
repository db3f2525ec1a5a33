/** Human output: a compact table, one line per check, coloured by status. */
import type { ActionOutcome, ActionReport, ActionsReport, CheckResult, DiagnoseReport, HealthReport, MetricDatum, RemediateReport, ReportEnvelope, Status } from '../contract/index.ts';

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

const OUTCOME_STATUS: Record<ActionOutcome, Status> = { done: 'ok', planned: 'warning', exists: 'ok', skipped: 'skipped', blocked: 'critical', failed: 'warning' };

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

/** A value from a finding's data on one line: samples, pids and plans stay readable in a terminal. */
function oneLineJson(value: unknown, max = 200): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The data lists worth printing under a finding that is not ok; everything is in --json. */
const FINDING_LISTS = ['samples', 'victims', 'blockers', 'warningSigns', 'queries', 'differences', 'missingQuestionIds'] as const;

/** `diagnose`: one line per finding, the samples of those that are not ok, then what to run next. */
export function renderDiagnoseReport(r: DiagnoseReport, color: boolean, runbookBase = ''): string {
  const lines: string[] = [`attempt-ops diagnose ${r.incident} · target ${r.target} · ${r.startedAt} · ${r.durationMs} ms`, `runbook: ${runbookBase}${r.runbook}`, ''];
  const width = Math.max(7, ...r.findings.map((f) => f.name.length));
  lines.push(`${pad('STATUS', 9)} ${pad('FINDING', width)} MESSAGE`);
  for (const f of r.findings) {
    const status = paint(pad(f.status === 'ok' ? f.status : f.status.toUpperCase(), 9), f.status, color);
    lines.push(`${status} ${pad(f.name, width)} ${f.message}`);
    if (f.status === 'ok') continue;
    for (const key of FINDING_LISTS) {
      const list = f.data[key];
      if (!Array.isArray(list) || list.length === 0) continue;
      lines.push(`${' '.repeat(10)}${key}:`);
      for (const item of list.slice(0, 10)) lines.push(`${' '.repeat(12)}${oneLineJson(item)}`);
    }
  }
  if (r.next.length > 0) {
    lines.push('', 'next:');
    for (const n of r.next) lines.push(`  ${n}`);
  }
  lines.push('', summaryLine(r, r.findings.map((f) => f.status), color));
  return `${lines.join('\n')}\n`;
}

const REMEDIATION_OUTCOME: Record<ActionOutcome, Status> = { done: 'ok', planned: 'warning', exists: 'ok', skipped: 'skipped', blocked: 'critical', failed: 'warning' };

/** `remediate`: each action with what it touches and its exact SQL, the verification, the audit row. */
export function renderRemediateReport(r: RemediateReport, color: boolean): string {
  const title = `remediate ${r.fix}${r.restore ? ' --restore' : ''}`;
  const lines: string[] = [`attempt-ops ${title} · target ${r.target} · ${r.startedAt} · ${r.durationMs} ms · ${r.apply ? 'applied' : 'dry run'} · by ${r.invokedBy}`, ''];
  if (r.actions.length === 0) lines.push('no action');
  for (const a of r.actions) {
    const touched = [a.rows !== undefined ? `${a.rows} row(s)` : '', a.pids?.length ? `pid ${a.pids.join(', ')}` : ''].filter(Boolean).join(', ');
    const ms = a.durationMs === undefined ? '' : ` (${a.durationMs} ms)`;
    lines.push(`${paint(pad(a.outcome, 8), REMEDIATION_OUTCOME[a.outcome], color)} ${a.action} ${a.object}${touched ? ` [${touched}]` : ''}${ms}: ${a.message}`);
    if (a.sql && a.outcome !== 'exists' && a.outcome !== 'skipped') for (const sql of a.sql) lines.push(`${' '.repeat(9)}${sql.replace(/\s*\n\s*/g, ' ')}`);
  }
  if (r.verification.length > 0) {
    lines.push('', 'verification:');
    for (const c of r.verification) {
      lines.push(`  ${paint(pad(c.status === 'ok' || c.status === 'skipped' ? c.status : c.status.toUpperCase(), 9), c.status, color)} ${pad(c.name, 15)} ${c.message}`);
    }
  }
  if (r.audit) lines.push('', `audit: ${r.audit.table} id ${r.audit.id}`);
  for (const note of r.notes) lines.push(`note: ${note}`);
  lines.push('', `status: ${paint(r.status.toUpperCase(), r.status, color)}`);
  return `${lines.join('\n')}\n`;
}

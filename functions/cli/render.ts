/** Human output: a compact table, one line per check, coloured by status. */
import type { CheckResult, HealthReport, ReportEnvelope, Status } from '../contract/index.ts';

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

/** The JSON report envelope every job prints and returns (CONTRACT.md section 3). */
import type { CheckName, JobName, Scope, Severity, Status } from './vocabulary.ts';
import type { MetricDatum } from './metrics.ts';

export const REPORT_VERSION = 1;

export interface CheckResult {
  name: CheckName;
  severity: Severity;
  status: Status;
  value: number | null;
  threshold: number | null;
  message: string;
  runbook: string;
  durationMs: number;
  details: unknown[];
}

export interface ReportEnvelope {
  version: typeof REPORT_VERSION;
  job: JobName;
  target: string;
  startedAt: string;
  durationMs: number;
  status: Exclude<Status, 'skipped'>;
  metrics: MetricDatum[];
}

export interface HealthReport extends ReportEnvelope {
  job: 'health-check';
  scope: Scope;
  checks: CheckResult[];
}

const RANK: Record<Status, number> = { ok: 0, skipped: 0, unknown: 1, warning: 2, critical: 3 };

/** The worst status wins; a check that could not tell is worse than ok but better than a failure. */
export function overallStatus(statuses: Iterable<Status>): ReportEnvelope['status'] {
  let worst: Status = 'ok';
  for (const s of statuses) if (RANK[s] > RANK[worst]) worst = s;
  return worst === 'skipped' ? 'ok' : worst;
}

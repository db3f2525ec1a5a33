/** The JSON report envelope every job prints and returns (CONTRACT.md section 3). */
import type { CheckName, Fix, Incident, JobName, RefreshMode, RunbookAnchor, Scope, Severity, Status } from './vocabulary.ts';
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

/**
 * What a maintenance job did, or would do, to one object. `planned` is a dry run's "would do";
 * `exists` is bootstrap's "nothing to do"; `blocked` is a step that cannot run until something
 * else is fixed (the message says what).
 */
export const ACTION_OUTCOMES = ['done', 'planned', 'exists', 'skipped', 'blocked', 'failed'] as const;
export type ActionOutcome = (typeof ACTION_OUTCOMES)[number];

export interface ActionReport {
  /** The object acted on, schema-qualified where it has a schema: `public.exam_results`. */
  object: string;
  /** What is done to it: `analyze`, `refresh`, `create`, `grant`, `recreate`. */
  action: string;
  outcome: ActionOutcome;
  /** Why it was done or skipped, in one line. */
  message: string;
  /** The exact statement(s) run, or that would run. */
  sql?: string[];
  durationMs?: number;
  before?: Record<string, unknown>;
  after?: Record<string, unknown>;
}

/** The body the maintenance jobs share: what they did, and anything worth a line that is not an action. */
export interface ActionsReport extends ReportEnvelope {
  /** Nothing was changed and nothing will be published. */
  dryRun: boolean;
  actions: ActionReport[];
  notes: string[];
}

export interface AnalyzeReport extends ActionsReport {
  job: 'analyze';
  force: boolean;
}

export interface RefreshReport extends ActionsReport {
  job: 'refresh-mv';
  /** The mode asked for. The action says which refresh actually ran. */
  mode: RefreshMode;
}

export interface BootstrapReport extends ActionsReport {
  job: 'bootstrap';
  apply: boolean;
}

export interface PublishMetricsReport extends ActionsReport {
  job: 'publish-metrics';
}

/**
 * One thing a runbook diagnosis looked at. `status` is what the matching health check would say
 * about it (its severity decides warning or critical); `data` holds what the runbook's own query
 * would have shown: counts, sample rows, pids.
 */
export interface Finding {
  /** Stable key: `view`, `grants`, `plan`, `blocking`, `null_required`, ... */
  name: string;
  status: Exclude<Status, 'skipped'>;
  /** The health check whose severity sets the status, when one watches the same thing. */
  check: CheckName | null;
  message: string;
  data: Record<string, unknown>;
}

export interface DiagnoseReport extends ReportEnvelope {
  job: 'ops';
  action: 'diagnose';
  incident: Incident;
  runbook: RunbookAnchor;
  findings: Finding[];
  /** Commands that repair or verify what was found, most useful first. */
  next: string[];
}

/** A remediation step: what it touches, and how many rows or which backends. */
export interface RemediationAction extends ActionReport {
  rows?: number;
  pids?: number[];
}

export interface RemediateReport extends ActionsReport {
  job: 'ops';
  action: 'remediate';
  fix: Fix;
  apply: boolean;
  /** quarantine-duplicates only: put a quarantined batch back (the undo). */
  restore: boolean;
  actions: RemediationAction[];
  /** The matching health checks, run (scope full) after an apply; empty on a dry run. */
  verification: CheckResult[];
  /** Who asked: the OS user of the CLI, or the Lambda caller. */
  invokedBy: string;
  /** The audit row written by an apply. */
  audit: { table: string; id: number } | null;
}

export type OpsReport = DiagnoseReport | RemediateReport;

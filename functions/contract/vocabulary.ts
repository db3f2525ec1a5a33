/**
 * The shared vocabulary of attempt-ops (CONTRACT.md sections 3 to 6). No I/O here: the CDK stack
 * imports this module too, so an alarm can only ever watch a name that a job emits.
 */

export const SEVERITIES = ['P0', 'P1', 'P2', 'P3'] as const;
export type Severity = (typeof SEVERITIES)[number];

export const STATUSES = ['ok', 'warning', 'critical', 'unknown', 'skipped'] as const;
export type Status = (typeof STATUSES)[number];

/** P0 and P1 failures page at high urgency, so they are critical; P2 and P3 are warnings. */
export function failureStatus(severity: Severity): 'critical' | 'warning' {
  return severity === 'P0' || severity === 'P1' ? 'critical' : 'warning';
}

/** Nagios exit codes, the convention check_postgres users already know. */
export const EXIT_CODES = { ok: 0, warning: 1, critical: 2, unknown: 3 } as const;

export const DEFAULT_NAMESPACE = 'AttemptView';
export const DEFAULT_TARGET = 'local';
export const DEFAULT_APP_ROLE = 'seedtest_user';
export const DEFAULT_SCHEMA = 'public';
/** Our own schema in the watched database: the run audit table, the quarantine table. */
export const OPS_SCHEMA = 'attempt_ops';

export const JOBS = ['health-check', 'analyze', 'refresh-mv', 'publish-metrics', 'bootstrap', 'ops'] as const;
export type JobName = (typeof JOBS)[number];

export const CHECK_NAMES = [
  'view_exists',
  'view_schema',
  'view_queryable',
  'permissions',
  'required_nulls',
  'orphan_results',
  'duplicate_ids',
  'freshness',
  'table_stats',
  'blocking',
  'idle_in_transaction',
  'long_running',
  'connections',
  'query_latency',
  'mv_staleness',
  'capture',
  'mv_fidelity',
  'attempt_no_ties',
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** The checks whose cost grows with the data; they honour the incremental/full scope. */
export const DATA_QUALITY_CHECKS: readonly CheckName[] = [
  'view_queryable',
  'required_nulls',
  'orphan_results',
  'duplicate_ids',
  'attempt_no_ties',
];

export const SCOPES = ['incremental', 'full'] as const;
export type Scope = (typeof SCOPES)[number];

export const INCIDENTS = ['view-missing', 'permission-denied', 'slow-queries', 'data-quality', 'duplicates'] as const;
export type Incident = (typeof INCIDENTS)[number];

export const FIXES = [
  'recreate-view',
  'grant-select',
  'analyze',
  'cancel-long-running',
  'quarantine-duplicates',
  'create-indexes',
] as const;
export type Fix = (typeof FIXES)[number];

export const ANALYZE_TABLES = ['exam_results', 'questions', 'attempt_mv'] as const;
export type AnalyzeTable = (typeof ANALYZE_TABLES)[number];

export const REFRESH_MODES = ['concurrent', 'full', 'incremental'] as const;
export type RefreshMode = (typeof REFRESH_MODES)[number];

/**
 * Anchors into ../shared/runbook/attempt-view-runbook.md, as GitHub renders its headings.
 * Reports and alarm descriptions append these to the configured runbook URL.
 */
export const RUNBOOK = {
  viewMissing: '#1-view-missing-p0',
  permissionDenied: '#2-query-failure---permission-denied-p1',
  slowQueries: '#3-query-timeout--slow-performance-p1p2',
  dataQuality: '#4-data-quality-issues-p1',
  determinism: '#5-determinism-violation-p2',
  viewHealth: '#check-view-health',
  mvRefresh: '#manual-view-refresh-if-mv-in-future',
  monitoring: '#-monitoring--alerts',
} as const;
export type RunbookAnchor = (typeof RUNBOOK)[keyof typeof RUNBOOK];

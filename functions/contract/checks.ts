/**
 * What each health check is (CONTRACT.md section 3): severity, runbook section, metric and the
 * threshold it fails past. The checks in functions/checks/ and the alarms in lib/ both read these.
 */
import type { CheckName, RunbookAnchor, Severity } from './vocabulary.ts';
import { RUNBOOK } from './vocabulary.ts';
import type { MetricName } from './metrics.ts';

export const THRESHOLDS = {
  /** view_exists fails below this (the metric is 1/0). */
  viewExists: 1,
  schemaDrift: 0,
  poisonRows: 0,
  permissionMissing: 0,
  nullRequiredFields: 0,
  orphanResults: 0,
  duplicateIds: 0,
  /** Our choice: a day without a new result is worth a look, not a page. */
  latestAgeSeconds: 24 * 3600,
  /** Runbook section 3: "last_analyze is old (> 7 days)". */
  statsAgeHours: 7 * 24,
  /** Runbook section 3: "n_dead_tup high (> 10%)", as a ratio. */
  deadTupleRatio: 0.1,
  /** Our choice: rows modified since the last (auto)analyze over 20 % of the live rows. */
  modifiedRatio: 0.2,
  /**
   * Our choice, as autovacuum's analyze and vacuum thresholds: the modified and dead-tuple ratios
   * are taken over at least this many rows, so a tiny table warns only past 200 modified rows or
   * 100 dead tuples, not on a handful.
   */
  modifiedRatioMinRows: 1000,
  /** Our choice: a lock wait this long on the view's relations is an incident. */
  blockedWaitSeconds: 30,
  blockedQueries: 0,
  /** Our choice: a transaction left idle this long while holding a lock on a watched relation. */
  idleInTransactionSeconds: 60,
  idleInTransactionSessions: 0,
  /** Runbook section 3: queries on attempt active longer than 5 minutes. */
  longRunningSeconds: 5 * 60,
  longRunningQueries: 0,
  /** Runbook "Monitoring & Alerts": DatabaseConnections > 100 (baseline 50). */
  connections: 100,
  /** Runbook section 3: p99 > 2000 ms is critical. */
  latencyCriticalMs: 2000,
  /** Twice the runbook's 200 ms baseline: degraded, not yet down. */
  latencyWarningMs: 400,
  latencyBaselineMs: 200,
  /** The runbook refreshes attempt_mv hourly; two missed refreshes is stale. */
  mvStalenessSeconds: 2 * 3600,
  /** Any reason not to trust the change capture is a P1: the copy may silently diverge. */
  captureProblems: 0,
  /** Any row where attempt_mv differs from the view (ties compared as multisets). */
  mvDivergentRows: 0,
  /** Any (raw student, item) pair whose attempt_no the view leaves to chance. */
  noTieGroups: 0,
  /** Runbook "Monitoring & Alerts": CPUUtilization > 80 % for 5 min. */
  cpuPercent: 80,
  cpuMinutes: 5,
} as const;

export interface CheckSpec {
  readonly name: CheckName;
  readonly severity: Severity;
  readonly runbook: RunbookAnchor;
  /** The metric that carries the check's value. */
  readonly metric: MetricName;
  /** Other metrics the check emits. */
  readonly extraMetrics?: readonly MetricName[];
  /** The check fails when value > threshold (or < threshold for view_exists). */
  readonly threshold: number;
  readonly comparison: 'greater' | 'less';
  readonly summary: string;
}

const spec = (s: CheckSpec): CheckSpec => s;

export const CHECK_SPECS: Record<CheckName, CheckSpec> = {
  view_exists: spec({
    name: 'view_exists', severity: 'P0', runbook: RUNBOOK.viewMissing, metric: 'attempt_view_exists',
    threshold: THRESHOLDS.viewExists, comparison: 'less', summary: 'the attempt view exists',
  }),
  view_schema: spec({
    name: 'view_schema', severity: 'P0', runbook: RUNBOOK.viewMissing, metric: 'attempt_view_schema_drift',
    threshold: THRESHOLDS.schemaDrift, comparison: 'greater', summary: 'the view matches the V1 schema lock',
  }),
  view_queryable: spec({
    name: 'view_queryable', severity: 'P0', runbook: RUNBOOK.dataQuality, metric: 'attempt_poison_rows',
    threshold: THRESHOLDS.poisonRows, comparison: 'greater', summary: 'no source row makes the view fail',
  }),
  permissions: spec({
    name: 'permissions', severity: 'P1', runbook: RUNBOOK.permissionDenied, metric: 'attempt_permission_missing',
    threshold: THRESHOLDS.permissionMissing, comparison: 'greater', summary: 'the app role may SELECT what it needs',
  }),
  required_nulls: spec({
    name: 'required_nulls', severity: 'P1', runbook: RUNBOOK.dataQuality, metric: 'attempt_null_required_fields',
    threshold: THRESHOLDS.nullRequiredFields, comparison: 'greater', summary: 'no NULL in a required column',
  }),
  orphan_results: spec({
    name: 'orphan_results', severity: 'P1', runbook: RUNBOOK.dataQuality, metric: 'attempt_orphan_results',
    threshold: THRESHOLDS.orphanResults, comparison: 'greater', summary: 'every questionId has a question',
  }),
  duplicate_ids: spec({
    name: 'duplicate_ids', severity: 'P2', runbook: RUNBOOK.determinism, metric: 'attempt_duplicate_ids',
    threshold: THRESHOLDS.duplicateIds, comparison: 'greater', summary: 'attempt ids are unique',
  }),
  freshness: spec({
    name: 'freshness', severity: 'P3', runbook: RUNBOOK.viewHealth, metric: 'attempt_latest_age_seconds',
    extraMetrics: ['attempt_row_count'], threshold: THRESHOLDS.latestAgeSeconds, comparison: 'greater',
    summary: 'recent results arrive',
  }),
  table_stats: spec({
    name: 'table_stats', severity: 'P2', runbook: RUNBOOK.slowQueries, metric: 'table_stats_age_hours',
    extraMetrics: ['table_modified_ratio', 'table_dead_tuple_ratio'], threshold: THRESHOLDS.statsAgeHours, comparison: 'greater',
    summary: 'statistics are fresh and tables are not bloated',
  }),
  blocking: spec({
    name: 'blocking', severity: 'P1', runbook: RUNBOOK.slowQueries, metric: 'blocked_queries',
    threshold: THRESHOLDS.blockedQueries, comparison: 'greater', summary: 'no query waits long on a lock',
  }),
  idle_in_transaction: spec({
    name: 'idle_in_transaction', severity: 'P2', runbook: RUNBOOK.slowQueries, metric: 'idle_in_transaction_sessions',
    threshold: THRESHOLDS.idleInTransactionSessions, comparison: 'greater', summary: 'no transaction sits idle holding locks',
  }),
  long_running: spec({
    name: 'long_running', severity: 'P2', runbook: RUNBOOK.slowQueries, metric: 'long_running_queries',
    threshold: THRESHOLDS.longRunningQueries, comparison: 'greater', summary: 'no query on attempt runs > 5 min',
  }),
  connections: spec({
    name: 'connections', severity: 'P1', runbook: RUNBOOK.monitoring, metric: 'database_connections',
    threshold: THRESHOLDS.connections, comparison: 'greater', summary: 'connections stay under the limit',
  }),
  query_latency: spec({
    name: 'query_latency', severity: 'P1', runbook: RUNBOOK.slowQueries, metric: 'attempt_query_p99_latency',
    threshold: THRESHOLDS.latencyCriticalMs, comparison: 'greater', summary: "section 3's query is fast",
  }),
  mv_staleness: spec({
    name: 'mv_staleness', severity: 'P2', runbook: RUNBOOK.mvRefresh, metric: 'attempt_mv_staleness_seconds',
    threshold: THRESHOLDS.mvStalenessSeconds, comparison: 'greater', summary: 'attempt_mv is refreshed',
  }),
  capture: spec({
    name: 'capture', severity: 'P1', runbook: RUNBOOK.mvRefresh, metric: 'attempt_capture_problems',
    threshold: THRESHOLDS.captureProblems, comparison: 'greater', summary: 'the change capture sees every write',
  }),
  mv_fidelity: spec({
    name: 'mv_fidelity', severity: 'P1', runbook: RUNBOOK.mvRefresh, metric: 'attempt_mv_divergent_rows',
    threshold: THRESHOLDS.mvDivergentRows, comparison: 'greater', summary: 'attempt_mv equals the view',
  }),
  attempt_no_ties: spec({
    name: 'attempt_no_ties', severity: 'P2', runbook: RUNBOOK.determinism, metric: 'attempt_no_tie_groups',
    threshold: THRESHOLDS.noTieGroups, comparison: 'greater', summary: 'attempt_no is determined by the view',
  }),
};

/** The V1 schema lock: the view's columns, in order, with format_type() names. */
export const V1_COLUMNS: readonly { readonly name: string; readonly type: string }[] = [
  { name: 'id', type: 'bigint' },
  { name: 'exam_result_id', type: 'bigint' },
  { name: 'student_id', type: 'uuid' },
  { name: 'item_id', type: 'integer' },
  { name: 'question_id', type: 'integer' },
  { name: 'question_text', type: 'text' },
  { name: 'correct_answer', type: 'text' },
  { name: 'student_answer', type: 'text' },
  { name: 'is_correct', type: 'integer' },
  { name: 'response_time_ms', type: 'integer' },
  { name: 'completed_at', type: 'timestamp with time zone' },
  { name: 'attempt_no', type: 'bigint' },
  { name: 'tags', type: 'text[]' },
];

export const REQUIRED_COLUMNS = ['id', 'student_id', 'item_id', 'question_id', 'is_correct'] as const;

/** Metric names, units and dimensions (CONTRACT.md section 4). */

export const METRIC_UNITS = ['Count', 'Milliseconds', 'Seconds', 'None'] as const;
export type MetricUnit = (typeof METRIC_UNITS)[number];

export const DIMENSION_DATABASE = 'Database';
export const DIMENSION_TABLE = 'Table';
export const DIMENSION_JOB = 'Job';

export interface MetricSpec {
  readonly unit: MetricUnit;
  /** Dimensions besides Database (every custom metric carries Database, except job_success). */
  readonly extraDimensions?: readonly string[];
  readonly description: string;
}

export const METRICS = {
  attempt_view_exists: { unit: 'Count', description: '1 when the attempt view exists, else 0' },
  attempt_view_schema_drift: { unit: 'Count', description: 'columns that differ from the V1 lock' },
  attempt_poison_rows: { unit: 'Count', description: 'source rows that make every query of the view fail' },
  attempt_permission_missing: { unit: 'Count', description: 'SELECT grants the app role lacks' },
  attempt_null_required_fields: { unit: 'Count', description: 'view rows with a NULL required field' },
  attempt_orphan_results: { unit: 'Count', description: 'results whose questionId has no question' },
  attempt_duplicate_ids: { unit: 'Count', description: 'surplus rows sharing an attempt id' },
  attempt_latest_age_seconds: { unit: 'Seconds', description: 'age of the newest completed_at' },
  attempt_row_count: { unit: 'Count', description: 'rows in the view (an estimate in incremental scope)' },
  table_stats_age_hours: { unit: 'None', extraDimensions: ['Table'], description: 'hours since the last (auto)analyze' },
  table_dead_tuple_ratio: { unit: 'None', extraDimensions: ['Table'], description: 'dead / (live + dead) tuples, over at least 1,000 tuples, 0 to 1' },
  table_modified_ratio: { unit: 'None', extraDimensions: ['Table'], description: 'rows modified since the last (auto)analyze / live rows, 0 and up' },
  idle_in_transaction_sessions: { unit: 'Count', description: 'sessions idle in a transaction > 60 s holding a lock on a watched relation' },
  blocked_queries: { unit: 'Count', description: 'sessions waiting > 30 s for a lock on the watched relations' },
  long_running_queries: { unit: 'Count', description: 'queries on attempt running > 5 min' },
  database_connections: { unit: 'Count', description: 'client connections' },
  attempt_query_p99_latency: { unit: 'Milliseconds', description: "p99 of runbook section 3's query" },
  attempt_mv_staleness_seconds: { unit: 'Seconds', description: 'seconds since the last successful refresh' },
  attempt_capture_problems: { unit: 'Count', description: 'reasons the change capture cannot be trusted (missing, disabled, a table not covered, DDL)' },
  attempt_mv_divergent_rows: { unit: 'Count', description: 'sampled attempt_mv rows that differ from the view (ties as multisets)' },
  attempt_no_tie_groups: { unit: 'Count', description: '(student, item) pairs with rows sharing a completed_at: attempt_no not fixed' },
  attempt_query_count: { unit: 'Count', description: 'queries on attempt since the previous sample (pg_stat_statements)' },
  attempt_query_mean_ms: { unit: 'Milliseconds', description: 'mean execution time of those queries' },
  analyze_duration_ms: { unit: 'Milliseconds', extraDimensions: ['Table'], description: 'ANALYZE duration' },
  attempt_mv_refresh_duration_ms: { unit: 'Milliseconds', description: 'attempt_mv refresh duration' },
  attempt_mv_row_count: { unit: 'Count', description: 'rows in attempt_mv after a refresh' },
  job_success: { unit: 'Count', description: '1 when a job run succeeded, 0 when it failed (dimension Job)' },
} as const satisfies Record<string, MetricSpec>;

export type MetricName = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];

export interface MetricDatum {
  name: MetricName;
  value: number;
  unit: MetricUnit;
  dimensions: Record<string, string>;
}

export function datum(name: MetricName, value: number, target: string, extra: Record<string, string> = {}): MetricDatum {
  return { name, value, unit: METRICS[name].unit, dimensions: { [DIMENSION_DATABASE]: target, ...extra } };
}

/** The heartbeat every job publishes; alarms watch it for missing data. */
export function jobSuccessDatum(job: string, ok: boolean, target: string): MetricDatum {
  return { name: 'job_success', value: ok ? 1 : 0, unit: 'Count', dimensions: { [DIMENSION_DATABASE]: target, [DIMENSION_JOB]: job } };
}

/** The shape every health check shares: its contract spec, how it queries, how it judges. */
import type { CheckSpec, MetricDatum, Scope, Status } from '../contract/index.ts';

export interface Queryable {
  query<R extends Record<string, unknown> = Record<string, unknown>>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}

/** What the job learns once, before the checks run, so each check need not ask again. */
export interface DatabaseFacts {
  serverVersion: number;
  /** relkind of schema.attempt, or null when absent. */
  attemptKind: string | null;
  attemptMv: { exists: boolean; populated: boolean };
  /** attempt_ops.job_runs exists (bootstrap ran). */
  hasJobRuns: boolean;
}

/** Thresholds a check reads; tests and config may tighten the time-based ones. */
export interface CheckSettings {
  blockedWaitSeconds: number;
  longRunningSeconds: number;
  latencySamples: number;
  /** idle_in_transaction's limit (s); THRESHOLDS.idleInTransactionSeconds when absent. */
  idleInTransactionSeconds?: number;
}

/** What the change log says changed: the data-quality checks read these rows, and only these. */
export interface ChangeScope {
  /** Raw exam_results.student_id values (not NULL). */
  students: string[];
  /** NULL is a student too: its rows changed. */
  nullStudent: boolean;
  /** Questions whose id, item, text, answer or tags changed: every result pointing at them. */
  questionIds: number[];
  /** Change-log batches read. */
  batches: number;
}

export interface CheckContext {
  db: Queryable;
  schema: string;
  appRole: string;
  target: string;
  scope: Scope;
  /** Data-quality checks look at rows with completed_at >= since; null means every row. */
  since: Date | null;
  /**
   * With the change capture: the rows changed since the last run that measured them, however old
   * (their raw students, and the results of changed questions). It replaces `since` when set.
   */
  changes?: ChangeScope | null;
  /** Why the checks read recent rows although incremental scope asked for the changed ones. */
  scopeFallback?: string | null;
  /** With `since`: the open findings' students, re-read whatever their rows' age. */
  alsoStudents?: { students: string[]; nullStudent: boolean } | null;
  now: Date;
  facts: DatabaseFacts;
  settings: CheckSettings;
}

export interface Measurement {
  value: number | null;
  message: string;
  details?: unknown[];
  /** Set only where the check judges for itself (skipped, or two warning levels). */
  status?: Status;
  /** Metrics besides the check's own (its own is emitted from value). */
  metrics?: MetricDatum[];
  /** The threshold the report shows, where the value is not the spec's metric. */
  threshold?: number | null;
  /** false when the value is not the check's metric (e.g. table_stats reports per table). */
  emitValue?: boolean;
  /** Data-quality checks: what each raw student (null: the NULL student) adds to the value, remembered as open findings. */
  found?: [string | null, number][];
}

export interface HealthCheck {
  spec: CheckSpec;
  /** statement_timeout for this check's transaction; the job default when absent. */
  timeoutMs?: number;
  /** lock_timeout for this check's transaction; the job default when absent. */
  lockTimeoutMs?: number;
  measure(ctx: CheckContext): Promise<Measurement>;
}

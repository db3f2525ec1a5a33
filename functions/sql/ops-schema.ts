/**
 * Our own objects in the watched database: the attempt_ops schema with its run-audit table (written
 * only through the functions of functions/sql/audit.ts), and
 * attempt_mv with the runbook's indexes. Idempotent statements, so bootstrap can run on every deploy.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';
import { auditFunctionsSql } from './audit.ts';
import { ownSessionsSql } from './own-sessions.ts';

export const JOB_RUNS = `${quoteIdent(OPS_SCHEMA)}.job_runs`;
/** publish-metrics keeps its previous pg_stat_statements sample here, to publish deltas. */
export const METRIC_STATE = `${quoteIdent(OPS_SCHEMA)}.metric_state`;

export const ATTEMPT_MV_ID_INDEX = 'attempt_mv_id_idx';
export const ATTEMPT_MV_STUDENT_INDEX = 'attempt_mv_student_completed_idx';
export const COMPLETED_AT_INDEX = 'exam_results_completed_at_idx';

export function opsSchemaCreateSql(): string {
  return `CREATE SCHEMA IF NOT EXISTS ${quoteIdent(OPS_SCHEMA)}`;
}

export function jobRunsTableSql(): string {
  return `CREATE TABLE IF NOT EXISTS ${JOB_RUNS} (
  id          bigserial PRIMARY KEY,
  job         text NOT NULL,
  target      text NOT NULL DEFAULT 'local',
  started_at  timestamptz NOT NULL,
  finished_at timestamptz,
  mode        text,
  rows        bigint,
  outcome     text NOT NULL CHECK (outcome IN ('running', 'success', 'failure', 'skipped')),
  error       text,
  invoked_by  text NOT NULL DEFAULT current_user,
  details     jsonb NOT NULL DEFAULT '{}'::jsonb
)`;
}

export function jobRunsIndexSql(): string {
  return `CREATE INDEX IF NOT EXISTS job_runs_job_started_idx ON ${JOB_RUNS} (job, started_at DESC)`;
}

/**
 * One row per sampled source: the cumulative counters seen last time, and the stats_reset they
 * count from, so a counter reset is told apart from a quiet minute.
 */
export function metricStateTableSql(): string {
  return `CREATE TABLE IF NOT EXISTS ${METRIC_STATE} (
  name            text PRIMARY KEY,
  sampled_at      timestamptz NOT NULL,
  calls           numeric NOT NULL,
  total_exec_ms   double precision NOT NULL,
  stats_reset     timestamptz,
  details         jsonb NOT NULL DEFAULT '{}'::jsonb
)`;
}

/** The schema, the run audit and the functions every audit row is written through (functions/sql/audit.ts). */
export function opsSchemaSql(): string {
  return `
${opsSchemaCreateSql()};
${jobRunsTableSql()};
${jobRunsIndexSql()};
${auditFunctionsSql().join(';\n')};
${ownSessionsSql().join(';\n')};`;
}

/** WITH NO DATA: creating it is instant; the first (plain) REFRESH fills it. */
export function attemptMvCreateSql(schema: string): string {
  return `CREATE MATERIALIZED VIEW IF NOT EXISTS ${qualified(schema, 'attempt_mv')} AS
SELECT * FROM ${qualified(schema, 'attempt')}
WITH NO DATA`;
}

/** REFRESH ... CONCURRENTLY needs this unique index; readers look rows up by id. */
export function attemptMvIdIndexSql(schema: string): string {
  return `CREATE UNIQUE INDEX IF NOT EXISTS ${ATTEMPT_MV_ID_INDEX} ON ${qualified(schema, 'attempt_mv')} (id)`;
}

/** Runbook section 3's query: one student's recent attempts. */
export function attemptMvStudentIndexSql(schema: string): string {
  return `CREATE INDEX IF NOT EXISTS ${ATTEMPT_MV_STUDENT_INDEX} ON ${qualified(schema, 'attempt_mv')} (student_id, completed_at)`;
}

export function attemptMvSql(schema: string): string {
  return `
${attemptMvCreateSql(schema)};
${attemptMvIdIndexSql(schema)};
${attemptMvStudentIndexSql(schema)};`;
}

/**
 * The index the incremental health check reads through: rows since the last run, by completed_at.
 * Without it every hourly run would scan the whole table.
 */
export function completedAtIndexSql(schema: string): string {
  return `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${COMPLETED_AT_INDEX} ON ${qualified(schema, 'exam_results')} (completed_at)`;
}

/** The ops function's audit trail: every applied remediation, who asked for it, its SQL and result. */
export const REMEDIATIONS = `${quoteIdent(OPS_SCHEMA)}.remediations`;

export function remediationsTableSql(): string {
  return `CREATE TABLE IF NOT EXISTS ${REMEDIATIONS} (
  id           bigserial PRIMARY KEY,
  fix          text NOT NULL,
  target       text NOT NULL,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL DEFAULT now(),
  invoked_by   text NOT NULL,
  db_user      text NOT NULL DEFAULT current_user,
  outcome      text NOT NULL CHECK (outcome IN ('success', 'failure', 'blocked', 'unverified')),
  statements   text[] NOT NULL DEFAULT '{}',
  result       jsonb NOT NULL DEFAULT '{}'::jsonb
)`;
}

/** Surplus duplicate exam_results rows, moved here by `remediate quarantine-duplicates` and restorable from here. */
export const EXAM_RESULTS_QUARANTINE = 'exam_results_quarantine';

/**
 * The source table's own columns (LIKE, as they are at creation) plus where each row came from.
 * The extra columns carry a prefix no exam_results column is expected to have.
 */
export function quarantineTableSql(schema: string): string {
  const table = qualified(OPS_SCHEMA, EXAM_RESULTS_QUARANTINE);
  return `CREATE TABLE IF NOT EXISTS ${table} (
  LIKE ${qualified(schema, 'exam_results')},
  quarantine_batch uuid NOT NULL,
  quarantined_at   timestamptz NOT NULL DEFAULT now(),
  quarantine_ctid  tid NOT NULL,
  quarantined_by   text NOT NULL
)`;
}

export function quarantineIndexSql(): string {
  return `CREATE INDEX IF NOT EXISTS exam_results_quarantine_batch_idx ON ${qualified(OPS_SCHEMA, EXAM_RESULTS_QUARANTINE)} (quarantine_batch)`;
}

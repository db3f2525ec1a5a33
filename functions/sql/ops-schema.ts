/**
 * Our own objects in the watched database: the attempt_ops schema with its run-audit table, and
 * attempt_mv with the runbook's indexes. Idempotent statements, so bootstrap can run on every deploy.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';

export const JOB_RUNS = `${quoteIdent(OPS_SCHEMA)}.job_runs`;

export function opsSchemaSql(): string {
  const s = quoteIdent(OPS_SCHEMA);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${JOB_RUNS} (
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
);
CREATE INDEX IF NOT EXISTS job_runs_job_started_idx ON ${JOB_RUNS} (job, started_at DESC);`;
}

export function attemptMvSql(schema: string): string {
  return `
CREATE MATERIALIZED VIEW IF NOT EXISTS ${qualified(schema, 'attempt_mv')} AS
SELECT * FROM ${qualified(schema, 'attempt')}
WITH NO DATA;
CREATE UNIQUE INDEX IF NOT EXISTS attempt_mv_id_idx ON ${qualified(schema, 'attempt_mv')} (id);
CREATE INDEX IF NOT EXISTS attempt_mv_student_completed_idx ON ${qualified(schema, 'attempt_mv')} (student_id, completed_at);`;
}

/**
 * The index the incremental health check reads through: rows since the last run, by completed_at.
 * Without it every hourly run would scan the whole table.
 */
export function completedAtIndexSql(schema: string): string {
  return `CREATE INDEX CONCURRENTLY IF NOT EXISTS exam_results_completed_at_idx ON ${qualified(schema, 'exam_results')} (completed_at)`;
}

/**
 * The audit trail is written only through these SECURITY DEFINER functions: no job role has
 * INSERT or UPDATE on attempt_ops.job_runs, metric_state or remediations (functions/sql/roles.ts).
 * A role with table write rights could forge a refresh-mv success (mv_staleness would then read
 * fresh), rewrite other jobs' rows, or LOCK the table (any mode above ACCESS SHARE needs only
 * UPDATE, DELETE or TRUNCATE). The functions instead:
 *
 * - record who from session_user themselves, never from an argument;
 * - check that the caller may write that job: refresh-mv and analyze only members of
 *   attempt_ops_maintainer, health-check and publish-metrics only members of attempt_ops_monitor,
 *   remediations only members of attempt_ops_operator; members of the owner of attempt_ops (the
 *   bootstrap login, superusers) may write any. A role that does not exist is "not a member";
 * - let a session finish only a 'running' row that it (the same session_user) started.
 * Anything else raises SQLSTATE 42501 with a message that says which role is needed.
 *
 * Each runs with `search_path = pg_catalog, pg_temp`, names every object with its schema, and has
 * EXECUTE revoked from PUBLIC right after its CREATE (functions default to EXECUTE for PUBLIC);
 * roles.ts grants EXECUTE to the job roles. PL/pgSQL resolves tables when it runs, so the functions
 * can be made before the tables they write (a missing table raises 42P01 then, as a direct INSERT
 * would).
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { quoteIdent } from '../db/identifiers.ts';
import { JOB_RUNS, METRIC_STATE, REMEDIATIONS, remediationsTableSql } from './ops-schema.ts';

const OPS = quoteIdent(OPS_SCHEMA);
const DENIED = '42501';
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

/** Which group role may write which job's rows (besides members of attempt_ops' owner). */
export const AUDIT_WRITERS = {
  'refresh-mv': 'attempt_ops_maintainer',
  analyze: 'attempt_ops_maintainer',
  'health-check': 'attempt_ops_monitor',
  'publish-metrics': 'attempt_ops_monitor',
  remediation: 'attempt_ops_operator',
} as const;

/** The functions, as to_regprocedure reads them; bootstrap detects them by these. */
export const AUDIT_FUNCTIONS = {
  mayWrite: `${OPS}.audit_may_write(text)`,
  jobRunStart: `${OPS}.job_run_start(text, text, timestamp with time zone, text, jsonb)`,
  jobRunFinish: `${OPS}.job_run_finish(bigint, text, bigint, text, text, jsonb)`,
  jobRunRecord: `${OPS}.job_run_record(text, text, timestamp with time zone, text, text, jsonb)`,
  metricStatePut: `${OPS}.metric_state_put(text, numeric, double precision, timestamp with time zone, jsonb)`,
  remediationPrepare: `${OPS}.remediation_prepare()`,
  remediationRecord: `${OPS}.remediation_record(text, text, timestamp with time zone, text, text, text[], jsonb)`,
} as const;

/** EXECUTE for the monitor role: health-check and publish-metrics. */
export const MONITOR_AUDIT_FUNCTIONS = [AUDIT_FUNCTIONS.jobRunStart, AUDIT_FUNCTIONS.jobRunFinish, AUDIT_FUNCTIONS.jobRunRecord, AUDIT_FUNCTIONS.metricStatePut];
/** EXECUTE for the maintainer role: analyze and refresh-mv (the operator inherits it). */
export const MAINTAINER_AUDIT_FUNCTIONS = [AUDIT_FUNCTIONS.jobRunStart, AUDIT_FUNCTIONS.jobRunFinish, AUDIT_FUNCTIONS.jobRunRecord];
/** EXECUTE for the operator role: the remediation audit. */
export const OPERATOR_AUDIT_FUNCTIONS = [AUDIT_FUNCTIONS.remediationPrepare, AUDIT_FUNCTIONS.remediationRecord];

const HEADER = `SECURITY DEFINER SET search_path = pg_catalog, pg_temp`;

function revoke(signature: string): string {
  return `REVOKE EXECUTE ON FUNCTION ${signature} FROM PUBLIC`;
}

/**
 * May session_user write rows of this job? A member of the owner of attempt_ops always; otherwise
 * a member of the job's group role. Looked up by oid, so a role that does not exist is no member
 * instead of an error. Not an API: only the functions below call it.
 */
function mayWriteSql(): string {
  const cases = Object.entries(AUDIT_WRITERS).map(([job, role]) => `WHEN ${lit(job)} THEN ${lit(role)}`).join(' ');
  return `CREATE OR REPLACE FUNCTION ${OPS}.audit_may_write(p_job text) RETURNS boolean
LANGUAGE sql STABLE ${HEADER} AS $f$
  SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                  WHERE n.nspname = ${lit(OPS_SCHEMA)} AND pg_catalog.pg_has_role(session_user, n.nspowner, 'MEMBER'))
      OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                  WHERE r.rolname = CASE p_job ${cases} END
                    AND pg_catalog.pg_has_role(session_user, r.oid, 'MEMBER'))
$f$`;
}

/** The PL/pgSQL that refuses a caller who may not write p_job's rows. */
function guard(job: string, what: string): string {
  const cases = Object.entries(AUDIT_WRITERS).map(([j, role]) => `WHEN ${lit(j)} THEN ${lit(role)}`).join(' ');
  return `IF ${job} IS NULL OR NOT ${OPS}.audit_may_write(${job}) THEN
    RAISE EXCEPTION 'role % may not %: it needs membership in %, or in the owner of ${OPS_SCHEMA}', session_user, ${what},
      coalesce(CASE ${job} ${cases} END, 'no job role (unknown job ' || coalesce(${job}, 'NULL') || ')')
      USING ERRCODE = '${DENIED}';
  END IF;`;
}

function jobRunStartSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.job_run_start(p_job text, p_target text, p_started_at timestamptz, p_mode text, p_details jsonb)
RETURNS bigint LANGUAGE plpgsql ${HEADER} AS $f$
DECLARE
  v_id bigint;
BEGIN
  ${guard('p_job', `'start a ' || coalesce(p_job, 'NULL') || ' run in ${OPS_SCHEMA}.job_runs'`)}
  INSERT INTO ${JOB_RUNS} (job, target, started_at, mode, outcome, invoked_by, details)
  VALUES (p_job, coalesce(p_target, 'local'), coalesce(p_started_at, pg_catalog.now()), p_mode, 'running', session_user, coalesce(p_details, '{}'::jsonb))
  RETURNING id INTO v_id;
  RETURN v_id;
END
$f$`;
}

function jobRunFinishSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.job_run_finish(p_id bigint, p_outcome text, p_rows bigint, p_error text, p_mode text, p_details jsonb)
RETURNS void LANGUAGE plpgsql ${HEADER} AS $f$
DECLARE
  v_job text;
  v_outcome text;
  v_by text;
BEGIN
  IF p_outcome IS NULL OR p_outcome = 'running' THEN
    RAISE EXCEPTION 'job_run_finish needs a final outcome, not %', coalesce(p_outcome, 'NULL') USING ERRCODE = '22023';
  END IF;
  SELECT r.job, r.outcome, r.invoked_by INTO v_job, v_outcome, v_by FROM ${JOB_RUNS} r WHERE r.id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'role % may not finish job run %: there is no such run in ${OPS_SCHEMA}.job_runs', session_user, p_id USING ERRCODE = '${DENIED}';
  END IF;
  ${guard('v_job', `'finish a ' || v_job || ' run in ${OPS_SCHEMA}.job_runs'`)}
  IF v_outcome <> 'running' OR v_by IS DISTINCT FROM session_user THEN
    RAISE EXCEPTION 'role % may not finish job run %: only a running row that the same user started can be finished (this one is %, started by %)',
      session_user, p_id, v_outcome, v_by USING ERRCODE = '${DENIED}';
  END IF;
  UPDATE ${JOB_RUNS} r
     SET finished_at = pg_catalog.now(), outcome = p_outcome, rows = p_rows, error = p_error,
         mode = coalesce(p_mode, r.mode), details = r.details || coalesce(p_details, '{}'::jsonb)
   WHERE r.id = p_id;
END
$f$`;
}

function jobRunRecordSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.job_run_record(p_job text, p_target text, p_started_at timestamptz, p_outcome text, p_mode text, p_details jsonb)
RETURNS bigint LANGUAGE plpgsql ${HEADER} AS $f$
DECLARE
  v_id bigint;
BEGIN
  ${guard('p_job', `'record a ' || coalesce(p_job, 'NULL') || ' run in ${OPS_SCHEMA}.job_runs'`)}
  IF p_outcome IS NULL OR p_outcome = 'running' THEN
    RAISE EXCEPTION 'job_run_record records a finished run, not %: use job_run_start', coalesce(p_outcome, 'NULL') USING ERRCODE = '22023';
  END IF;
  INSERT INTO ${JOB_RUNS} (job, target, started_at, finished_at, mode, outcome, invoked_by, details)
  VALUES (p_job, coalesce(p_target, 'local'), coalesce(p_started_at, pg_catalog.now()), pg_catalog.now(), p_mode, p_outcome, session_user, coalesce(p_details, '{}'::jsonb))
  RETURNING id INTO v_id;
  RETURN v_id;
END
$f$`;
}

function metricStatePutSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.metric_state_put(p_name text, p_calls numeric, p_total_exec_ms double precision, p_stats_reset timestamptz, p_details jsonb)
RETURNS void LANGUAGE plpgsql ${HEADER} AS $f$
BEGIN
  ${guard(`'publish-metrics'`, `'keep publish-metrics'' sample in ${OPS_SCHEMA}.metric_state'`)}
  INSERT INTO ${METRIC_STATE} AS m (name, sampled_at, calls, total_exec_ms, stats_reset, details)
  VALUES (p_name, pg_catalog.now(), p_calls, p_total_exec_ms, p_stats_reset, coalesce(p_details, '{}'::jsonb))
  ON CONFLICT (name) DO UPDATE SET sampled_at = EXCLUDED.sampled_at, calls = EXCLUDED.calls,
    total_exec_ms = EXCLUDED.total_exec_ms, stats_reset = EXCLUDED.stats_reset, details = EXCLUDED.details;
END
$f$`;
}

/**
 * The remediation audit table is made on the first apply, before anything changes (a fix that
 * cannot be audited does not run): by this function, so it belongs to the functions' owner and
 * the operator gets no rights on it it could rewrite history with.
 */
function remediationPrepareSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.remediation_prepare()
RETURNS void LANGUAGE plpgsql ${HEADER} AS $f$
BEGIN
  ${guard(`'remediation'`, `'write the remediation audit ${OPS_SCHEMA}.remediations'`)}
  IF pg_catalog.to_regclass(${lit(REMEDIATIONS)}) IS NULL THEN
    ${remediationsTableSql().replace(/\n/g, '\n    ')};
  END IF;
END
$f$`;
}

/** invoked_by is who asked for the fix (a person, a Lambda request); db_user is session_user, never an argument. */
function remediationRecordSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.remediation_record(p_fix text, p_target text, p_started_at timestamptz, p_invoked_by text, p_outcome text, p_statements text[], p_result jsonb)
RETURNS bigint LANGUAGE plpgsql ${HEADER} AS $f$
DECLARE
  v_id bigint;
BEGIN
  ${guard(`'remediation'`, `'write the remediation audit ${OPS_SCHEMA}.remediations'`)}
  INSERT INTO ${REMEDIATIONS} (fix, target, started_at, invoked_by, db_user, outcome, statements, result)
  VALUES (p_fix, p_target, p_started_at, coalesce(p_invoked_by, 'unknown'), session_user, p_outcome, coalesce(p_statements, '{}'::text[]), coalesce(p_result, '{}'::jsonb))
  RETURNING id INTO v_id;
  RETURN v_id;
END
$f$`;
}

/** The statements, in order, each idempotent (CREATE OR REPLACE keeps the EXECUTE grants made since). */
export function auditFunctionsSql(): string[] {
  return [
    mayWriteSql(), revoke(AUDIT_FUNCTIONS.mayWrite),
    jobRunStartSql(), revoke(AUDIT_FUNCTIONS.jobRunStart),
    jobRunFinishSql(), revoke(AUDIT_FUNCTIONS.jobRunFinish),
    jobRunRecordSql(), revoke(AUDIT_FUNCTIONS.jobRunRecord),
    metricStatePutSql(), revoke(AUDIT_FUNCTIONS.metricStatePut),
    remediationPrepareSql(), revoke(AUDIT_FUNCTIONS.remediationPrepare),
    remediationRecordSql(), revoke(AUDIT_FUNCTIONS.remediationRecord),
  ];
}

/** SQL that is true when every audit function exists (bootstrap's "exists"). */
export function auditFunctionsPresentSql(): string {
  return `(${Object.values(AUDIT_FUNCTIONS).map((f) => `to_regprocedure(${lit(f)}) IS NOT NULL`).join(' AND ')})`;
}

// The calls the jobs make, with explicit types so each resolves to exactly its function.
export const JOB_RUN_START_SQL = `SELECT ${OPS}.job_run_start($1::text, $2::text, $3::timestamptz, $4::text, $5::jsonb)::text AS id`;
export const JOB_RUN_FINISH_SQL = `SELECT ${OPS}.job_run_finish($1::bigint, $2::text, $3::bigint, $4::text, $5::text, $6::jsonb)`;
export const JOB_RUN_RECORD_SQL = `SELECT ${OPS}.job_run_record($1::text, $2::text, $3::timestamptz, $4::text, $5::text, $6::jsonb)::text AS id`;
export const METRIC_STATE_PUT_SQL = `SELECT ${OPS}.metric_state_put($1::text, $2::numeric, $3::double precision, $4::timestamptz, $5::jsonb)`;
export const REMEDIATION_PREPARE_SQL = `SELECT ${OPS}.remediation_prepare()`;
export const REMEDIATION_RECORD_SQL = `SELECT ${OPS}.remediation_record($1::text, $2::text, $3::timestamptz, $4::text, $5::text, $6::text[], $7::jsonb)::text AS id`;

/** undefined_function: the database was bootstrapped by a version without these functions (or not at all). */
export function isMissingAuditFunction(err: unknown): boolean {
  return (err as { code?: string } | null)?.code === '42883';
}

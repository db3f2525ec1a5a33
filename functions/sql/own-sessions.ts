/**
 * The registry of our own long sessions: long_running and `remediate cancel-long-running` leave a
 * session alone only when it is ours, and "ours" is not a name anyone can set (application_name
 * 'attempt-ops/...' is one SET away for any client). A session is ours when both:
 *
 * - its (pid, backend_start) is in attempt_ops.own_sessions. Both must match pg_stat_activity:
 *   pids are reused, so a row left by a session that has ended matches nothing (stale rows are
 *   ignored, and purged by the next registration);
 * - its login is a member of attempt_ops_maintainer (the role refresh-mv, analyze and bootstrap
 *   run as) or of the owner of attempt_ops (the bootstrap login; superusers are members of every
 *   role).
 *
 * The pools of refresh-mv, analyze and bootstrap register each session they open
 * (functions/db/pool.ts) through attempt_ops.own_session_register, a SECURITY DEFINER function:
 * no job role may write the table itself. The function registers only the caller's own backend,
 * checks the same role membership, and records who from session_user. EXECUTE stays with PUBLIC
 * on purpose: the function's own check is the access control (the role grants in
 * functions/sql/roles.ts need not know about it), and only roles with USAGE on attempt_ops reach
 * it at all. The table is readable by PUBLIC for the same reason: the monitor (health-check,
 * publish-metrics) and the operator (cancel-long-running) read it; it holds pids, start times and
 * job names, nothing secret.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { quoteIdent } from '../db/identifiers.ts';

const OPS = quoteIdent(OPS_SCHEMA);
const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;

export const OWN_SESSIONS = `${OPS}.own_sessions`;
/** The jobs whose sessions register: the ones that run long statements on the watched relations. */
export const OWN_SESSION_JOBS: readonly string[] = ['refresh-mv', 'analyze', 'bootstrap'];
/** The job role whose members' registered sessions are ours (ROLES.maintainer in roles.ts). */
export const OWN_SESSION_ROLE = 'attempt_ops_maintainer';
export const OWN_SESSION_REGISTER_FUNCTION = `${OPS}.own_session_register(text, timestamp with time zone)`;

export function ownSessionsTableSql(): string {
  return `CREATE TABLE IF NOT EXISTS ${OWN_SESSIONS} (
  pid           integer NOT NULL,
  backend_start timestamptz NOT NULL,
  job           text NOT NULL,
  login         text NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (pid, backend_start)
)`;
}

/** Is this role (an oid or name expression) one of our job roles? */
function jobRoleSql(role: string): string {
  return `(EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n
                  WHERE n.nspname = ${lit(OPS_SCHEMA)} AND pg_catalog.pg_has_role(${role}, n.nspowner, 'MEMBER'))
       OR EXISTS (SELECT 1 FROM pg_catalog.pg_roles r
                  WHERE r.rolname = ${lit(OWN_SESSION_ROLE)} AND pg_catalog.pg_has_role(${role}, r.oid, 'MEMBER')))`;
}

/**
 * Registers the calling backend. p_backend_start comes from the caller (it sees its own row of
 * pg_stat_activity; the function's owner may not), and is checked against it where the owner
 * can see it: a wrong one could only make the row match nothing.
 */
function registerFunctionSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.own_session_register(p_job text, p_backend_start timestamptz)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  v_seen timestamptz;
BEGIN
  IF p_job IS NULL OR NOT (p_job = ANY (ARRAY[${OWN_SESSION_JOBS.map(lit).join(', ')}]::text[])) THEN
    RAISE EXCEPTION 'own_session_register: % is not a job that registers its sessions', coalesce(p_job, 'NULL') USING ERRCODE = '22023';
  END IF;
  IF NOT ${jobRoleSql('session_user')} THEN
    RAISE EXCEPTION 'role % may not register a session as one of attempt-ops'' own: it needs membership in ${OWN_SESSION_ROLE}, or in the owner of ${OPS_SCHEMA}', session_user
      USING ERRCODE = '42501';
  END IF;
  SELECT a.backend_start INTO v_seen FROM pg_catalog.pg_stat_activity a WHERE a.pid = pg_catalog.pg_backend_pid();
  IF p_backend_start IS NULL OR (v_seen IS NOT NULL AND v_seen <> p_backend_start) THEN
    RAISE EXCEPTION 'own_session_register: % is not this backend''s start', coalesce(p_backend_start::text, 'NULL') USING ERRCODE = '22023';
  END IF;
  -- Stale rows: this pid's from an earlier backend, and those whose backend is gone (a pid is
  -- visible in pg_stat_activity to everyone, its start time not).
  DELETE FROM ${OWN_SESSIONS} o
   WHERE (o.pid = pg_catalog.pg_backend_pid() AND o.backend_start <> p_backend_start)
      OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a WHERE a.pid = o.pid);
  INSERT INTO ${OWN_SESSIONS} (pid, backend_start, job, login)
  VALUES (pg_catalog.pg_backend_pid(), p_backend_start, p_job, session_user)
  ON CONFLICT (pid, backend_start) DO UPDATE SET job = EXCLUDED.job, login = EXCLUDED.login, registered_at = pg_catalog.now();
END
$f$`;
}

/** The statements, in order, each idempotent. */
export function ownSessionsSql(): string[] {
  return [
    ownSessionsTableSql(),
    `REVOKE ALL ON ${OWN_SESSIONS} FROM PUBLIC`,
    `GRANT SELECT ON ${OWN_SESSIONS} TO PUBLIC`,
    registerFunctionSql(),
  ];
}

/** What a registering pool runs on each new session: its own start time, seen by itself. */
export const OWN_SESSION_REGISTER_SQL = `SELECT ${OPS}.own_session_register($1::text,
  (SELECT backend_start FROM pg_catalog.pg_stat_activity WHERE pid = pg_catalog.pg_backend_pid()))`;

/** True when this session may read the registry (it exists, with USAGE and SELECT): one row, column "readable". */
export const OWN_SESSIONS_READABLE_SQL = `SELECT coalesce((
  SELECT has_schema_privilege(n.oid, 'USAGE') AND has_table_privilege(c.oid, 'SELECT')
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = ${lit(OPS_SCHEMA)} AND c.relname = 'own_sessions'), false) AS readable`;

/**
 * A predicate over a pg_stat_activity row (alias a): the session is one of our own, registered
 * with its current (pid, backend_start) and logged in as one of our job roles. Only for a session
 * that may read the registry (OWN_SESSIONS_READABLE_SQL).
 */
export function ownSessionSql(a: string): string {
  return `(EXISTS (SELECT 1 FROM ${OWN_SESSIONS} o WHERE o.pid = ${a}.pid AND o.backend_start = ${a}.backend_start)
        AND ${jobRoleSql(`${a}.usesysid`)})`;
}

/** The registration failed because the database has no registry yet (not bootstrapped with it). */
export function isMissingRegistry(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === '42883' || code === '3F000' || code === '42P01';
}

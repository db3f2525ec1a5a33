import { CHECK_SPECS } from '../contract/index.ts';
import { OWN_SESSIONS_READABLE_SQL, ownSessionSql } from '../sql/own-sessions.ts';
import { WATCHED_LOCKS_CTE, watchedOidsCte, watchedRelations } from './blocking.ts';
import type { HealthCheck, Queryable } from './types.ts';

/**
 * Client sessions of this database active on one query past the limit ($1 seconds) that hold (or
 * await) a lock on a watched relation: what the query is about is read from pg_locks, never from
 * its text (a comment saying "attempt" is not a query on attempt). Never autovacuum (not a client
 * backend), never this session, and, with `own`, never one of our own jobs: registered in
 * attempt_ops.own_sessions with its (pid, backend_start) and logged in as one of our job roles
 * (functions/sql/own-sessions.ts). application_name plays no part: anyone can set it.
 */
function longRunningSql(names: string, own: boolean): string {
  return `
  WITH RECURSIVE ${watchedOidsCte(names)},
  ${WATCHED_LOCKS_CTE}
  SELECT a.pid, a.usename AS "user", a.application_name AS application, left(a.query, 200) AS query,
         round(extract(epoch FROM now() - a.query_start)::numeric, 1)::float8 AS "runningSeconds",
         a.query_start::text AS "queryStart", k.locks
    FROM pg_stat_activity a JOIN watched_locks k ON k.pid = a.pid
   WHERE a.state = 'active' AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
     AND a.datname = current_database()
     AND a.query_start < now() - make_interval(secs => $1)
     ${own ? `AND NOT ${ownSessionSql('a')}` : ''}
   ORDER BY a.query_start`;
}

/** $1 seconds, $2 the watched relations' names (watchedRelations(schema)); our own sessions left out. */
export const LONG_RUNNING_OWN_EXCLUDED_SQL = longRunningSql('$2::text[]', true);
/** The same where the registry cannot be read (not bootstrapped with it): our own jobs count too. */
export const LONG_RUNNING_NO_REGISTRY_SQL = longRunningSql('$2::text[]', false);

export type LongRunningRow = {
  pid: number;
  user: string | null;
  application: string | null;
  query: string;
  runningSeconds: number;
  queryStart: string;
  /** Its locks on the watched relations, "relation mode". */
  locks: string[];
};

/** The long-running sessions, and whether our own could be told apart (the registry is readable). */
export async function selectLongRunning(db: Queryable, schema: string, seconds: number): Promise<{ rows: LongRunningRow[]; registry: boolean }> {
  const readable = await db.query<{ readable: boolean }>(OWN_SESSIONS_READABLE_SQL);
  const registry = readable.rows[0]?.readable === true;
  const { rows } = await db.query<LongRunningRow>(registry ? LONG_RUNNING_OWN_EXCLUDED_SQL : LONG_RUNNING_NO_REGISTRY_SQL, [seconds, watchedRelations(schema)]);
  return { rows, registry };
}

export const longRunning: HealthCheck = {
  spec: CHECK_SPECS.long_running,
  async measure({ db, schema, settings }) {
    const { rows, registry } = await selectLongRunning(db, schema, settings.longRunningSeconds);
    const note = registry ? '' : ' (no readable attempt_ops.own_sessions: our own jobs are not told apart)';
    if (rows.length === 0) return { value: 0, message: `no query holding a lock on the view's relations running > ${settings.longRunningSeconds} s${note}` };
    return {
      value: rows.length,
      message: `${rows.length} query(ies) on the view's relations running > ${settings.longRunningSeconds} s (pid ${rows.map((r) => r.pid).join(', ')})${note}`,
      details: rows,
    };
  },
};

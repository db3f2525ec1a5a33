import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import type { HealthCheck } from './types.ts';

/** Names of the relations whose lock queues matter: the view, its tables and its copy. */
export function watchedRelations(schema: string): string[] {
  return ['exam_results', 'questions', 'attempt', 'attempt_mv'].map((r) => qualified(schema, r));
}

/**
 * A recursive CTE `watched(oid)`: the relations named in `names` (an SQL text[] expression, e.g.
 * `$1::text[]`) that exist, and their partitions and inheritance children, recursively (a lock
 * on a partition of exam_results is a lock on exam_results' rows). Needs `WITH RECURSIVE`.
 */
export function watchedOidsCte(names: string): string {
  return `watched(oid) AS (
    SELECT r.oid::oid FROM unnest(${names}) AS n(name), LATERAL (SELECT to_regclass(n.name) AS oid) r WHERE r.oid IS NOT NULL
    UNION
    SELECT i.inhrelid FROM pg_inherits i JOIN watched w ON i.inhparent = w.oid
  )`;
}

/**
 * The relation locks (held or awaited) on the watched relations in this database, per pid, as
 * "relation mode" strings. Relation oids repeat across databases: only this database's locks
 * are about our tables. Needs watchedOidsCte before it.
 */
export const WATCHED_LOCKS_CTE = `watched_locks(pid, locks) AS (
    SELECT l.pid, array_agg(DISTINCT l.relation::regclass::text || ' ' || l.mode || CASE WHEN l.granted THEN '' ELSE ' (waiting)' END)
      FROM pg_locks l
     WHERE l.locktype = 'relation' AND l.pid IS NOT NULL
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.relation IN (SELECT oid FROM watched)
     GROUP BY l.pid
  )`;

/**
 * Sessions of this database waiting for any lock for longer than the limit ($2 seconds) behind a
 * session that holds a lock on a watched relation ($1: their names), or waiting for a lock on a
 * watched relation itself. pg_blocking_pids() sees every kind of wait: a writer waiting on a row
 * lock waits on the holder's transactionid (the holder holds RowExclusiveLock on the table), a
 * reader behind DDL on the relation. Each row names the waiter and, in `blockers`, who it waits
 * behind: pid, user, application, state, the first 200 characters of its query, its locks on
 * the watched relations.
 */
export const BLOCKED_SQL = `
  WITH RECURSIVE ${watchedOidsCte('$1::text[]')},
  held(pid, relations) AS (
    SELECT l.pid, array_agg(DISTINCT l.relation::regclass::text || ' ' || l.mode)
      FROM pg_locks l
     WHERE l.granted AND l.locktype = 'relation' AND l.pid IS NOT NULL
       AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
       AND l.relation IN (SELECT oid FROM watched)
     GROUP BY l.pid
  ),
  waiting AS (
    SELECT a.pid, a.usename, a.application_name, a.query, l.locktype, l.mode, l.relation, l.database, l.waitstart,
           pg_blocking_pids(a.pid) AS blocked_by
      FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
     WHERE NOT l.granted AND a.datname = current_database() AND a.pid <> pg_backend_pid()
       AND l.waitstart < now() - make_interval(secs => $2)
  )
  SELECT w.pid, w.usename AS "user", w.application_name AS application, left(w.query, 200) AS query,
         -- A row-lock waiter awaits a transactionid; the row's table is in the tuple lock it holds.
         coalesce(w.relation::regclass::text,
                  (SELECT t.relation::regclass::text FROM pg_locks t WHERE t.pid = w.pid AND t.locktype = 'tuple' AND t.granted LIMIT 1)) AS relation,
         w.locktype AS "lockType", w.mode,
         round(extract(epoch FROM now() - w.waitstart)::numeric, 1)::float8 AS "waitSeconds",
         w.blocked_by AS "blockedBy",
         (SELECT coalesce(json_agg(json_build_object(
                   'pid', b.pid, 'user', b.usename, 'application', b.application_name, 'state', b.state,
                   'query', left(b.query, 200),
                   'transactionSeconds', round(extract(epoch FROM now() - b.xact_start)::numeric, 1)::float8,
                   'locks', coalesce(h.relations, '{}'::text[])) ORDER BY b.pid), '[]'::json)
            FROM pg_stat_activity b LEFT JOIN held h ON h.pid = b.pid
           WHERE b.pid = ANY (w.blocked_by)) AS blockers
    FROM waiting w
   WHERE EXISTS (SELECT 1 FROM held h WHERE h.pid = ANY (w.blocked_by))
      OR (w.locktype = 'relation' AND w.database = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND w.relation IN (SELECT oid FROM watched))
   ORDER BY w.waitstart`;

type Blocker = { pid: number; user: string | null; application: string | null; state: string | null; query: string | null; transactionSeconds: number | null; locks: string[] };
type Blocked = { pid: number; user: string | null; application: string | null; query: string; relation: string | null; lockType: string; mode: string; waitSeconds: number; blockedBy: number[]; blockers: Blocker[] };

const who = (s: { pid: number; user: string | null; application: string | null }) => `pid ${s.pid} (${s.user ?? '?'}${s.application ? `, ${s.application}` : ''})`;

/** Runbook section 3 ("Check for locks"): sessions stuck behind a lock on the view's relations. */
export const blocking: HealthCheck = {
  spec: CHECK_SPECS.blocking,
  async measure({ db, schema, settings }) {
    const { rows } = await db.query<Blocked>(BLOCKED_SQL, [watchedRelations(schema), settings.blockedWaitSeconds]);
    if (rows.length === 0) return { value: 0, message: `no session waits > ${settings.blockedWaitSeconds} s behind a lock on the view's relations` };
    const blockers = [...new Set(rows.flatMap((r) => r.blockedBy ?? []))];
    const pairs = rows.slice(0, 5).map((r) => {
      const behind = r.blockers.map((b) => `${who(b)}, ${b.state ?? '?'}`).join('; ') || `pid(s) ${r.blockedBy.join(', ')}`;
      return `${who(r)} waits ${r.waitSeconds} s${r.relation ? ` on ${r.relation}` : ''} behind ${behind}`;
    });
    return {
      value: rows.length,
      message: `${rows.length} session(s) blocked > ${settings.blockedWaitSeconds} s: ${pairs.join('; ')}${rows.length > pairs.length ? '; ...' : ''}; blocking pid(s) ${blockers.join(', ')}`,
      details: rows,
    };
  },
};

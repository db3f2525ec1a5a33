import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import type { HealthCheck } from './types.ts';

/** Names of the relations whose lock queues matter: the view, its tables and its copy. */
export function watchedRelations(schema: string): string[] {
  return ['exam_results', 'questions', 'attempt', 'attempt_mv'].map((r) => qualified(schema, r));
}

/** Sessions waiting on a lock on the watched relations for longer than the limit, with their blockers. */
export const BLOCKED_SQL = `
  SELECT a.pid, a.usename AS "user", a.application_name AS application, left(a.query, 200) AS query,
         l.relation::regclass::text AS relation, l.mode,
         round(extract(epoch FROM now() - l.waitstart)::numeric, 1)::float8 AS "waitSeconds",
         pg_blocking_pids(a.pid) AS "blockedBy"
    FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
   WHERE NOT l.granted AND l.locktype IN ('relation', 'tuple')
     -- Relation oids repeat across databases: only this database's locks are about our tables.
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND l.relation = ANY (SELECT to_regclass(n) FROM unnest($1::text[]) n)
     AND l.waitstart < now() - make_interval(secs => $2)
   ORDER BY l.waitstart`;

/** Runbook section 3 ("Check for locks"): queries on the view stuck behind a lock. */
export const blocking: HealthCheck = {
  spec: CHECK_SPECS.blocking,
  async measure({ db, schema, settings }) {
    const { rows } = await db.query(BLOCKED_SQL, [watchedRelations(schema), settings.blockedWaitSeconds]);
    if (rows.length === 0) return { value: 0, message: `no session waits > ${settings.blockedWaitSeconds} s for a lock on the view's relations` };
    const blockers = [...new Set(rows.flatMap((r) => (r.blockedBy as number[]) ?? []))];
    return {
      value: rows.length,
      message: `${rows.length} session(s) blocked > ${settings.blockedWaitSeconds} s on ${[...new Set(rows.map((r) => r.relation))].join(', ')}; blocking pid(s) ${blockers.join(', ')}`,
      details: rows,
    };
  },
};

import { CHECK_SPECS } from '../contract/index.ts';
import type { HealthCheck } from './types.ts';

/**
 * Queries on attempt (or attempt_mv) active past the limit, from other client sessions: never our
 * own (application_name attempt-ops/...), never autovacuum (not a client backend), and only in
 * this database: another database's `attempt` is not ours.
 * `\mattempt(_mv)?\M` matches the relation names as words, so attempt_ops.* queries do not count.
 */
export const LONG_RUNNING_SQL = `
  SELECT pid, usename AS "user", application_name AS application, left(query, 200) AS query,
         round(extract(epoch FROM now() - query_start)::numeric, 1)::float8 AS "runningSeconds"
    FROM pg_stat_activity
   WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
     AND datname = current_database()
     AND application_name NOT LIKE 'attempt-ops/%'
     AND query ~* '\\mattempt(_mv)?\\M'
     AND query_start < now() - make_interval(secs => $1)
   ORDER BY query_start`;

export const longRunning: HealthCheck = {
  spec: CHECK_SPECS.long_running,
  async measure({ db, settings }) {
    const { rows } = await db.query(LONG_RUNNING_SQL, [settings.longRunningSeconds]);
    if (rows.length === 0) return { value: 0, message: `no query on attempt running > ${settings.longRunningSeconds} s` };
    return {
      value: rows.length,
      message: `${rows.length} query(ies) on attempt running > ${settings.longRunningSeconds} s (pid ${rows.map((r) => r.pid).join(', ')})`,
      details: rows,
    };
  },
};

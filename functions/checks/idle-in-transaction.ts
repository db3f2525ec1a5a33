import { CHECK_SPECS, THRESHOLDS } from '../contract/index.ts';
import { WATCHED_LOCKS_CTE, watchedOidsCte, watchedRelations } from './blocking.ts';
import type { HealthCheck } from './types.ts';

/**
 * Sessions of this database idle in a transaction (or in an aborted one) for longer than the
 * limit ($2 seconds, since their last state change) that hold a lock on a watched relation ($1):
 * the blocker side of `blocking`. Even an AccessShareLock left open queues every later DDL, and
 * the DDL queues every reader behind it; a RowExclusiveLock keeps row locks that writers wait on.
 * check_postgres calls it txn_idle.
 */
export const IDLE_IN_TRANSACTION_SQL = `
  WITH RECURSIVE ${watchedOidsCte('$1::text[]')},
  ${WATCHED_LOCKS_CTE}
  SELECT a.pid, a.usename AS "user", a.application_name AS application, a.state,
         round(extract(epoch FROM now() - a.state_change)::numeric, 1)::float8 AS "idleSeconds",
         round(extract(epoch FROM now() - a.xact_start)::numeric, 1)::float8 AS "transactionSeconds",
         left(a.query, 200) AS "lastQuery", k.locks
    FROM pg_stat_activity a JOIN watched_locks k ON k.pid = a.pid
   WHERE a.state IN ('idle in transaction', 'idle in transaction (aborted)')
     AND a.datname = current_database() AND a.pid <> pg_backend_pid()
     AND a.state_change < now() - make_interval(secs => $2)
   ORDER BY a.state_change`;

type Idle = { pid: number; user: string | null; application: string | null; state: string; idleSeconds: number; transactionSeconds: number; lastQuery: string; locks: string[] };

export const idleInTransaction: HealthCheck = {
  spec: CHECK_SPECS.idle_in_transaction,
  async measure({ db, schema, settings }) {
    const seconds = settings.idleInTransactionSeconds ?? THRESHOLDS.idleInTransactionSeconds;
    const { rows } = await db.query<Idle>(IDLE_IN_TRANSACTION_SQL, [watchedRelations(schema), seconds]);
    if (rows.length === 0) return { value: 0, message: `no session idle in a transaction > ${seconds} s holding a lock on the view's relations` };
    const named = rows.slice(0, 5).map((r) => `pid ${r.pid} (${r.user ?? '?'}${r.application ? `, ${r.application}` : ''}) idle ${r.idleSeconds} s holding ${r.locks.join(', ')}`);
    return {
      value: rows.length,
      message: `${rows.length} session(s) idle in a transaction > ${seconds} s holding locks on the view's relations: ${named.join('; ')}${rows.length > named.length ? '; ...' : ''}`,
      details: rows,
    };
  },
};

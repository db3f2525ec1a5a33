/**
 * Database time, two ways. Client side: every statement a pool's sessions send is timed from
 * send to result, summed (on loopback that is the server's execution plus a few microseconds of
 * round trip, and unlike wall time it counts the checks that run two at a time twice). Server
 * side, when pg_stat_statements is loaded: the execution and planning time it recorded for this
 * database.
 */
import pg from 'pg';

export interface Meter {
  /** Milliseconds spent in statements since the last reset. */
  readonly totalMs: number;
  readonly statements: number;
  reset(): void;
}

type QueryFn = (...args: unknown[]) => unknown;

/**
 * Wraps `query` of every session the pool opens. pg-pool calls it with a callback, our code with
 * promises; both are timed. A Submittable (a cursor) is passed through untimed: nothing here uses one.
 */
export function meterPool(pool: pg.Pool): Meter {
  let totalMs = 0;
  let statements = 0;
  pool.on('connect', (client) => {
    const target = client as unknown as { query: QueryFn };
    const original = target.query.bind(client) as QueryFn;
    target.query = (...args: unknown[]) => {
      const started = performance.now();
      const done = () => {
        totalMs += performance.now() - started;
        statements += 1;
      };
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (err: unknown, res: unknown) => {
          done();
          (last as (e: unknown, r: unknown) => void)(err, res);
        };
        return original(...args);
      }
      const result = original(...args);
      if (result && typeof (result as Promise<unknown>).then === 'function') {
        return (result as Promise<unknown>).then(
          (v) => {
            done();
            return v;
          },
          (e: unknown) => {
            done();
            throw e;
          },
        );
      }
      return result;
    };
  });
  return {
    get totalMs() {
      return totalMs;
    },
    get statements() {
      return statements;
    },
    reset() {
      totalMs = 0;
      statements = 0;
    },
  };
}

export interface ServerStatements {
  available: boolean;
  /** Why it is not: not preloaded, no permission. */
  reason: string | null;
  /** Forget this database's statements (only this database's: the server may be shared). */
  reset(): Promise<void>;
  /** Execution plus planning time of this database's statements since the reset (ms). */
  totalMs(): Promise<number | null>;
  /** The n statements that took longest since the reset: where a run's time goes. */
  top(n: number): Promise<StatementTime[]>;
}

export interface StatementTime {
  /** Normalised text, whitespace collapsed. */
  query: string;
  calls: number;
  ms: number;
}

const THIS_DB = `(SELECT oid FROM pg_database WHERE datname = current_database())`;

/** pg_stat_statements for the bench database, if the server preloads it; our own probes are left out. */
export async function serverStatements(admin: pg.Client): Promise<ServerStatements> {
  const unavailable = (reason: string): ServerStatements => ({ available: false, reason, reset: async () => undefined, totalMs: async () => null, top: async () => [] });
  const { rows } = await admin.query<{ preload: string; version: number }>(
    `SELECT current_setting('shared_preload_libraries') AS preload, current_setting('server_version_num')::int AS version`,
  );
  const { preload, version } = rows[0]!;
  if (!preload.split(',').map((s) => s.trim()).includes('pg_stat_statements')) return unavailable('pg_stat_statements is not in shared_preload_libraries');
  try {
    await admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    await admin.query(`SELECT pg_stat_statements_reset(0, ${THIS_DB}, 0)`);
  } catch (err) {
    return unavailable(`pg_stat_statements: ${(err as Error).message}`);
  }
  // Planning time is recorded from PostgreSQL 13 on, and only with track_planning.
  const time = version >= 130000 ? 'total_exec_time + total_plan_time' : 'total_time';
  return {
    available: true,
    reason: null,
    async reset() {
      await admin.query(`SELECT pg_stat_statements_reset(0, ${THIS_DB}, 0)`);
    },
    async totalMs() {
      const r = await admin.query<{ ms: number | null }>(
        `SELECT sum(${time})::float8 AS ms FROM pg_stat_statements WHERE dbid = ${THIS_DB} AND query NOT LIKE '%pg_stat_statements%'`,
      );
      return r.rows[0]?.ms ?? 0;
    },
    async top(n) {
      const r = await admin.query<{ query: string; calls: string; ms: number }>(
        `SELECT query, calls, (${time})::float8 AS ms FROM pg_stat_statements
          WHERE dbid = ${THIS_DB} AND query NOT LIKE '%pg_stat_statements%' ORDER BY ms DESC LIMIT $1`,
        [n],
      );
      return r.rows.map((x) => ({ query: x.query.replace(/\s+/g, ' ').trim(), calls: Number(x.calls), ms: x.ms }));
    },
  };
}

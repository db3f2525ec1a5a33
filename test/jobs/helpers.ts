/** What the maintenance-job tests share: deps, a recording sink, stats flushing, held locks, catalog checksums. */
import pg from 'pg';
import type { MetricDatum } from '../../functions/contract/index.ts';
import type { Pool } from '../../functions/db/pool.ts';
import type { JobDeps } from '../../functions/jobs/deps.ts';
import type { MetricSink } from '../../functions/metrics/sink.ts';
import { silentLogger } from '../../functions/runtime/log.ts';

export function jobDeps(pool: Pool, extra: Partial<JobDeps> = {}): JobDeps {
  return { pool, target: 'test', schema: 'public', appRole: 'seedtest_user', log: silentLogger, ...extra };
}

export interface RecordingSink extends MetricSink {
  calls: MetricDatum[][];
}

export function recordingSink(): RecordingSink {
  const calls: MetricDatum[][] = [];
  return {
    kind: 'stdout',
    calls,
    async publish(data) {
      calls.push([...data]);
      return { calls: 1, datums: data.length };
    },
  };
}

/**
 * Table statistics reach pg_stat_user_tables when the writing session flushes them, at most once
 * a second; this makes the next flush (right after this statement) immediate.
 */
export async function flushStats(client: pg.Client): Promise<void> {
  await client.query('SELECT pg_stat_force_next_flush()');
}

export interface HeldLock {
  /** pid of the session holding the lock. */
  pid: number;
  release(): Promise<void>;
}

/** Another session holds `LOCK TABLE <table> IN <mode> MODE` in an open transaction until release(). */
/** Change-log rows refresh-mv has not consumed yet (the log itself is pruned only after every consumer has read it). */
export const PENDING_CHANGES = `SELECT count(*) AS n FROM attempt_ops.attempt_changes l JOIN attempt_ops.capture_cursors c
  ON c.consumer = 'refresh-mv' AND c.source_schema = l.source_schema
  WHERE l.xid >= pg_snapshot_xmin(c.snapshot) AND NOT pg_visible_in_snapshot(l.xid, c.snapshot)`;

export async function holdLock(url: string, table: string, mode = 'ACCESS EXCLUSIVE'): Promise<HeldLock> {
  const c = new pg.Client({ connectionString: url, application_name: 'test-lock-holder' });
  await c.connect();
  await c.query('BEGIN');
  await c.query(`LOCK TABLE ${table} IN ${mode} MODE`);
  const { rows } = await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  let released = false;
  return {
    pid: rows[0]!.pid,
    async release() {
      if (released) return;
      released = true;
      await c.query('ROLLBACK').catch(() => undefined);
      await c.end();
    },
  };
}

/**
 * A digest of every schema, relation, index and privilege in the database: any DDL or GRANT
 * changes it; statistics and data do not.
 */
export async function catalogChecksum(client: pg.Client): Promise<string> {
  const { rows } = await client.query<{ digest: string }>(`
    SELECT md5(string_agg(line, E'\\n' ORDER BY line)) AS digest FROM (
      SELECT concat_ws(' ', 'n', n.oid, n.nspname, n.nspacl) AS line FROM pg_namespace n
      UNION ALL
      SELECT concat_ws(' ', 'c', c.oid, c.relnamespace, c.relname, c.relkind, c.relispopulated, c.relfilenode, c.relacl) FROM pg_class c
      UNION ALL
      SELECT concat_ws(' ', 'i', i.indexrelid, i.indrelid, i.indisvalid, i.indisunique, i.indkey) FROM pg_index i
    ) x`);
  return rows[0]!.digest;
}

export async function count(client: pg.Client, sql: string, values: unknown[] = []): Promise<number> {
  const { rows } = await client.query<{ n: string }>(sql, values);
  return Number(rows[0]?.n ?? 0);
}

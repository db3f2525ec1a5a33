/**
 * The two pieces of owner work the capture and the incremental path need, done so that they
 * never stall the application: installing the capture (its triggers lock exam_results and
 * questions) and building the student index CONCURRENTLY (which waits for every older snapshot).
 */
import { AttemptOpsError, classifyDbError, oneLine } from '../../db/errors.ts';
import { qualified } from '../../db/identifiers.ts';
import { withClient, type PoolClient } from '../../db/pool.ts';
import { captureInstallCallSql, captureLockSql, eventTriggersSql } from '../../sql/capture.ts';
import { captureInstallSql } from '../../sql/incremental.ts';
import type { JobDeps } from '../deps.ts';

export interface InstallBudget {
  /** lock_timeout of one attempt (ms): how long writers may queue behind the install. */
  attemptLockMs: number;
  /** Attempts before giving up, each after a pause that grows. */
  attempts: number;
}

/** 200 ms at most behind us, per attempt; about 10 s of tries in all. */
export const DEFAULT_INSTALL_BUDGET: InstallBudget = { attemptLockMs: 200, attempts: 20 };

/** Who holds a lock on the schema's watched tables now, for a message that says whom to ask. */
async function lockHolders(client: PoolClient, schema: string): Promise<string> {
  const { rows } = await client.query<{ pid: number; mode: string; rel: string; age: string | null; usename: string | null; state: string | null }>(
    `SELECT l.pid, l.mode, l.relation::regclass::text AS rel, a.usename, a.state,
            to_char(now() - a.xact_start, 'HH24:MI:SS') AS age
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.granted AND l.pid <> pg_backend_pid()
        AND l.relation IN (to_regclass($1), to_regclass($2))
      ORDER BY a.xact_start NULLS LAST LIMIT 3`,
    [qualified(schema, 'questions'), qualified(schema, 'exam_results')],
  );
  if (rows.length === 0) return 'no holder is left now: run it again';
  return rows.map((r) => `pid ${r.pid} (${r.usename ?? '?'}, ${r.state ?? '?'}, transaction open ${r.age ?? '?'}) holds ${r.mode} on ${r.rel}`).join('; ');
}

/**
 * The capture's objects, then its triggers under locks taken in one order (questions, then
 * exam_results and its children) in one statement, with a short lock_timeout and retries: a
 * writer never waits more than one attempt's lock timeout behind the install, and the install
 * never holds one table while it queues for the other.
 */
export async function installCapture(deps: JobDeps, options: { repair: boolean; budget?: Partial<InstallBudget> }): Promise<string[]> {
  const budget = { ...DEFAULT_INSTALL_BUDGET, ...options.budget };
  return withClient(deps.pool, async (client) => {
    for (const sql of captureInstallSql()) await client.query(sql);
    // Event triggers need a superuser; without them the capture check reports the missing watcher.
    const { rows: su } = await client.query<{ su: boolean }>(`SELECT rolsuper AS su FROM pg_roles WHERE rolname = current_user`);
    if (su[0]?.su) await client.query(eventTriggersSql());
    let last: unknown;
    for (let attempt = 1; attempt <= budget.attempts; attempt++) {
      await client.query('BEGIN');
      try {
        await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(budget.attemptLockMs))}`);
        await client.query(captureLockSql(deps.schema));
        const { rows } = await client.query<{ done: string[] }>(captureInstallCallSql(options.repair), [deps.schema]);
        await client.query('COMMIT');
        return rows[0]?.done ?? [];
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        if ((err as { code?: string }).code !== '55P03') throw classifyDbError(err, `installing the change capture on ${deps.schema}`);
        last = err;
        await new Promise((resolve) => setTimeout(resolve, Math.min(1_000, 50 * attempt)));
      }
    }
    throw new AttemptOpsError(
      'timeout',
      `installing the change capture on ${deps.schema}: exam_results or questions stayed locked through ${budget.attempts} tries of ${budget.attemptLockMs} ms (${await lockHolders(client, deps.schema)})`,
      { cause: last },
    );
  });
}

/** How long an index build may wait for older transactions before it gives up (ms). */
export const DEFAULT_INDEX_WAIT_MS = 30_000;

interface OldTransaction {
  pid: number;
  usename: string | null;
  age_s: number;
  state: string | null;
}

/**
 * Sessions of this database whose transaction CREATE INDEX CONCURRENTLY would wait for: those
 * with a snapshot (backend_xmin) or a lock on the table, older than a second (younger ones end
 * before they matter).
 */
async function oldTransactions(client: PoolClient, table: string): Promise<OldTransaction[]> {
  const { rows } = await client.query<OldTransaction>(
    `SELECT a.pid, a.usename, extract(epoch FROM now() - a.xact_start)::int AS age_s, a.state
       FROM pg_stat_activity a
      WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.backend_type = 'client backend'
        AND a.xact_start < now() - interval '1 second'
        AND (a.backend_xmin IS NOT NULL OR a.backend_xid IS NOT NULL
             OR EXISTS (SELECT 1 FROM pg_locks l WHERE l.pid = a.pid AND l.relation = to_regclass($1)))
      ORDER BY a.xact_start`,
    [table],
  );
  return rows;
}

function describe(rows: OldTransaction[]): string {
  return rows
    .slice(0, 3)
    .map((r) => `pid ${r.pid} (${r.usename ?? '?'}, ${r.state ?? '?'}) has had a transaction open for ${r.age_s} s`)
    .join('; ');
}

/**
 * CREATE INDEX CONCURRENTLY that waits, within a stated budget, for the transactions it would
 * otherwise wait on inside the build, and fails naming them instead: a build that fails mid-way
 * leaves an INVALID index behind, so it is only started when nothing old is in its way, and if it
 * still fails its leftover is dropped.
 */
export async function buildIndexConcurrently(
  deps: JobDeps, table: string, index: string, statements: readonly string[], waitMs = DEFAULT_INDEX_WAIT_MS,
): Promise<void> {
  await withClient(deps.pool, async (client, spoil) => {
    try {
      const deadline = Date.now() + waitMs;
      for (;;) {
        const old = await oldTransactions(client, table);
        if (old.length === 0) break;
        if (Date.now() >= deadline) {
          throw new AttemptOpsError(
            'timeout',
            `building ${index} CONCURRENTLY would wait for older transactions, and they did not end within ${Math.round(waitMs / 1000)} s: ${describe(old)}. End them (or wait) and run it again`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      const left = Math.max(1_000, deadline - Date.now());
      await client.query(`SET lock_timeout = ${left}`);
      await client.query(`SET statement_timeout = ${15 * 60_000}`);
      try {
        for (const s of statements) await client.query({ text: s, query_timeout: 15 * 60_000 + 5_000 } as never);
      } catch (err) {
        const why = classifyDbError(err, `building ${index}`);
        const old = await oldTransactions(client, table).catch(() => []);
        // Never leave an INVALID index: a plain DROP takes a brief lock, and fails fast if it cannot.
        await client.query(`SET lock_timeout = 2000`);
        const dropped = await client
          .query(`DROP INDEX IF EXISTS ${index}`)
          .then(() => 'its INVALID leftover was dropped')
          .catch((e) => `its INVALID leftover could not be dropped (${oneLine(e)}): bootstrap drops and rebuilds it`);
        throw new AttemptOpsError(why.kind, `${oneLine(why)}${old.length ? `: ${describe(old)}` : ''}; ${dropped}`, { cause: err });
      }
    } finally {
      spoil(new Error('session timeouts were set for one index build: not reused'));
    }
  });
}

/**
 * The hourly refresh of attempt_mv (runbook "Long-Term"): REFRESH ... CONCURRENTLY, so readers
 * keep reading; a plain REFRESH when the view was never populated (CONCURRENTLY refuses those)
 * or when mode 'full' asks for it.
 *
 * Never two at once: EventBridge delivers at least once, and two concurrent refreshes would each
 * compute the whole diff. The refresh's own session takes a session-level advisory lock with
 * pg_try_advisory_lock, which never waits: a second run reports `skipped` at once and holds no
 * place in any lock queue.
 *
 * Every run is recorded in attempt_ops.job_runs, which mv_staleness reads: a 'running' row first,
 * then its outcome. Those writes go through the pool in autocommit, apart from the refresh's own
 * transaction, so a failed refresh still leaves its failure row.
 */
import {
  REPORT_VERSION, datum,
  type ActionReport, type MetricDatum, type RefreshMode, type RefreshReport,
} from '../contract/index.ts';
import { AttemptOpsError, ConfigError, classifyDbError, oneLine } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import type { PoolClient } from '../db/pool.ts';
import { JOB_RUNS } from '../sql/ops-schema.ts';
import { applyTimeouts, longStatement, type StatementTimeouts } from './analyze.ts';
import type { JobDeps } from './deps.ts';

/**
 * The advisory lock key: the ASCII bytes of "attempt" as one bigint. In pg_locks it shows as
 * classid 6386804, objid 1701671028, objsubid 1. Advisory locks are per database.
 */
export const REFRESH_LOCK_KEY = '27431116007633012';
/**
 * For sessions without a statement timeout, and the CLI's refresh and bootstrap sessions (the
 * pool's 30 s default is for checks): a 2M-row refresh takes well under a minute, so a quarter of
 * an hour is a stuck refresh.
 */
export const REFRESH_STATEMENT_TIMEOUT_MS = 15 * 60_000;

export interface RefreshOptions {
  mode?: RefreshMode;
  /** Plan and report; take no lock, record and change nothing. */
  dryRun?: boolean;
  /** statement_timeout of the refresh (ms), capped by the time the run has left; default: the session's. */
  statementTimeoutMs?: number;
  /** How long the refresh may wait for a lock on attempt_mv or its tables (ms); default: the session's. */
  lockTimeoutMs?: number;
}

/** What the refresh needs to know about attempt_mv before it starts. */
export interface MvState {
  kind: string | null;
  populated: boolean;
  /** A valid unique index on plain columns with no predicate: what CONCURRENTLY requires. */
  uniqueIndex: string | null;
  hasJobRuns: boolean;
}

/** The statements one refresh runs, and the refresh that really runs. */
export interface RefreshPlan {
  mode: RefreshMode;
  reason: string;
  sql: string[];
}

interface Refresher {
  plan(relation: string, mv: MvState): RefreshPlan;
}

/**
 * One entry per mode that can run. The statements run in order, in one transaction, on the
 * session that holds the advisory lock; a new mode is a new entry here.
 */
const REFRESHERS: Partial<Record<RefreshMode, Refresher>> = {
  concurrent: {
    plan: (relation, mv) =>
      mv.populated
        ? { mode: 'concurrent', reason: 'readers keep reading meanwhile', sql: [`REFRESH MATERIALIZED VIEW CONCURRENTLY ${relation}`] }
        : { mode: 'full', reason: 'never populated, and CONCURRENTLY needs a populated view', sql: [`REFRESH MATERIALIZED VIEW ${relation}`] },
  },
  full: {
    plan: (relation) => ({ mode: 'full', reason: 'as asked: readers of attempt_mv wait until it commits', sql: [`REFRESH MATERIALIZED VIEW ${relation}`] }),
  },
};

const UNAVAILABLE: Partial<Record<RefreshMode, string>> = {
  incremental: 'incremental refresh is not available yet: use concurrent or full',
};

/** Throws before any SQL for a mode that cannot run. */
export function refresherFor(mode: RefreshMode): Refresher {
  const refresher = REFRESHERS[mode];
  if (!refresher) throw new ConfigError(UNAVAILABLE[mode] ?? `refresh mode ${mode} is not available`);
  return refresher;
}

export async function inspectMv(deps: JobDeps): Promise<MvState> {
  try {
    const { rows } = await deps.pool.query<{ kind: string | null; populated: boolean | null; unique_index: string | null; has_job_runs: boolean }>(
      `SELECT c.relkind::text AS kind, c.relispopulated AS populated,
              (SELECT i.indexrelid::regclass::text FROM pg_index i
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                LIMIT 1) AS unique_index,
              to_regclass($2) IS NOT NULL AS has_job_runs
         FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid`,
      [qualified(deps.schema, 'attempt_mv'), JOB_RUNS],
    );
    const r = rows[0]!;
    return { kind: r.kind, populated: r.populated === true, uniqueIndex: r.unique_index, hasJobRuns: r.has_job_runs };
  } catch (err) {
    throw classifyDbError(err, 'inspecting attempt_mv');
  }
}

const FIX = 'run attempt-ops bootstrap --apply';

function requireReady(mv: MvState, display: string): void {
  if (mv.kind === null) throw new AttemptOpsError('missing-object', `${display} does not exist: ${FIX}`);
  if (mv.kind !== 'm') throw new AttemptOpsError('missing-object', `${display} is not a materialized view (relkind ${mv.kind}): drop or rename it, then ${FIX}`);
  if (mv.uniqueIndex === null) throw new AttemptOpsError('missing-object', `${display} has no unique index on id (a concurrent refresh needs one): ${FIX}`);
  if (!mv.hasJobRuns) throw new AttemptOpsError('missing-object', `the refresh audit table attempt_ops.job_runs does not exist: ${FIX}`);
}

type Outcome = 'success' | 'failure' | 'skipped';

async function recordStart(deps: JobDeps, startedAt: Date, plan: RefreshPlan, requested: RefreshMode): Promise<string> {
  const { rows } = await deps.pool.query<{ id: string }>(
    `INSERT INTO ${JOB_RUNS} (job, target, started_at, mode, outcome, details)
     VALUES ('refresh-mv', $1, $2, $3, 'running', $4) RETURNING id`,
    [deps.target, startedAt, plan.mode, JSON.stringify({ requestedMode: requested, reason: plan.reason })],
  );
  return rows[0]!.id;
}

async function recordFinish(deps: JobDeps, id: string, outcome: Outcome, rows: number | null, error: string | null, durationMs: number): Promise<void> {
  await deps.pool.query(
    `UPDATE ${JOB_RUNS} SET finished_at = now(), outcome = $2, rows = $3, error = $4,
            details = details || jsonb_build_object('durationMs', $5::int)
      WHERE id = $1`,
    [id, outcome, rows, error, durationMs],
  );
}

async function recordSkipped(deps: JobDeps, startedAt: Date, requested: RefreshMode, reason: string): Promise<void> {
  await deps.pool.query(
    `INSERT INTO ${JOB_RUNS} (job, target, started_at, finished_at, mode, outcome, details)
     VALUES ('refresh-mv', $1, $2, now(), $3, 'skipped', $4)`,
    [deps.target, startedAt, requested, JSON.stringify({ requestedMode: requested, reason })],
  );
}

/** Is another session holding the refresh lock? For a dry run, which must not take it. */
async function refreshInProgress(deps: JobDeps): Promise<boolean> {
  const { rows } = await deps.pool.query<{ held: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM pg_locks
                     WHERE locktype = 'advisory' AND granted AND objsubid = 1
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND ((classid::bigint << 32) | objid::bigint) = $1::bigint) AS held`,
    [REFRESH_LOCK_KEY],
  );
  return rows[0]?.held === true;
}

/**
 * The plan's statements in one transaction, then the row count the refresh left. SET LOCAL keeps
 * the timeouts from leaking into the pooled session. onBroken hears of a session that could not
 * even roll back, so it is dropped rather than reused.
 */
async function execute(
  client: PoolClient, plan: RefreshPlan, relation: string,
  requested: Partial<StatementTimeouts>, remainingMs: (() => number) | undefined, onBroken: (err: Error) => void,
): Promise<number> {
  await client.query('BEGIN');
  try {
    const timeouts = await applyTimeouts(client, 'LOCAL', requested, REFRESH_STATEMENT_TIMEOUT_MS, remainingMs);
    for (const sql of plan.sql) await client.query(longStatement(sql, timeouts.statementTimeoutMs));
    const { rows } = await client.query<{ n: string }>(longStatement(`SELECT count(*) AS n FROM ${relation}`, timeouts.statementTimeoutMs));
    await client.query('COMMIT');
    return Number(rows[0]?.n ?? 0);
  } catch (err) {
    await client.query('ROLLBACK').catch(onBroken);
    throw err;
  }
}

export async function runRefresh(deps: JobDeps, options: RefreshOptions = {}): Promise<RefreshReport> {
  const requested: RefreshMode = options.mode ?? 'concurrent';
  const refresher = refresherFor(requested);
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const relation = qualified(deps.schema, 'attempt_mv');
  const display = `${deps.schema}.attempt_mv`;

  const mv = await inspectMv(deps);
  requireReady(mv, display);
  const plan = refresher.plan(relation, mv);
  const before = { populated: mv.populated, uniqueIndex: mv.uniqueIndex };
  const report = (action: ActionReport, metrics: MetricDatum[], notes: string[] = []): RefreshReport => ({
    version: REPORT_VERSION,
    job: 'refresh-mv',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    status: 'ok',
    dryRun: options.dryRun === true,
    mode: requested,
    actions: [action],
    notes,
    metrics,
  });

  if (options.dryRun) {
    const busy = await refreshInProgress(deps).catch((err) => {
      throw classifyDbError(err, 'looking for a running refresh');
    });
    const notes = busy ? ['another refresh is running now: this run would be skipped'] : [];
    return report({ object: display, action: 'refresh', outcome: 'planned', message: `would run a ${plan.mode} refresh (${plan.reason})`, sql: plan.sql, before }, [], notes);
  }

  let client: PoolClient;
  try {
    client = await deps.pool.connect();
  } catch (err) {
    throw classifyDbError(err, 'refresh');
  }
  let broken: Error | undefined;
  // A checked-out client whose backend dies emits 'error'; unheard, it would crash the process.
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [REFRESH_LOCK_KEY]);
    if (rows[0]?.locked !== true) {
      const reason = 'another refresh of attempt_mv is running';
      await recordSkipped(deps, startedAt, requested, reason);
      deps.log?.info('refresh skipped', { reason });
      return report({ object: display, action: 'refresh', outcome: 'skipped', message: `skipped: ${reason}`, before }, []);
    }
    try {
      const runId = await recordStart(deps, startedAt, plan, requested);
      const started = performance.now();
      let count: number;
      try {
        count = await execute(client, plan, relation, options, deps.remainingMs, (rollbackErr) => {
          broken = rollbackErr;
        });
      } catch (err) {
        const e = classifyDbError(err, `refresh of ${display}`);
        // No SQLSTATE means the client gave up (read timeout, lost socket): the server may still be
        // running the refresh on this session, so it must not be reused.
        if (e.kind === 'connection' || !(err as { code?: string }).code) broken ??= e;
        // The failure row is what mv_staleness and on-call see; losing it must not hide the cause.
        await recordFinish(deps, runId, 'failure', null, oneLine(e), Math.round(performance.now() - started)).catch((recErr) =>
          deps.log?.error('could not record the failed refresh', { error: classifyDbError(recErr).message }),
        );
        throw e;
      }
      const durationMs = Math.round(performance.now() - started);
      await recordFinish(deps, runId, 'success', count, null, durationMs);
      deps.log?.info('refreshed', { mode: plan.mode, rows: count, durationMs });
      return report(
        { object: display, action: 'refresh', outcome: 'done', message: `${plan.mode} refresh, ${count} rows (${plan.reason})`, sql: plan.sql, durationMs, before, after: { populated: true, rows: count, mode: plan.mode } },
        [datum('attempt_mv_refresh_duration_ms', durationMs, deps.target), datum('attempt_mv_row_count', count, deps.target)],
      );
    } finally {
      if (!broken) {
        await client.query('SELECT pg_advisory_unlock($1::bigint)', [REFRESH_LOCK_KEY]).catch((err: Error) => {
          // Dropping the session releases the lock too.
          broken = err;
        });
      }
    }
  } catch (err) {
    throw classifyDbError(err, 'refresh');
  } finally {
    client.off('error', onError);
    // A session that may still hold the advisory lock is dropped: the server releases it then.
    client.release(broken);
  }
}

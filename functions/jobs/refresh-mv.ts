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
 *
 * Mode 'incremental' keeps attempt_mv as a table instead (docs/INCREMENTAL_REFRESH.md): the first
 * such run converts the materialized view once, and from then on each run recomputes only the
 * students the change log names. On that table, 'concurrent' and 'full' rebuild it whole without
 * blocking its readers, since REFRESH MATERIALIZED VIEW no longer applies.
 */
import {
  REPORT_VERSION, datum,
  type ActionReport, type MetricDatum, type RefreshMode, type RefreshReport,
} from '../contract/index.ts';
import { AttemptOpsError, ConfigError, classifyDbError, oneLine } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import { withClient, type PoolClient } from '../db/pool.ts';
import {
  CAPTURED_TABLES, CAPTURE_TRIGGERS, COPY_BUILD_NAME, STUDENT_INDEX, TABLE_COPY_COMMENT,
  captureInstallSql, createCopySql, fullRebuildSql, incrementalSql, studentIndexSql, swapSql,
} from '../sql/incremental.ts';
import { JOB_RUNS } from '../sql/ops-schema.ts';
import { applyTimeouts, longStatement, type StatementTimeouts } from './analyze.ts';
import type { JobDeps } from './deps.ts';
import {
  DEFAULT_FALLBACK, convertToTable, installCapture, rebuildCopy, refreshStudents, type FallbackPolicy, type StepContext,
} from './incremental/table-copy.ts';

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
  /** Incremental only: when a change is large enough that a full rebuild is cheaper. */
  fallback?: Partial<FallbackPolicy>;
}

/** What the refresh needs to know about attempt_mv before it starts. */
export interface MvState {
  kind: string | null;
  populated: boolean;
  /** A valid unique index on plain columns with no predicate: what CONCURRENTLY requires. */
  uniqueIndex: string | null;
  hasJobRuns: boolean;
  /** A table carrying our marker: the table-backed copy that incremental refreshes maintain. */
  tableCopy: boolean;
  /** Every change-capture trigger is in place and enabled on exam_results and questions. */
  captureInstalled: boolean;
  /**
   * An index on exam_results leading with student_id, either without a predicate or ours (whose
   * predicate is the view's WHERE): valid, only an INVALID leftover of ours, or none. Read from
   * pg_index alone: pg_get_expr would wait for a lock on exam_results.
   */
  studentIndex: 'valid' | 'invalid' | null;
}

/** What one refresh did. */
export interface Ran {
  mode: RefreshMode;
  reason: string;
  rows: number;
  sql: string[];
  /** Done before the refresh itself (the conversion to a table), reported ahead of it. */
  before?: ActionReport[];
  notes?: string[];
  /** Kept in the job_runs row's details. */
  details?: Record<string, unknown>;
}

/** How a plan's steps reach the database: each call is one transaction on the locked session. */
export interface ExecContext {
  schema: string;
  relation: string;
  fallback: FallbackPolicy;
  transaction<T>(isolation: 'read committed' | 'repeatable read', fn: (step: StepContext) => Promise<T>): Promise<T>;
  /** Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY), on a session of their own. */
  alone(statements: readonly string[]): Promise<void>;
}

/** The statements one refresh runs, and the refresh that really runs. */
export interface RefreshPlan {
  mode: RefreshMode;
  reason: string;
  sql: string[];
  /** Without it, the statements run in order in one transaction and the rows are counted after. */
  run?: (ctx: ExecContext) => Promise<Ran>;
}

interface Refresher {
  plan(relation: string, mv: MvState, schema: string): RefreshPlan;
}

const TABLE_REBUILD_REASON = 'table-backed copy: rebuilt whole by DELETE and INSERT in one transaction; readers see the old rows until it commits';

/** The table-backed copy, rebuilt whole whatever mode asked for it. */
function tableRebuildPlan(relation: string, schema: string): RefreshPlan {
  const f = fullRebuildSql(schema, relation);
  return {
    mode: 'full',
    reason: TABLE_REBUILD_REASON,
    sql: [f.consume, f.delete, f.insert, ...f.legacy, f.state],
    run: (ctx) =>
      ctx.transaction('repeatable read', async (step) => {
        const rebuilt = await rebuildCopy(step, relation, []);
        return { mode: 'full', reason: TABLE_REBUILD_REASON, rows: rebuilt.rows, sql: rebuilt.sql };
      }),
  };
}

const CONVERT_REASON =
  'converts the materialized view once into a table-backed copy with change capture, built from the view (readers keep reading the old view until a brief ACCESS EXCLUSIVE lock at the swap); later runs recompute only what changed';

/**
 * The conversion: the capture first, in its own short transaction (CREATE TRIGGER makes writers
 * wait while it holds its lock), then the copy built beside the view and swapped in. From the
 * moment the capture commits, every change is logged; the copy is built in a later snapshot, so
 * nothing falls between the two.
 */
function convertPlan(relation: string, schema: string, mv: MvState): RefreshPlan {
  const index = indexStep(schema, mv);
  return {
    mode: 'incremental',
    reason: CONVERT_REASON,
    sql: [...index.sql, ...captureInstallSql(schema), createCopySql(schema, COPY_BUILD_NAME), `INSERT INTO ${qualified(schema, COPY_BUILD_NAME)} SELECT ... (the view's SELECT)`, ...swapSql(schema, COPY_BUILD_NAME)],
    run: async (ctx) => {
      const indexed = await index.run(ctx);
      const captureSql: string[] = [];
      const t0 = performance.now();
      await ctx.transaction('read committed', (step) => installCapture(step, captureSql));
      const t1 = performance.now();
      const converted = await ctx.transaction('repeatable read', (step) => convertToTable(step, []));
      const t2 = performance.now();
      const display = `${schema}.attempt_mv`;
      return {
        mode: 'full',
        reason: 'converted to the table-backed copy, built from the view',
        rows: converted.rows,
        sql: converted.sql,
        before: [
          ...indexed,
          { object: `${schema}.exam_results, ${schema}.questions`, action: 'install change capture', outcome: 'done', message: 'statement-level triggers log the students and questions each write touches into attempt_ops.attempt_changes', sql: captureSql, durationMs: Math.round(t1 - t0) },
          {
            object: display, action: 'convert to table', outcome: 'done',
            message: `the materialized view is now a table-backed copy (same columns, indexes, owner and grants); the swap at the end took a brief ACCESS EXCLUSIVE lock on the old materialized view`,
            sql: converted.swapSql, durationMs: Math.round(t2 - t1), before: { kind: 'materialized view' }, after: { kind: 'table', rows: converted.rows },
          },
        ],
        details: { converted: true },
      };
    },
  };
}

function incrementalPlan(relation: string, schema: string, mv: MvState): RefreshPlan {
  const plan = incrementalOnTable(relation, schema, mv.captureInstalled);
  const index = indexStep(schema, mv);
  if (index.sql.length === 0) return plan;
  return {
    ...plan,
    sql: [...index.sql, ...plan.sql],
    run: async (ctx) => {
      const indexed = await index.run(ctx);
      const ran = await plan.run!(ctx);
      return { ...ran, before: [...indexed, ...(ran.before ?? [])] };
    },
  };
}

/**
 * The index the incremental path reads exam_results through, built when it is missing (the
 * conversion, or someone dropped it): CONCURRENTLY, on its own session, before the refresh's
 * transaction, so writers keep writing. The advisory lock keeps a second builder away.
 */
function indexStep(schema: string, mv: MvState): { sql: string[]; run: (ctx: ExecContext) => Promise<ActionReport[]> } {
  if (mv.studentIndex === 'valid') return { sql: [], run: async () => [] };
  const sql = studentIndexSql(schema, mv.studentIndex === 'invalid');
  return {
    sql,
    run: async (ctx) => {
      const t0 = performance.now();
      await ctx.alone(sql);
      return [{
        object: `${schema}.${STUDENT_INDEX}`, action: 'create index', outcome: 'done',
        message: "runbook section 3's index on exam_results (student_id, completed_at): each incremental refresh reads the touched students through it (built CONCURRENTLY)",
        sql, durationMs: Math.round(performance.now() - t0),
      }];
    },
  };
}

function incrementalOnTable(relation: string, schema: string, captureInstalled: boolean): RefreshPlan {
  if (!captureInstalled) {
    const rebuild = tableRebuildPlan(relation, schema);
    const reason = 'the change capture is missing: installed again, and the copy rebuilt since changes may have gone unlogged';
    return {
      mode: 'full',
      reason,
      sql: [...captureInstallSql(schema), ...rebuild.sql],
      run: async (ctx) => {
        const captureSql: string[] = [];
        await ctx.transaction('read committed', (step) => installCapture(step, captureSql));
        const ran = await rebuild.run!(ctx);
        return { ...ran, reason, sql: [...captureSql, ...ran.sql] };
      },
    };
  }
  // Only for the plan's listing: the run writes the statements with the server's own version,
  // which decides how the questionId cast is checked.
  const q = incrementalSql(schema, relation, 160000);
  return {
    mode: 'incremental',
    reason: 'only the students whose results or questions changed since the last run',
    sql: [...q.consume, q.summary, ...q.keys, q.sizing, q.deleteStudents, q.insertStudents, ...q.legacy, q.state],
    run: (ctx) =>
      ctx.transaction('repeatable read', async (step) => {
        const done = await refreshStudents(step, relation, ctx.fallback, []);
        if (done.rows !== null) {
          return {
            mode: 'incremental',
            reason: `${done.batches} logged change(s): ${done.students} student(s) recomputed, ${done.deleted} rows out, ${done.inserted} in`,
            rows: done.rows,
            sql: done.sql,
            details: { batches: done.batches, students: done.students, deleted: done.deleted, inserted: done.inserted },
          };
        }
        const rebuilt = await rebuildCopy(step, relation, []);
        return {
          mode: 'full',
          reason: `fell back to a full rebuild: ${done.fallbackReason}`,
          rows: rebuilt.rows,
          sql: [...done.sql, ...rebuilt.sql],
          details: { fallback: done.fallbackReason, batches: done.batches },
        };
      }),
  };
}

/**
 * One entry per mode. A plan without run() has its statements run in order, in one transaction,
 * on the session that holds the advisory lock; a new mode is a new entry here.
 */
const REFRESHERS: Record<RefreshMode, Refresher> = {
  concurrent: {
    plan: (relation, mv, schema) =>
      mv.tableCopy
        ? tableRebuildPlan(relation, schema)
        : mv.populated
          ? { mode: 'concurrent', reason: 'readers keep reading meanwhile', sql: [`REFRESH MATERIALIZED VIEW CONCURRENTLY ${relation}`] }
          : { mode: 'full', reason: 'never populated, and CONCURRENTLY needs a populated view', sql: [`REFRESH MATERIALIZED VIEW ${relation}`] },
  },
  full: {
    plan: (relation, mv, schema) =>
      mv.tableCopy
        ? tableRebuildPlan(relation, schema)
        : { mode: 'full', reason: 'as asked: readers of attempt_mv wait until it commits', sql: [`REFRESH MATERIALIZED VIEW ${relation}`] },
  },
  incremental: {
    plan: (relation, mv, schema) => (mv.tableCopy ? incrementalPlan(relation, schema, mv) : convertPlan(relation, schema, mv)),
  },
};

/** Throws before any SQL for a mode that cannot run. */
export function refresherFor(mode: RefreshMode): Refresher {
  const refresher = REFRESHERS[mode];
  if (!refresher) throw new ConfigError(`refresh mode ${mode} is not available`);
  return refresher;
}

export async function inspectMv(deps: JobDeps): Promise<MvState> {
  try {
    const { rows } = await deps.pool.query<{
      kind: string | null; populated: boolean | null; unique_index: string | null; has_job_runs: boolean; table_copy: boolean | null; triggers: number;
      student_index: boolean; student_index_invalid: boolean;
    }>(
      `SELECT c.relkind::text AS kind, c.relispopulated AS populated,
              (SELECT i.indexrelid::regclass::text FROM pg_index i
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                LIMIT 1) AS unique_index,
              to_regclass($2) IS NOT NULL AS has_job_runs,
              c.relkind = 'r' AND obj_description(c.oid, 'pg_class') = $3 AS table_copy,
              (SELECT count(*)::int FROM pg_trigger t
                WHERE t.tgrelid = ANY (ARRAY[to_regclass($4), to_regclass($5)]) AND t.tgname = ANY ($6::text[]) AND t.tgenabled <> 'D') AS triggers,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($4) AND i.indisvalid AND i.indisready AND i.indkey[0] =
                        (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attname = 'student_id')
                        AND (i.indpred IS NULL OR i.indexrelid = to_regclass($7))) AS student_index,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = to_regclass($7) AND NOT (i.indisvalid AND i.indisready)) AS student_index_invalid
         FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid`,
      [
        qualified(deps.schema, 'attempt_mv'), JOB_RUNS, TABLE_COPY_COMMENT,
        qualified(deps.schema, CAPTURED_TABLES[0]), qualified(deps.schema, CAPTURED_TABLES[1]), CAPTURE_TRIGGERS,
        qualified(deps.schema, STUDENT_INDEX),
      ],
    );
    const r = rows[0]!;
    return {
      kind: r.kind,
      populated: r.populated === true,
      uniqueIndex: r.unique_index,
      hasJobRuns: r.has_job_runs,
      tableCopy: r.table_copy === true,
      captureInstalled: r.triggers === CAPTURED_TABLES.length * CAPTURE_TRIGGERS.length,
      studentIndex: r.student_index ? 'valid' : r.student_index_invalid ? 'invalid' : null,
    };
  } catch (err) {
    throw classifyDbError(err, 'inspecting attempt_mv');
  }
}

const FIX = 'run attempt-ops bootstrap --apply';

function requireReady(mv: MvState, display: string): void {
  if (mv.kind === null) throw new AttemptOpsError('missing-object', `${display} does not exist: ${FIX}`);
  if (mv.kind !== 'm' && !mv.tableCopy) {
    throw new AttemptOpsError('missing-object', `${display} is neither a materialized view nor attempt-ops' table-backed copy (relkind ${mv.kind}): drop or rename it, then ${FIX}`);
  }
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

/** ran: the refresh that really ran, which may differ from the plan (an incremental run that fell back). */
async function recordFinish(deps: JobDeps, id: string, outcome: Outcome, rows: number | null, error: string | null, durationMs: number, ran?: Ran): Promise<void> {
  await deps.pool.query(
    `UPDATE ${JOB_RUNS} SET finished_at = now(), outcome = $2, rows = $3, error = $4, mode = coalesce($6, mode),
            details = details || jsonb_build_object('durationMs', $5::int) || $7::jsonb
      WHERE id = $1`,
    [id, outcome, rows, error, durationMs, ran?.mode ?? null, JSON.stringify(ran ? { reason: ran.reason, ...ran.details } : {})],
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
 * One transaction on the locked session. SET LOCAL keeps the timeouts from leaking into the pooled
 * session. onBroken hears of a session that could not even roll back, so it is dropped rather
 * than reused.
 */
async function transaction<T>(
  client: PoolClient, isolation: 'read committed' | 'repeatable read', requested: Partial<StatementTimeouts>,
  remainingMs: (() => number) | undefined, onBroken: (err: Error) => void, fn: (timeouts: StatementTimeouts) => Promise<T>,
): Promise<T> {
  await client.query(`BEGIN ISOLATION LEVEL ${isolation === 'repeatable read' ? 'REPEATABLE READ' : 'READ COMMITTED'}`);
  try {
    const timeouts = await applyTimeouts(client, 'LOCAL', requested, REFRESH_STATEMENT_TIMEOUT_MS, remainingMs);
    const result = await fn(timeouts);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(onBroken);
    throw err;
  }
}

/** A plan without its own run(): its statements, then the row count the refresh left. */
function statementsRun(plan: RefreshPlan): (ctx: ExecContext) => Promise<Ran> {
  return (ctx) =>
    ctx.transaction('read committed', async ({ client, statementTimeoutMs }) => {
      for (const sql of plan.sql) await client.query(longStatement(sql, statementTimeoutMs));
      const { rows } = await client.query<{ n: string }>(longStatement(`SELECT count(*) AS n FROM ${ctx.relation}`, statementTimeoutMs));
      return { mode: plan.mode, reason: plan.reason, rows: Number(rows[0]?.n ?? 0), sql: plan.sql };
    });
}

export async function runRefresh(deps: JobDeps, options: RefreshOptions = {}): Promise<RefreshReport> {
  const requested: RefreshMode = options.mode ?? 'concurrent';
  const refresher = refresherFor(requested);
  const fallback = resolveFallback(options.fallback);
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const relation = qualified(deps.schema, 'attempt_mv');
  const display = `${deps.schema}.attempt_mv`;

  const mv = await inspectMv(deps);
  requireReady(mv, display);
  const plan = refresher.plan(relation, mv, deps.schema);
  const before = { populated: mv.populated, uniqueIndex: mv.uniqueIndex, kind: mv.tableCopy ? 'table' : 'materialized view' };
  const report = (actions: ActionReport[], metrics: MetricDatum[], notes: string[] = []): RefreshReport => ({
    version: REPORT_VERSION,
    job: 'refresh-mv',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    status: 'ok',
    dryRun: options.dryRun === true,
    mode: requested,
    actions,
    notes,
    metrics,
  });

  if (options.dryRun) {
    const busy = await refreshInProgress(deps).catch((err) => {
      throw classifyDbError(err, 'looking for a running refresh');
    });
    const notes = busy ? ['another refresh is running now: this run would be skipped'] : [];
    return report([{ object: display, action: 'refresh', outcome: 'planned', message: `would run ${plan.mode === 'incremental' ? 'an' : 'a'} ${plan.mode} refresh (${plan.reason})`, sql: plan.sql, before }], [], notes);
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
  const ctx: ExecContext = {
    schema: deps.schema,
    relation,
    fallback,
    transaction: (isolation, fn) =>
      transaction(client, isolation, options, deps.remainingMs, (rollbackErr) => {
        broken = rollbackErr;
      }, (t) => fn({ client, schema: deps.schema, statementTimeoutMs: t.statementTimeoutMs })),
    alone: (statements) => runAlone(deps, statements, options),
  };
  try {
    const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [REFRESH_LOCK_KEY]);
    if (rows[0]?.locked !== true) {
      const reason = 'another refresh of attempt_mv is running';
      await recordSkipped(deps, startedAt, requested, reason);
      deps.log?.info('refresh skipped', { reason });
      return report([{ object: display, action: 'refresh', outcome: 'skipped', message: `skipped: ${reason}`, before }], []);
    }
    try {
      const runId = await recordStart(deps, startedAt, plan, requested);
      const started = performance.now();
      let ran: Ran;
      try {
        ran = await (plan.run ?? statementsRun(plan))(ctx);
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
      const count = ran.rows;
      await recordFinish(deps, runId, 'success', count, null, durationMs, ran);
      deps.log?.info('refreshed', { mode: ran.mode, rows: count, durationMs });
      return report(
        [
          ...(ran.before ?? []),
          { object: display, action: 'refresh', outcome: 'done', message: `${ran.mode} refresh, ${count} rows (${ran.reason})`, sql: ran.sql, durationMs, before, after: { populated: true, rows: count, mode: ran.mode } },
        ],
        [datum('attempt_mv_refresh_duration_ms', durationMs, deps.target), datum('attempt_mv_row_count', count, deps.target)],
        ran.notes,
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

/**
 * Each statement in autocommit on a session dropped afterwards, so its SETs die with it: CREATE
 * INDEX CONCURRENTLY and the like, which cannot run in a transaction block. Bootstrap uses it too.
 */
export async function runAlone(deps: JobDeps, statements: readonly string[], requested: Partial<StatementTimeouts>): Promise<void> {
  await withClient(deps.pool, async (c, spoil) => {
    try {
      const t = await applyTimeouts(c, 'SESSION', requested, REFRESH_STATEMENT_TIMEOUT_MS, deps.remainingMs);
      for (const s of statements) await c.query(longStatement(s, t.statementTimeoutMs));
    } finally {
      spoil(new Error('session timeouts were set for one job: not reused'));
    }
  });
}

function resolveFallback(given: Partial<FallbackPolicy> | undefined): FallbackPolicy {
  const policy = { ...DEFAULT_FALLBACK, ...given };
  if (!(policy.fraction >= 0 && policy.fraction <= 1)) throw new ConfigError('fallback.fraction must be between 0 and 1');
  if (!(Number.isInteger(policy.minRows) && policy.minRows >= 0)) throw new ConfigError('fallback.minRows must be a whole number, 0 or more');
  return policy;
}

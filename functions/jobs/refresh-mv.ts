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
  CAPTURED_TABLES, CAPTURE_STATUS_SQL, COPY_BUILD_NAME, PRUNE_SQL, REGISTER_SQL, STUDENT_INDEX, TABLE_COPY_COMMENT, UNREGISTER_SQL,
  createCopySql, fullRebuildSql, incrementalSql, studentIndexSql, swapSql,
} from '../sql/incremental.ts';
import { buildIndexConcurrently, installCapture, type InstallBudget } from './incremental/capture-install.ts';
import { JOB_RUNS } from '../sql/ops-schema.ts';
import { JOB_RUN_FINISH_SQL, JOB_RUN_RECORD_SQL, JOB_RUN_START_SQL, isMissingAuditFunction } from '../sql/audit.ts';
import { applyTimeouts, longStatement, type StatementTimeouts } from './analyze.ts';
import type { JobDeps } from './deps.ts';
import {
  DEFAULT_FALLBACK, DEFAULT_VERIFY, convertToTable, rebuildCopy, refreshStudents, viewIsV1,
  type FallbackPolicy, type StepContext, type VerifyPolicy,
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
  /** Incremental only: how much of the copy each run compares with the view. */
  verify?: Partial<VerifyPolicy>;
  /** How long building the student index may wait for older transactions (ms); default 30 s. */
  indexWaitMs?: number;
  /** How the capture install (by an owner's run) tries for its locks. */
  installBudget?: Partial<InstallBudget>;
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
  /** Every change-capture trigger is in place and enabled always, on every watched table and partition. */
  captureInstalled: boolean;
  /** What attempt_ops.capture_status reports (none: trusted); not_installed when it does not exist. */
  captureProblems: { problem: string; detail: string }[];
  /** This session's role owns exam_results, so it may install or repair the capture. */
  ownsTables: boolean;
  /** May create the copy beside the materialized view (CREATE on the schema) and drop the view (its owner). */
  mayConvert: boolean;
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
  verify: VerifyPolicy;
  options: RefreshOptions;
  deps: JobDeps;
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
        return { mode: 'full', reason: TABLE_REBUILD_REASON, rows: rebuilt.rows, sql: rebuilt.sql, notes: rebuilt.v1 ? [] : [NOT_V1_NOTE] };
      }),
  };
}

const NOT_V1_NOTE = 'the view is not the V1 text: attempt_mv was rebuilt from the view itself, and incremental runs rebuild it whole until the view is V1 again';

const CONVERT_REASON =
  'converts the materialized view once into a table-backed copy with change capture, built from the view (readers keep reading the old view until a brief ACCESS EXCLUSIVE lock at the swap); later runs recompute only what changed';

const OWNER_WORK = (schema: string) =>
  `run attempt-ops bootstrap --apply (or this refresh) as the owner of ${schema}.exam_results, which the maintainer role is not`;

function captureBroken(mv: MvState): { problem: string; detail: string }[] {
  // DDL since the last rebuild is what the rebuild that follows mends; a stale cursor is not ours to fix here.
  // The DDL watcher's absence is reported by the capture check; the triggers themselves still see
  // every write, and what it would have caught (a new partition, a rename) shows up here directly.
  return mv.captureProblems.filter((p) => !['ddl_since_rebuild', 'consumer_stale', 'ddl_watcher'].includes(p.problem));
}

/**
 * The conversion: the capture must be in place first (bootstrap installs it; an owner's run
 * repairs it), the student index built, refresh-mv's cursor registered in a transaction of its
 * own, and then the copy built beside the view and swapped in. The cursor commits before the
 * copy's snapshot is taken, so no change falls between the two; a failed conversion drops the
 * cursor again, so nothing is left that makes the log grow.
 */
function convertPlan(relation: string, schema: string, mv: MvState): RefreshPlan {
  const index = indexStep(schema, mv);
  return {
    mode: 'incremental',
    reason: CONVERT_REASON,
    sql: [...index.sql, REGISTER_SQL, createCopySql(schema, COPY_BUILD_NAME), `INSERT INTO ${qualified(schema, COPY_BUILD_NAME)} SELECT ... (the view's SELECT)`, ...swapSql(schema, COPY_BUILD_NAME)],
    run: async (ctx) => {
      if (mv.captureProblems.some((p) => p.problem === 'turned_off')) {
        throw new AttemptOpsError('config', `the change capture is turned off on ${schema} (bootstrap --no-capture): incremental refresh needs it; use --mode concurrent, or bootstrap --apply with the capture`);
      }
      if (!mv.mayConvert) {
        throw new AttemptOpsError('permission', `converting ${schema}.attempt_mv into the table-backed copy needs CREATE on schema ${schema} and ownership of attempt_mv: ${OWNER_WORK(schema)}`);
      }
      const before: ActionReport[] = [];
      if (captureBroken(mv).length > 0) {
        if (!mv.ownsTables) {
          throw new AttemptOpsError('permission', `the change capture on ${schema} is not in place (${captureBroken(mv).map((p) => p.detail).join('; ')}): ${OWNER_WORK(schema)}`);
        }
        const t0 = performance.now();
        const done = await installCapture(ctx.deps, { repair: true, budget: ctx.options.installBudget });
        before.push({ object: `${schema}.exam_results, ${schema}.questions`, action: 'install change capture', outcome: 'done', message: done.join('; ') || 'in place', durationMs: Math.round(performance.now() - t0) });
      }
      const notes: string[] = [];
      before.push(...(await index.run(ctx).catch((err) => {
        const e = classifyDbError(err);
        // A partitioned exam_results cannot be indexed CONCURRENTLY in one statement: slow, not wrong.
        if ((err as { cause?: { code?: string } }).cause?.code !== '0A000') throw err;
        notes.push(`${schema}.${STUDENT_INDEX} was not built (${oneLine(e)}): create it on each partition CONCURRENTLY, or each run scans exam_results`);
        return [];
      })));
      const t1 = performance.now();
      await ctx.deps.pool.query(REGISTER_SQL, [schema]);
      let converted: Awaited<ReturnType<typeof convertToTable>>;
      try {
        converted = await ctx.transaction('repeatable read', async (step) => {
          // Our own DROP and RENAME are not DDL events to report.
          await step.client.query(`SET LOCAL attempt_ops.capture_ddl = 'on'`);
          if (!(await viewIsV1(step, null)).v1) {
            throw new AttemptOpsError('config', `${schema}.attempt is not the V1 text (CONTRACT.md section 1): the incremental copy recomputes students from that text, so it refuses to convert; use --mode concurrent, or restore the view (remediate recreate-view)`);
          }
          return convertToTable(step, []);
        });
      } catch (err) {
        await ctx.deps.pool.query(UNREGISTER_SQL, [schema]).catch(() => undefined);
        throw err;
      }
      const t2 = performance.now();
      const display = `${schema}.attempt_mv`;
      return {
        mode: 'full',
        reason: 'converted to the table-backed copy, built from the view',
        rows: converted.rows,
        sql: converted.sql,
        before: [
          ...before,
          {
            object: display, action: 'convert to table', outcome: 'done',
            message: `the materialized view is now a table-backed copy (same columns, indexes, owner and grants, column grants included); the swap at the end took a brief ACCESS EXCLUSIVE lock on the old materialized view`,
            sql: converted.swapSql, durationMs: Math.round(t2 - t1), before: { kind: 'materialized view' }, after: { kind: 'table', rows: converted.rows },
          },
        ],
        notes,
        details: { converted: true },
      };
    },
  };
}

function incrementalPlan(relation: string, schema: string, mv: MvState): RefreshPlan {
  const plan = incrementalOnTable(relation, schema, mv);
  const index = indexStep(schema, mv);
  if (index.sql.length === 0) return plan;
  return {
    ...plan,
    sql: [...index.sql, ...plan.sql],
    run: async (ctx) => {
      // Owner work: without the index every run scans exam_results, which is slow, not wrong; so
      // a build that cannot be done (not the owner, a partitioned table, a renamed column) is a note.
      const note: string[] = [];
      let indexed: ActionReport[] = [];
      if (!mv.ownsTables) note.push(`${schema}.${STUDENT_INDEX} is missing and only the owner of exam_results may build it: each run scans exam_results until bootstrap --apply builds it`);
      else {
        indexed = await index.run(ctx).catch((err) => {
          note.push(`${schema}.${STUDENT_INDEX} could not be built (${oneLine(classifyDbError(err))}): each run scans exam_results until it exists`);
          return [];
        });
      }
      const ran = await plan.run!(ctx);
      return { ...ran, before: [...indexed, ...(ran.before ?? [])], notes: [...(ran.notes ?? []), ...note] };
    },
  };
}

/**
 * The index the incremental path reads exam_results through, built when it is missing (the
 * conversion, or someone dropped it): CONCURRENTLY, on its own session, before the refresh's
 * transaction, so writers keep writing; it waits for older transactions within a budget and
 * fails naming them rather than leave an INVALID index. The advisory lock keeps a second builder away.
 */
function indexStep(schema: string, mv: MvState): { sql: string[]; run: (ctx: ExecContext) => Promise<ActionReport[]> } {
  if (mv.studentIndex === 'valid') return { sql: [], run: async () => [] };
  const sql = studentIndexSql(schema, mv.studentIndex === 'invalid');
  return {
    sql,
    run: async (ctx) => {
      const t0 = performance.now();
      await buildIndexConcurrently(ctx.deps, qualified(schema, 'exam_results'), qualified(schema, STUDENT_INDEX), sql, ctx.options.indexWaitMs);
      return [{
        object: `${schema}.${STUDENT_INDEX}`, action: 'create index', outcome: 'done',
        message: "runbook section 3's index on exam_results (student_id, completed_at): each incremental refresh reads the touched students through it (built CONCURRENTLY)",
        sql, durationMs: Math.round(performance.now() - t0),
      }];
    },
  };
}

function incrementalOnTable(relation: string, schema: string, mv: MvState): RefreshPlan {
  const broken = captureBroken(mv);
  if (broken.length > 0) {
    const rebuild = tableRebuildPlan(relation, schema);
    const off = broken.some((p) => p.problem === 'turned_off');
    const why = broken.map((p) => p.detail).join('; ');
    const repair = mv.ownsTables && !off;
    const reason = repair
      ? `the change capture was not in place (${why}): repaired, and the copy rebuilt since changes may have gone unlogged`
      : `the change capture cannot be trusted (${why}): the copy is rebuilt whole on every run until ${off ? 'the capture is turned on' : 'an owner repairs it (bootstrap --apply)'}`;
    return {
      mode: 'full',
      reason,
      sql: rebuild.sql,
      run: async (ctx) => {
        const before: ActionReport[] = [];
        if (repair) {
          const t0 = performance.now();
          const done = await installCapture(ctx.deps, { repair: true, budget: ctx.options.installBudget });
          before.push({ object: `${schema}.exam_results, ${schema}.questions`, action: 'install change capture', outcome: 'done', message: done.join('; ') || 'in place', durationMs: Math.round(performance.now() - t0) });
        }
        const ran = await rebuild.run!(ctx);
        return { ...ran, reason, before: [...before, ...(ran.before ?? [])], notes: [...(ran.notes ?? []), ...(repair ? [] : [reason])] };
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
        const done = await refreshStudents(step, relation, ctx.fallback, [], ctx.verify);
        if (done.rows !== null) {
          const v = done.verified;
          return {
            mode: 'incremental',
            reason: `${done.batches} logged change(s): ${done.students} student(s) recomputed, ${done.deleted} rows out, ${done.inserted} in`,
            rows: done.rows,
            sql: done.sql,
            notes: v && v.divergent > 0 ? [`mv_fidelity: ${v.divergent} row(s) of the ${v.students} sampled students differ from the view: the next run rebuilds the copy`] : [],
            details: { batches: done.batches, students: done.students, deleted: done.deleted, inserted: done.inserted, verified: v },
          };
        }
        const rebuilt = await rebuildCopy(step, relation, []);
        return {
          mode: 'full',
          reason: `fell back to a full rebuild: ${done.fallbackReason}`,
          rows: rebuilt.rows,
          sql: [...done.sql, ...rebuilt.sql],
          notes: rebuilt.v1 ? [] : [NOT_V1_NOTE],
          details: { fallback: done.fallbackReason, batches: done.batches },
        };
      }),
  };
}

/**
 * One entry per mode. A plan without run() has its statements run in order, in one transaction,
 * on the session that holds the advisory lock; a new mode is a new entry here.
 */
/**
 * A plain REFRESH; the first one also analyzes: a new copy has no statistics, and autovacuum never
 * analyzes a small one, so table_stats would call it stale until the daily analyze.
 */
function plainRefreshSql(relation: string, mv: MvState): string[] {
  return [`REFRESH MATERIALIZED VIEW ${relation}`, ...(mv.populated ? [] : [`ANALYZE ${relation}`])];
}

const REFRESHERS: Record<RefreshMode, Refresher> = {
  concurrent: {
    plan: (relation, mv, schema) =>
      mv.tableCopy
        ? tableRebuildPlan(relation, schema)
        : mv.populated
          ? { mode: 'concurrent', reason: 'readers keep reading meanwhile', sql: [`REFRESH MATERIALIZED VIEW CONCURRENTLY ${relation}`] }
          : { mode: 'full', reason: 'never populated, and CONCURRENTLY needs a populated view', sql: plainRefreshSql(relation, mv) },
  },
  full: {
    plan: (relation, mv, schema) =>
      mv.tableCopy
        ? tableRebuildPlan(relation, schema)
        : { mode: 'full', reason: 'as asked: readers of attempt_mv wait until it commits', sql: plainRefreshSql(relation, mv) },
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
      kind: string | null; populated: boolean | null; unique_index: string | null; has_job_runs: boolean; table_copy: boolean | null;
      student_index: boolean; student_index_invalid: boolean; has_status: boolean; owns_tables: boolean | null; may_convert: boolean | null;
    }>(
      `SELECT c.relkind::text AS kind, c.relispopulated AS populated,
              (SELECT i.indexrelid::regclass::text FROM pg_index i
                WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
                LIMIT 1) AS unique_index,
              to_regclass($2) IS NOT NULL AS has_job_runs,
              c.relkind = 'r' AND obj_description(c.oid, 'pg_class') = $3 AS table_copy,
              to_regprocedure('attempt_ops.capture_status(text)') IS NOT NULL AS has_status,
              (SELECT pg_has_role(current_user, e.relowner, 'USAGE') FROM pg_class e WHERE e.oid = to_regclass($4))
                AND (SELECT pg_has_role(current_user, q.relowner, 'USAGE') FROM pg_class q WHERE q.oid = to_regclass($5)) AS owns_tables,
              has_schema_privilege(current_user, $6::text, 'CREATE') AND pg_has_role(current_user, c.relowner, 'USAGE') AS may_convert,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = to_regclass($4) AND i.indisvalid AND i.indisready AND i.indkey[0] =
                        (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attname = 'student_id')
                        AND (i.indpred IS NULL OR i.indexrelid = to_regclass($7))) AS student_index,
              EXISTS (SELECT 1 FROM pg_index i WHERE i.indexrelid = to_regclass($7) AND NOT (i.indisvalid AND i.indisready)) AS student_index_invalid
         FROM (SELECT to_regclass($1) AS oid) r LEFT JOIN pg_class c ON c.oid = r.oid`,
      [
        qualified(deps.schema, 'attempt_mv'), JOB_RUNS, TABLE_COPY_COMMENT,
        qualified(deps.schema, CAPTURED_TABLES[0]), qualified(deps.schema, CAPTURED_TABLES[1]), deps.schema,
        qualified(deps.schema, STUDENT_INDEX),
      ],
    );
    const r = rows[0]!;
    const captureProblems = r.has_status
      ? (await deps.pool.query<{ problem: string; detail: string }>(CAPTURE_STATUS_SQL, [deps.schema])).rows
      : [{ problem: 'not_installed', detail: `the change capture is not installed on ${deps.schema}` }];
    return {
      kind: r.kind,
      populated: r.populated === true,
      uniqueIndex: r.unique_index,
      hasJobRuns: r.has_job_runs,
      tableCopy: r.table_copy === true,
      captureInstalled: captureBroken({ captureProblems } as MvState).length === 0,
      captureProblems,
      ownsTables: r.owns_tables === true,
      mayConvert: r.may_convert === true,
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

/** The audit goes through attempt_ops' functions (functions/sql/audit.ts): missing, it is as missing as the table. */
function auditMissing(err: unknown): unknown {
  return isMissingAuditFunction(err)
    ? new AttemptOpsError('missing-object', `the refresh audit functions (attempt_ops.job_run_start, job_run_finish, job_run_record) do not exist: ${FIX}`, { cause: err })
    : err;
}

async function recordStart(deps: JobDeps, startedAt: Date, plan: RefreshPlan, requested: RefreshMode): Promise<string> {
  const { rows } = await deps.pool.query<{ id: string }>(
    JOB_RUN_START_SQL,
    ['refresh-mv', deps.target, startedAt, plan.mode, JSON.stringify({ requestedMode: requested, reason: plan.reason })],
  ).catch((err) => {
    throw auditMissing(err);
  });
  return rows[0]!.id;
}

/** ran: the refresh that really ran, which may differ from the plan (an incremental run that fell back). */
async function recordFinish(deps: JobDeps, id: string, outcome: Outcome, rows: number | null, error: string | null, durationMs: number, ran?: Ran): Promise<void> {
  await deps.pool.query(
    JOB_RUN_FINISH_SQL,
    [id, outcome, rows, error, ran?.mode ?? null, JSON.stringify({ durationMs, ...(ran ? { reason: ran.reason, ...ran.details } : {}) })],
  ).catch((err) => {
    throw auditMissing(err);
  });
}

async function recordSkipped(deps: JobDeps, startedAt: Date, requested: RefreshMode, reason: string): Promise<void> {
  await deps.pool.query(
    JOB_RUN_RECORD_SQL,
    ['refresh-mv', deps.target, startedAt, 'skipped', requested, JSON.stringify({ requestedMode: requested, reason })],
  ).catch((err) => {
    throw auditMissing(err);
  });
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
    verify: { ...DEFAULT_VERIFY, ...options.verify },
    options,
    deps,
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
      // The log rows every consumer has passed: autocommit, apart from the refresh's snapshot.
      if (!mv.captureProblems.some((p) => p.problem === 'not_installed')) {
        await deps.pool.query(PRUNE_SQL, [deps.schema]).catch((err) => {
          (ran.notes ??= []).push(`could not prune the change log: ${oneLine(classifyDbError(err))}`);
        });
      }
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

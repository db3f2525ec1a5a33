/**
 * `remediate <fix>`: the runbook's resolutions, made safe. A dry run (the default) reads the
 * catalog in read-only transactions and reports exactly the statements it would run and what they
 * would touch; it changes nothing. `apply` runs those statements, verifies the result with the
 * matching health checks (scope full), and writes an audit row (what, when, who, the SQL, the
 * result) to attempt_ops.remediations and the log.
 *
 * What the runbook's SQL gets wrong, and what each fix does instead:
 * - recreate-view: never DROP ... CASCADE (it would take attempt_mv with it); an incompatible
 *   `attempt` is reported with its drift and left in place.
 * - quarantine-duplicates: the runbook's `DELETE ... WHERE ctid NOT IN (SELECT keep_ctid ...)`
 *   deletes every row that is NOT duplicated. This moves only the surplus rows of each group, in
 *   one transaction, into a quarantine table they can be restored from.
 * - create-indexes: only the base-table indexes; an index on a view cannot exist, and a CHECK
 *   constraint with a subquery is rejected by PostgreSQL.
 */
import { randomUUID } from 'node:crypto';
import { selectLongRunning } from '../checks/long-running.ts';
import { attemptIdSql, safeQuestionIdSql, RAW } from '../checks/source-sql.ts';
import type { CheckSettings } from '../checks/types.ts';
import { schemaDrift } from '../checks/view-schema.ts';
import {
  FIXES, OPS_SCHEMA, REPORT_VERSION, THRESHOLDS, overallStatus,
  type CheckName, type CheckResult, type Fix, type RemediateReport, type RemediationAction, type Status,
} from '../contract/index.ts';
import { AttemptOpsError, ConfigError, classifyDbError, oneLine } from '../db/errors.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';
import type { QueryConfig } from 'pg';
import { DEFAULT_TIMEOUTS, inTransaction, type PoolClient } from '../db/pool.ts';
import { VIEW_BASE_TABLES, readGrants } from '../ops/grants.ts';
import { createIndexSql, dropIndexSql, readIndexes } from '../ops/indexes.ts';
import {
  EXAM_RESULTS_QUARANTINE, REMEDIATIONS, opsSchemaCreateSql, quarantineIndexSql, quarantineTableSql,
} from '../sql/ops-schema.ts';
import { AUDIT_FUNCTIONS, REMEDIATION_PREPARE_SQL, REMEDIATION_RECORD_SQL, auditFunctionsSql } from '../sql/audit.ts';
import { v1ViewSql } from '../sql/reference.ts';
import { cappedTimeout, runAnalyze } from './analyze.ts';
import type { JobDeps } from './deps.ts';
import { runHealthCheck } from './health-check.ts';

export interface RemediateOptions {
  fix: Fix;
  /** Run the statements; without it, only report. */
  apply?: boolean;
  /** quarantine-duplicates only: put a quarantined batch back into exam_results (the undo). */
  restore?: boolean;
  /** With restore: the batch to put back (default: the latest). */
  batch?: string;
  /** Who asked, for the audit row: the OS user of the CLI, the Lambda caller. */
  invokedBy?: string;
  /** cancel-long-running: how long a query on attempt must have run (seconds). Default 5 min. */
  longRunningSeconds?: number;
  /** Long statements (the quarantine move, index builds): statement_timeout (ms), capped by the time left. */
  longStatementTimeoutMs?: number;
  lockTimeoutMs?: number;
}

/** A full-table move or an index build on millions of rows takes minutes at most; this leaves room. */
export const LONG_STATEMENT_TIMEOUT_MS = 15 * 60_000;
/** How long to wait for cancelled queries to leave pg_stat_activity before verifying. */
const CANCEL_SETTLE_MS = 5_000;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Plan {
  actions: RemediationAction[];
  notes: string[];
  /** The health checks that prove the fix worked. */
  checks: CheckName[];
  settings?: Partial<CheckSettings>;
  /** Runs the planned actions, marking each one done (or blocked). Called only when nothing is blocked. */
  execute: () => Promise<void>;
}

interface Run {
  deps: JobDeps;
  options: RemediateOptions;
  invokedBy: string;
  lockTimeoutMs: number;
  longTimeoutMs: () => number;
}

const nothing = async () => undefined;

/**
 * The pool aborts any query on the client side a little after its default statement timeout; a
 * statement given a longer server-side timeout (an index build, a full-table move) carries a
 * matching client-side one, or it would be cut off while the server is still working.
 */
function longQuery(db: PoolClient, timeoutMs: number, text: string, values?: unknown[]) {
  const config: QueryConfig & { query_timeout: number } = { text, values, query_timeout: timeoutMs + 5_000 };
  return db.query(config);
}

function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

/** The plan's reads: a read-only transaction, so a dry run cannot change anything even by mistake. */
function readOnly<T>(run: Run, fn: (db: PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(run.deps.pool, { readOnly: true, lockTimeoutMs: run.lockTimeoutMs }, fn);
}

/** Runs each planned action's statements in one transaction, all or none. */
async function executeInTransaction(run: Run, actions: RemediationAction[], extra?: (db: PoolClient) => Promise<void>): Promise<void> {
  const todo = actions.filter((a) => a.outcome === 'planned');
  if (todo.length === 0) return;
  const started = performance.now();
  await inTransaction(run.deps.pool, { lockTimeoutMs: run.lockTimeoutMs }, async (db) => {
    for (const a of todo) for (const sql of a.sql ?? []) await db.query(sql);
    await extra?.(db);
  });
  const ms = Math.round(performance.now() - started);
  for (const a of todo) {
    a.outcome = 'done';
    a.durationMs = ms;
  }
}

// ---------------------------------------------------------------- recreate-view

async function planRecreateView(run: Run): Promise<Plan> {
  const { schema, appRole } = run.deps;
  const view = qualified(schema, 'attempt');
  const state = await readOnly(run, async (db) => {
    const { rows } = await db.query<{ kind: string | null; er: boolean; q: boolean; role: boolean; def: string | null }>(
      `SELECT (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)) AS kind,
              to_regclass($2) IS NOT NULL AS er, to_regclass($3) IS NOT NULL AS q,
              EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $4) AS role,
              (SELECT pg_get_viewdef(c.oid) FROM pg_class c WHERE c.oid = to_regclass($1) AND c.relkind = 'v') AS def`,
      [view, qualified(schema, 'exam_results'), qualified(schema, 'questions'), appRole],
    );
    const cols = await db.query<{ name: string; type: string }>(
      `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
        WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`,
      [view],
    );
    return { ...rows[0]!, columns: cols.rows };
  });
  const object = `${schema}.attempt`;
  const actions: RemediationAction[] = [];
  const notes: string[] = [];
  const createSql = v1ViewSql(schema);
  const missingTables = [state.er ? null : 'exam_results', state.q ? null : 'questions'].filter((t): t is string => t !== null);
  if (missingTables.length > 0) {
    actions.push({ object, action: 'recreate view', outcome: 'blocked', message: `${missingTables.map((t) => `${schema}.${t}`).join(', ')} missing: the view has nothing to read (escalate to L3: restore from backup)`, sql: [createSql] });
  } else if (state.kind !== null && state.kind !== 'v') {
    actions.push({ object, action: 'recreate view', outcome: 'blocked', message: `${object} exists but is not a view (relkind ${state.kind}): left in place; rename it, then run recreate-view again (escalate to L2)`, sql: [createSql] });
  } else if (state.kind === null) {
    actions.push({ object, action: 'create view', outcome: 'planned', message: `${object} is missing: create it with the V1 definition`, sql: [createSql] });
    // A dropped view took its grants with it; the app role read it before.
    if (state.role) {
      actions.push({ object: `${object} to ${appRole}`, action: 'grant select', outcome: 'planned', message: 'the new view has no grants: the app role reads it', sql: [`GRANT SELECT ON ${view} TO ${quoteIdent(appRole)}`] });
    } else {
      notes.push(`role ${appRole} does not exist: no grant on the new view (see remediate grant-select)`);
    }
  } else {
    const { count, differences } = schemaDrift(state.columns);
    // CREATE OR REPLACE VIEW may add columns at the end and nothing else: a view that is a prefix
    // of V1 can be completed; any other drift would need a DROP, which this fix never does.
    const extendable = differences.every((d) => (d as { change: string }).change === 'missing');
    if (count > 0 && !extendable) {
      actions.push({
        object, action: 'recreate view', outcome: 'blocked',
        message: `an incompatible ${object} exists (${count} column position(s) differ from the V1 lock): CREATE OR REPLACE cannot change it and this fix never drops it. ` +
          `Escalate to L2: check its dependents, DROP VIEW ${object} (never CASCADE), then run recreate-view --apply`,
        sql: [createSql], before: { columns: state.columns, drift: differences },
      });
    } else {
      actions.push({
        object, action: 'replace view', outcome: 'planned',
        message: count > 0 ? `${object} lacks ${count} trailing V1 column(s): CREATE OR REPLACE adds them and keeps its grants` : `${object} matches the V1 columns: CREATE OR REPLACE rewrites its definition to the V1 text and keeps its grants`,
        sql: [createSql], before: { columns: state.columns.length, drift: differences },
      });
    }
  }
  return {
    actions, notes, checks: ['view_exists', 'view_schema'],
    execute: async () => {
      await executeInTransaction(run, actions);
      const after = await readOnly(run, (db) => db.query<{ def: string | null }>(`SELECT pg_get_viewdef(to_regclass($1)) AS def`, [view]));
      const main = actions[0]!;
      if (main.outcome === 'done' && state.def !== null) {
        main.message = after.rows[0]?.def === state.def ? `${object} already had the V1 definition: unchanged` : `${object} redefined with the V1 text`;
      }
    },
  };
}

// ---------------------------------------------------------------- grant-select

async function planGrantSelect(run: Run): Promise<Plan> {
  const { schema, appRole } = run.deps;
  const g = await readOnly(run, (db) => readGrants(db, schema, appRole));
  const role = quoteIdent(appRole);
  const actions: RemediationAction[] = [];
  const notes: string[] = [];
  if (!g.roleExists) {
    actions.push({ object: appRole, action: 'grant select', outcome: 'blocked', message: `role ${appRole} does not exist: create it (escalate to L2), or pass its name with --app-role` });
  } else {
    actions.push({
      object: `schema ${schema} to ${appRole}`, action: 'grant usage', outcome: g.schemaUsage ? 'exists' : 'planned',
      message: g.schemaUsage ? `${appRole} may use schema ${schema}` : `${appRole} cannot see anything in schema ${schema}`,
      sql: [`GRANT USAGE ON SCHEMA ${quoteIdent(schema)} TO ${role}`],
    });
    for (const r of g.relations) {
      const object = `${schema}.${r.relation} to ${appRole}`;
      const sql = [`GRANT SELECT ON ${qualified(schema, r.relation)} TO ${role}`];
      if (!r.exists) {
        actions.push({ object, action: 'grant select', outcome: 'skipped', message: r.relation === 'attempt' ? `${schema}.attempt does not exist (remediate recreate-view first)` : `${schema}.${r.relation} does not exist` });
      } else if (r.appSelect) {
        actions.push({ object, action: 'grant select', outcome: 'exists', message: `${appRole} may select`, sql });
      } else {
        actions.push({ object, action: 'grant select', outcome: 'planned', message: `${appRole} lacks SELECT`, sql });
      }
    }
  }
  // The runbook's "role mismatch": a view reads its tables with its owner's rights.
  if (g.viewOwner) {
    for (const r of g.relations.filter((x) => VIEW_BASE_TABLES.includes(x.relation) && x.ownerSelect === false)) {
      actions.push({
        object: `${schema}.${r.relation} to ${g.viewOwner}`, action: 'grant select', outcome: 'planned',
        message: `the view's owner lacks SELECT on a table the view reads: every reader is denied`,
        sql: [`GRANT SELECT ON ${qualified(schema, r.relation)} TO ${quoteIdent(g.viewOwner)}`],
      });
    }
  }
  if (actions.every((a) => a.outcome !== 'planned' && a.outcome !== 'blocked')) notes.push('every grant is in place: nothing to do');
  return { actions, notes, checks: ['permissions'], execute: () => executeInTransaction(run, actions) };
}

// ---------------------------------------------------------------- analyze

async function planAnalyze(run: Run): Promise<Plan> {
  const planned = await runAnalyze(run.deps, { force: true, dryRun: true, lockTimeoutMs: run.lockTimeoutMs });
  const actions: RemediationAction[] = planned.actions.map((a) => ({ ...a }));
  const notes = ['ANALYZE refreshes statistics; dead tuples need VACUUM (autovacuum, or escalate to L2 when it cannot keep up)'];
  return {
    actions, notes, checks: ['table_stats'],
    execute: async () => {
      const done = await runAnalyze(run.deps, { force: true, lockTimeoutMs: run.lockTimeoutMs, statementTimeoutMs: run.longTimeoutMs() });
      actions.splice(0, actions.length, ...done.actions);
    },
  };
}

// ---------------------------------------------------------------- cancel-long-running

type LongQuery = { pid: number; user: string; application: string; query: string; runningSeconds: number; queryStart: string };

function cancelSql(q: Pick<LongQuery, 'pid' | 'queryStart'>): string {
  // Same pid AND same query_start: a backend that has moved on to another query is never cancelled.
  return `SELECT pid, pg_cancel_backend(pid) AS cancelled FROM pg_stat_activity WHERE pid = ${Math.trunc(q.pid)} AND query_start = ${literal(q.queryStart)}::timestamptz AND state = 'active'`;
}

async function planCancelLongRunning(run: Run): Promise<Plan> {
  const seconds = run.options.longRunningSeconds ?? THRESHOLDS.longRunningSeconds;
  // The long_running check's selection: sessions holding a lock on a watched relation (pg_locks,
  // partitions included, never the query text), without autovacuum and without our own
  // registered sessions (by role and (pid, backend_start), never by application_name).
  const { rows } = await readOnly(run, (db) => selectLongRunning(db, run.deps.schema, seconds));
  const actions: RemediationAction[] = rows.map((q) => ({
    object: `pid ${q.pid}`, action: 'cancel query', outcome: 'planned',
    message: `${q.user ?? '?'}${q.application ? ` (${q.application})` : ''}, running ${q.runningSeconds} s: ${q.query.replace(/\s+/g, ' ')}`,
    sql: [cancelSql(q)], pids: [q.pid],
    before: { pid: q.pid, user: q.user, application: q.application, query: q.query, runningSeconds: q.runningSeconds, queryStart: q.queryStart },
  }));
  const notes = rows.length === 0 ? [`no query on attempt has been active for more than ${seconds} s: nothing to cancel`] : [];
  return {
    actions, notes, checks: ['long_running'], settings: { longRunningSeconds: seconds },
    execute: async () => {
      for (const [i, q] of rows.entries()) {
        const a = actions[i]!;
        const started = performance.now();
        try {
          const r = await run.deps.pool.query<{ cancelled: boolean }>(a.sql![0]!);
          const row = r.rows[0];
          if (!row) {
            a.outcome = 'skipped';
            a.message = `pid ${q.pid} finished before it was cancelled`;
          } else if (row.cancelled) {
            a.outcome = 'done';
          } else {
            a.outcome = 'blocked';
            a.message = `pg_cancel_backend(${q.pid}) returned false: the signal was not sent`;
          }
        } catch (err) {
          const e = classifyDbError(err, `cancel pid ${q.pid}`);
          if (e.kind !== 'permission') throw e;
          a.outcome = 'blocked';
          a.message = `${e.message}: the ops role needs pg_signal_backend (escalate to L3)`;
        }
        a.durationMs = Math.round(performance.now() - started);
      }
      await settle(run, actions.filter((a) => a.outcome === 'done').map((a) => a.before as { pid: number; queryStart: string }));
    },
  };
}

/** A cancelled backend leaves 'active' a moment later; verifying before that would see it still running. */
async function settle(run: Run, cancelled: { pid: number; queryStart: string }[]): Promise<void> {
  if (cancelled.length === 0) return;
  const until = Date.now() + CANCEL_SETTLE_MS;
  for (;;) {
    const { rows } = await run.deps.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity a JOIN unnest($1::int[], $2::timestamptz[]) AS t(pid, started)
          ON a.pid = t.pid AND a.query_start = t.started WHERE a.state = 'active'`,
      [cancelled.map((c) => c.pid), cancelled.map((c) => c.queryStart)],
    );
    if (Number(rows[0]?.n ?? 0) === 0 || Date.now() > until) return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

// ---------------------------------------------------------------- quarantine-duplicates

interface Column {
  name: string;
  type: string;
}

const QUARANTINE = qualified(OPS_SCHEMA, EXAM_RESULTS_QUARANTINE);

async function readColumns(db: PoolClient, relation: string): Promise<Column[]> {
  const { rows } = await db.query<Column>(
    `SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
      WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
    [relation],
  );
  return rows;
}

/**
 * One statement: rank each (id, questionId) group by completed_at then ctid, delete the rows
 * ranked after the first, and insert exactly the deleted rows (RETURNING) into quarantine. Rows
 * whose questionId is not an integer are not in any group: the view never reads them as such.
 */
function moveSql(schema: string, columns: readonly Column[], serverVersion: number): string {
  const er = qualified(schema, 'exam_results');
  const qid = safeQuestionIdSql(serverVersion);
  const cols = columns.map((c) => quoteIdent(c.name)).join(', ');
  return `WITH ranked AS (
  SELECT er.ctid AS row_ctid, row_number() OVER (PARTITION BY er.id, ${qid} ORDER BY er.completed_at, er.ctid) AS keep_rank
    FROM ${er} er
   WHERE ${RAW.questionId} IS NOT NULL AND ${qid} IS NOT NULL),
moved AS (
  DELETE FROM ${er} er USING ranked r
   WHERE er.ctid = r.row_ctid AND r.keep_rank > 1
  RETURNING er.*, er.ctid AS original_ctid)
INSERT INTO ${QUARANTINE} (${cols}, quarantine_batch, quarantine_ctid, quarantined_by)
SELECT ${cols}, $1::uuid, original_ctid, $2::text FROM moved`;
}

function restoreSql(schema: string, columns: readonly Column[]): string {
  const cols = columns.map((c) => quoteIdent(c.name)).join(', ');
  // OVERRIDING SYSTEM VALUE: an identity column gets its original value back, not a new one.
  return `WITH restored AS (
  DELETE FROM ${QUARANTINE} WHERE quarantine_batch = $1::uuid
  RETURNING ${cols})
INSERT INTO ${qualified(schema, 'exam_results')} (${cols}) OVERRIDING SYSTEM VALUE
SELECT ${cols} FROM restored`;
}

interface QuarantineState {
  serverVersion: number;
  opsSchema: boolean;
  tableExists: boolean;
  columns: Column[];
  quarantineColumns: Column[];
}

async function readQuarantineState(db: PoolClient, schema: string): Promise<QuarantineState> {
  const { rows } = await db.query<{ version: number; ops: boolean; q: boolean }>(
    `SELECT current_setting('server_version_num')::int AS version, EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS ops,
            to_regclass($2) IS NOT NULL AS q`,
    [OPS_SCHEMA, QUARANTINE],
  );
  const r = rows[0]!;
  return {
    serverVersion: r.version,
    opsSchema: r.ops,
    tableExists: r.q,
    columns: await readColumns(db, qualified(schema, 'exam_results')),
    quarantineColumns: r.q ? await readColumns(db, QUARANTINE) : [],
  };
}

/** Columns exam_results has and the quarantine table lacks (added), or has with another type (blocking). */
function columnGaps(s: QuarantineState): { missing: Column[]; mismatched: string[] } {
  const have = new Map(s.quarantineColumns.map((c) => [c.name, c.type]));
  const missing = s.tableExists ? s.columns.filter((c) => !have.has(c.name)) : [];
  const mismatched = s.columns.filter((c) => have.has(c.name) && have.get(c.name) !== c.type).map((c) => `${c.name} (${have.get(c.name)} here, ${c.type} in exam_results)`);
  return { missing, mismatched };
}

async function countRows(run: Run, db: PoolClient, schema: string): Promise<number> {
  const { rows } = await longQuery(db, run.longTimeoutMs(), `SELECT count(*) AS n FROM ${qualified(schema, 'exam_results')}`);
  return Number((rows[0] as { n?: string } | undefined)?.n ?? 0);
}

/**
 * REPEATABLE READ: the counts before and after see one snapshot plus our own changes, so
 * "moved + left = before" is exact, and a concurrent update of a row we move fails the
 * transaction instead of slipping past it.
 */
function inSnapshot<T>(run: Run, fn: (db: PoolClient) => Promise<T>): Promise<T> {
  return inTransaction(run.deps.pool, { lockTimeoutMs: run.lockTimeoutMs, statementTimeoutMs: run.longTimeoutMs() }, async (db) => {
    await db.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
    return fn(db);
  });
}

async function planQuarantine(run: Run): Promise<Plan> {
  const { schema } = run.deps;
  const er = `${schema}.exam_results`;
  const q = `${OPS_SCHEMA}.${EXAM_RESULTS_QUARANTINE}`;
  const state = await readOnly(run, async (db) => {
    const s = await readQuarantineState(db, schema);
    if (s.columns.length === 0) return { s, total: 0, surplus: 0, groups: 0, collisions: 0 };
    const qid = safeQuestionIdSql(s.serverVersion);
    const { rows } = await db.query<{ total: string; surplus: string; groups: string; collisions: string }>(
      `WITH g AS (
         SELECT er.id, ${qid} AS qid, count(*) AS n FROM ${qualified(schema, 'exam_results')} er
          WHERE ${RAW.questionId} IS NOT NULL AND ${qid} IS NOT NULL GROUP BY 1, 2),
       c AS (
         SELECT ${attemptIdSql('g', 'q')} AS attempt_id FROM g JOIN ${qualified(schema, 'questions')} q ON q.id = g.qid
          GROUP BY 1 HAVING count(*) > 1)
       SELECT (SELECT count(*) FROM ${qualified(schema, 'exam_results')}) AS total,
              (SELECT coalesce(sum(n - 1), 0) FROM g WHERE n > 1) AS surplus,
              (SELECT count(*) FROM g WHERE n > 1) AS groups,
              (SELECT count(*) FROM c) AS collisions`,
    );
    const r = rows[0]!;
    return { s, total: Number(r.total), surplus: Number(r.surplus), groups: Number(r.groups), collisions: Number(r.collisions) };
  });
  const { s } = state;
  const actions: RemediationAction[] = [];
  const notes: string[] = [];
  if (s.columns.length === 0) {
    actions.push({ object: er, action: 'quarantine', outcome: 'blocked', message: `${er} does not exist` });
    return { actions, notes, checks: ['duplicate_ids'], execute: nothing };
  }
  const move = moveSql(schema, s.columns, s.serverVersion);
  // Nothing to move, nothing to create: a dry run and an apply on a clean table both touch nothing.
  if (state.surplus > 0) quarantineSetup(s, schema, actions);
  if (state.surplus === 0) {
    actions.push({ object: er, action: 'quarantine', outcome: 'skipped', message: 'no (exam_result_id, questionId) pair occurs twice: nothing to move', rows: 0 });
  } else {
    actions.push({
      object: er, action: 'quarantine', outcome: 'planned', rows: state.surplus,
      message: `move ${state.surplus} surplus row(s) of ${state.groups} duplicated (id, questionId) group(s) to ${q}, keeping the oldest of each (completed_at, then ctid): ${state.total} rows now, ${state.total - state.surplus} after ($1 = a new batch id, $2 = who asked)`,
      sql: [move], before: { rows: state.total, surplus: state.surplus, groups: state.groups },
    });
  }
  if (state.collisions > state.groups) {
    notes.push(`some attempt ids collide across different questions with the same item_id: not duplicated rows, so duplicate_ids may stay in warning (diagnose duplicates; escalate to L2)`);
  }
  notes.push(`undo: attempt-ops remediate quarantine-duplicates --restore --apply puts the latest batch back`);
  return {
    actions, notes, checks: ['duplicate_ids'],
    execute: async () => {
      const moveAction = actions.find((a) => a.action === 'quarantine')!;
      if (moveAction.outcome !== 'planned' && !actions.some((a) => a.outcome === 'planned')) return;
      const batch = randomUUID();
      const started = performance.now();
      const result = await inSnapshot(run, async (db) => {
        for (const a of actions.filter((x) => x !== moveAction && x.outcome === 'planned')) for (const sql of a.sql ?? []) await db.query(sql);
        if (moveAction.outcome !== 'planned') return null;
        const before = await countRows(run, db, schema);
        const moved = (await longQuery(db, run.longTimeoutMs(), move, [batch, run.invokedBy])).rowCount ?? 0;
        const after = await countRows(run, db, schema);
        if (before !== moved + after) {
          throw new AttemptOpsError('job', `quarantine rolled back: ${before} rows before, ${moved} moved, ${after} left`);
        }
        return { before, moved, after };
      });
      const ms = Math.round(performance.now() - started);
      for (const a of actions.filter((x) => x.outcome === 'planned')) {
        a.outcome = 'done';
        a.durationMs = ms;
      }
      if (result) {
        moveAction.rows = result.moved;
        moveAction.message = `moved ${result.moved} row(s) to ${q} as batch ${batch}: ${result.before} rows before, ${result.after} left`;
        moveAction.after = { rowsBefore: result.before, moved: result.moved, rowsAfter: result.after, batch };
      }
    },
  };
}

/** The quarantine table (and the schema) made on first use, or completed when exam_results grew columns. */
function quarantineSetup(s: QuarantineState, schema: string, actions: RemediationAction[]): void {
  const q = `${OPS_SCHEMA}.${EXAM_RESULTS_QUARANTINE}`;
  if (!s.opsSchema) actions.push({ object: OPS_SCHEMA, action: 'create schema', outcome: 'planned', message: 'schema for our own tables', sql: [opsSchemaCreateSql()] });
  if (!s.tableExists) {
    actions.push({ object: q, action: 'create table', outcome: 'planned', message: "exam_results' columns plus the batch, time, original ctid and who moved each row", sql: [quarantineTableSql(schema), quarantineIndexSql()] });
    return;
  }
  const { missing, mismatched } = columnGaps(s);
  if (mismatched.length > 0) {
    actions.push({ object: q, action: 'check columns', outcome: 'blocked', message: `columns differ in type from exam_results: ${mismatched.join(', ')} (escalate to L2)` });
  } else if (missing.length > 0) {
    actions.push({
      object: q, action: 'add columns', outcome: 'planned', message: `exam_results has column(s) the quarantine table lacks: ${missing.map((c) => c.name).join(', ')}`,
      sql: missing.map((c) => `ALTER TABLE ${QUARANTINE} ADD COLUMN IF NOT EXISTS ${quoteIdent(c.name)} ${c.type}`),
    });
  }
}

async function planRestore(run: Run): Promise<Plan> {
  const { schema } = run.deps;
  const er = `${schema}.exam_results`;
  const state = await readOnly(run, async (db) => {
    const s = await readQuarantineState(db, schema);
    if (!s.tableExists) return { s, batches: [] as { batch: string; rows: number; at: Date }[] };
    const { rows } = await db.query<{ batch: string; rows: string; at: Date }>(
      `SELECT quarantine_batch::text AS batch, count(*) AS rows, max(quarantined_at) AS at FROM ${QUARANTINE} GROUP BY 1 ORDER BY max(quarantined_at) DESC, 1`,
    );
    return { s, batches: rows.map((r) => ({ batch: r.batch, rows: Number(r.rows), at: r.at })) };
  });
  const actions: RemediationAction[] = [];
  const notes: string[] = [];
  const { s } = state;
  const wanted = run.options.batch?.toLowerCase();
  const chosen = wanted ? state.batches.find((b) => b.batch === wanted) : state.batches[0];
  if (s.columns.length === 0) {
    actions.push({ object: er, action: 'restore', outcome: 'blocked', message: `${er} does not exist` });
  } else if (!chosen) {
    actions.push({ object: er, action: 'restore', outcome: 'skipped', rows: 0, message: run.options.batch ? `no quarantined batch ${run.options.batch}` : 'nothing is quarantined' });
  } else {
    // Only columns both tables have: a column added to exam_results since gets its default.
    const shared = s.columns.filter((c) => s.quarantineColumns.some((k) => k.name === c.name));
    const skippedCols = s.columns.filter((c) => !shared.includes(c)).map((c) => c.name);
    if (skippedCols.length > 0) notes.push(`column(s) added to exam_results since the quarantine get their defaults: ${skippedCols.join(', ')}`);
    actions.push({
      object: er, action: 'restore', outcome: 'planned', rows: chosen.rows,
      message: `put back the ${chosen.rows} row(s) of batch ${chosen.batch} (quarantined ${chosen.at.toISOString()}) from ${OPS_SCHEMA}.${EXAM_RESULTS_QUARANTINE} ($1 = the batch id)`,
      sql: [restoreSql(schema, shared)], before: { batch: chosen.batch },
    });
    if (state.batches.length > 1) notes.push(`${state.batches.length} batches are quarantined; --batch ID picks another: ${state.batches.map((b) => `${b.batch} (${b.rows})`).join(', ')}`);
  }
  return {
    // Putting duplicates back makes duplicate_ids fail again by design: the count is the check here.
    actions, notes, checks: [],
    execute: async () => {
      const a = actions[0]!;
      if (a.outcome !== 'planned' || !chosen) return;
      const started = performance.now();
      const result = await inSnapshot(run, async (db) => {
        const before = await countRows(run, db, schema);
        const restored = (await longQuery(db, run.longTimeoutMs(), a.sql![0]!, [chosen.batch])).rowCount ?? 0;
        const after = await countRows(run, db, schema);
        if (after !== before + restored || restored !== chosen.rows) {
          throw new AttemptOpsError('job', `restore rolled back: ${before} rows before, ${restored} restored (batch had ${chosen.rows}), ${after} after`);
        }
        return { before, restored, after };
      });
      a.outcome = 'done';
      a.durationMs = Math.round(performance.now() - started);
      a.rows = result.restored;
      a.message = `restored ${result.restored} row(s) of batch ${chosen.batch}: ${result.before} rows before, ${result.after} after`;
      a.after = { rowsBefore: result.before, restored: result.restored, rowsAfter: result.after, batch: chosen.batch };
    },
  };
}

// ---------------------------------------------------------------- create-indexes

async function planCreateIndexes(run: Run): Promise<Plan> {
  const { schema } = run.deps;
  const states = await readOnly(run, (db) => readIndexes(db, schema));
  const actions = states.map((st): RemediationAction => {
    const base = { object: st.relation };
    const create = createIndexSql(schema, st.index);
    if (!st.tableExists) return { ...base, action: 'create index', outcome: 'blocked', message: `${schema}.${st.index.table} does not exist` };
    if (st.kind !== null && st.kind !== 'i') return { ...base, action: 'create index', outcome: 'blocked', message: `the name ${st.relation} is taken by a relation of kind ${st.kind}: rename it (escalate to L2)` };
    if (st.kind === 'i' && !st.onTable) return { ...base, action: 'create index', outcome: 'blocked', message: `${st.relation} is an index on another table: ${st.definition}` };
    if (st.kind === 'i' && st.valid) return { ...base, action: 'create index', outcome: 'exists', message: `exists: ${st.definition}`, sql: [create] };
    if (st.kind === 'i') {
      return {
        ...base, action: 'recreate index', outcome: 'planned',
        message: 'INVALID, left by an interrupted concurrent build: dropped and built again (both CONCURRENTLY)',
        sql: [dropIndexSql(schema, st.index), create], before: { valid: false, definition: st.definition },
      };
    }
    return { ...base, action: 'create index', outcome: 'planned', message: `${st.index.why} (built CONCURRENTLY: writers keep writing)`, sql: [create] };
  });
  const notes = [
    "not created: the runbook's idx_attempt_student_time ON attempt: attempt is a view and cannot have an index (attempt_mv has one on (student_id, completed_at); see bootstrap)",
    "not created: the runbook's CHECK constraint with a subquery (check_question_id_exists): PostgreSQL rejects subqueries in CHECK constraints; orphan_results watches for the same fault",
  ];
  return {
    actions, notes, checks: ['query_latency'],
    execute: async () => {
      for (const a of actions.filter((x) => x.outcome === 'planned')) {
        const started = performance.now();
        try {
          await runAlone(run, a.sql ?? []);
        } catch (err) {
          const e = classifyDbError(err, `${a.action} ${a.object}`);
          // An interrupted concurrent build leaves an INVALID index; the next apply rebuilds it.
          throw new AttemptOpsError(e.kind, `${oneLine(e)} (run remediate create-indexes --apply again: an invalid index left behind is rebuilt)`, { cause: e });
        }
        a.outcome = 'done';
        a.durationMs = Math.round(performance.now() - started);
      }
      const after = await readOnly(run, (db) => readIndexes(db, schema));
      for (const [i, st] of after.entries()) {
        const a = actions[i]!;
        if (a.outcome === 'done') a.after = { valid: st.valid, definition: st.definition };
        if (a.outcome === 'done' && !st.valid) {
          a.outcome = 'blocked';
          a.message = `${st.relation} was built but is not valid: run remediate create-indexes --apply again`;
        }
      }
    },
  };
}

/**
 * CREATE/DROP INDEX CONCURRENTLY cannot run in a transaction block: each statement runs alone, in
 * autocommit, on a session that is dropped afterwards so its SETs die with it.
 */
async function runAlone(run: Run, statements: readonly string[]): Promise<void> {
  let client: PoolClient;
  try {
    client = await run.deps.pool.connect();
  } catch (err) {
    throw classifyDbError(err, 'remediate');
  }
  try {
    const timeoutMs = run.longTimeoutMs();
    await client.query(`SET statement_timeout = ${timeoutMs}`);
    await client.query(`SET lock_timeout = ${run.lockTimeoutMs}`);
    for (const sql of statements) await longQuery(client, timeoutMs, sql);
  } finally {
    client.release(true);
  }
}

// ---------------------------------------------------------------- audit

/**
 * Made ready on the first apply, before anything changes: a fix that cannot be audited does not
 * run. The audit is written only through attempt_ops.remediation_prepare/remediation_record
 * (functions/sql/audit.ts), which check that the caller may write it (the operator role, or the
 * owner of attempt_ops) and take db_user from session_user; prepare makes the table when it is
 * missing, owned by the functions' owner, so the operator holds no right to rewrite it.
 */
async function ensureAuditTable(run: Run): Promise<void> {
  await inTransaction(run.deps.pool, { lockTimeoutMs: run.lockTimeoutMs }, async (db) => {
    const { rows } = await db.query<{ ops: boolean; owner: boolean; functions: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS ops,
              EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1 AND pg_has_role(current_user, nspowner, 'USAGE')) AS owner,
              to_regprocedure($2) IS NOT NULL AND to_regprocedure($3) IS NOT NULL AS functions`,
      [OPS_SCHEMA, AUDIT_FUNCTIONS.remediationPrepare, AUDIT_FUNCTIONS.remediationRecord],
    );
    // Only what is missing: CREATE SCHEMA IF NOT EXISTS still needs CREATE on the database.
    if (!rows[0]?.ops) await db.query(opsSchemaCreateSql());
    if (!rows[0]?.functions) {
      // Functions made by anyone but the owner of attempt_ops would write with that role's rights.
      if (rows[0]?.ops && !rows[0]?.owner) {
        throw new AttemptOpsError('missing-object', `the remediation audit functions (${OPS_SCHEMA}.remediation_prepare, remediation_record) do not exist: run attempt-ops bootstrap --apply (as the owner of ${OPS_SCHEMA})`);
      }
      for (const sql of auditFunctionsSql()) await db.query(sql);
    }
    await db.query(REMEDIATION_PREPARE_SQL);
  });
}

type AuditOutcome = 'success' | 'failure' | 'blocked' | 'unverified';

async function writeAudit(run: Run, row: { startedAt: Date; outcome: AuditOutcome; actions: RemediationAction[]; result: Record<string, unknown> }): Promise<number> {
  const statements = row.actions.filter((a) => a.outcome === 'done').flatMap((a) => a.sql ?? []);
  const { rows } = await run.deps.pool.query<{ id: string }>(
    REMEDIATION_RECORD_SQL,
    [
      run.options.restore ? `${run.options.fix} --restore` : run.options.fix, run.deps.target, row.startedAt, run.invokedBy, row.outcome, statements,
      JSON.stringify({
        ...row.result,
        actions: row.actions.map(({ object, action, outcome, message, rows: n, pids }) => ({ object, action, outcome, message, rows: n, pids })),
      }),
    ],
  );
  return Number(rows[0]!.id);
}

// ---------------------------------------------------------------- the job

const PLANNERS: Record<Fix, (run: Run) => Promise<Plan>> = {
  'recreate-view': planRecreateView,
  'grant-select': planGrantSelect,
  analyze: planAnalyze,
  'cancel-long-running': planCancelLongRunning,
  'quarantine-duplicates': (run) => (run.options.restore ? planRestore(run) : planQuarantine(run)),
  'create-indexes': planCreateIndexes,
};

function validate(options: RemediateOptions): void {
  // Callers outside TypeScript (a hand-built payload, the demo) reach here too.
  if (!(FIXES as readonly string[]).includes(options.fix)) throw new ConfigError(`unknown fix ${JSON.stringify(options.fix)} (fixes: ${FIXES.join(', ')})`);
  if (options.restore && options.fix !== 'quarantine-duplicates') throw new ConfigError(`--restore applies only to quarantine-duplicates, not ${options.fix}`);
  if (options.batch !== undefined && !options.restore) throw new ConfigError('--batch needs --restore');
  if (options.batch !== undefined && !UUID.test(options.batch)) throw new ConfigError('--batch must be a batch id (a uuid, as the quarantine reported it)');
  if (options.longRunningSeconds !== undefined && !(options.longRunningSeconds >= 0)) throw new ConfigError('longRunningSeconds must be 0 or more');
}

export async function runRemediation(deps: JobDeps, options: RemediateOptions): Promise<RemediateReport> {
  validate(options);
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const apply = options.apply === true;
  const run: Run = {
    deps,
    options,
    invokedBy: (options.invokedBy ?? 'unknown').slice(0, 200),
    lockTimeoutMs: Math.max(1, Math.round(options.lockTimeoutMs ?? DEFAULT_TIMEOUTS.lockTimeoutMs)),
    longTimeoutMs: () => cappedTimeout(options.longStatementTimeoutMs ?? LONG_STATEMENT_TIMEOUT_MS, deps.remainingMs),
  };
  const what = `remediate ${options.fix}${options.restore ? ' --restore' : ''}`;

  let plan: Plan;
  try {
    plan = await PLANNERS[options.fix](run);
  } catch (err) {
    throw classifyDbError(err, what);
  }
  const blocked = () => plan.actions.some((a) => a.outcome === 'blocked');
  let verification: CheckResult[] = [];
  let audit: RemediateReport['audit'] = null;
  const notes = [...plan.notes];
  let status: Exclude<Status, 'skipped'>;

  if (!apply) {
    status = blocked() ? 'critical' : 'ok';
    notes.push(`dry run: nothing was changed (apply with: attempt-ops ${what} --apply, or the payload {"action": "remediate", "fix": "${options.fix}", "apply": true})`);
  } else {
    try {
      await ensureAuditTable(run);
    } catch (err) {
      throw classifyDbError(err, `${what}: creating the audit table ${REMEDIATIONS}`);
    }
    if (blocked()) {
      status = 'critical';
      const id = await writeAudit(run, { startedAt, outcome: 'blocked', actions: plan.actions, result: { status, notes } }).catch((err) => {
        throw classifyDbError(err, `${what}: writing the audit row`);
      });
      audit = { table: `${OPS_SCHEMA}.remediations`, id };
      notes.push('nothing was changed: a step is blocked (see its message)');
    } else {
      try {
        await plan.execute();
      } catch (err) {
        const e = classifyDbError(err, what);
        deps.log?.error('remediation failed', { fix: options.fix, invokedBy: run.invokedBy, error: e.message });
        await writeAudit(run, { startedAt, outcome: 'failure', actions: plan.actions, result: { error: e.message, kind: e.kind } }).catch((auditErr) =>
          deps.log?.error('could not write the audit row of a failed remediation', { error: oneLine(auditErr) }),
        );
        throw e;
      }
      if (plan.checks.length > 0) {
        // dryRun: the verification must not move the incremental watermark of the hourly check.
        const checked = await runHealthCheck(deps, { checks: plan.checks, scope: 'full', dryRun: true, settings: plan.settings });
        verification = checked.checks;
      }
      status = overallStatus([...verification.map((c) => c.status), ...(blocked() ? (['critical'] as const) : [])]);
      const outcome: AuditOutcome = status === 'ok' ? 'success' : 'unverified';
      try {
        const id = await writeAudit(run, {
          startedAt, outcome, actions: plan.actions,
          result: { status, verification: verification.map(({ name, status: s, value, message }) => ({ name, status: s, value, message })), notes },
        });
        audit = { table: `${OPS_SCHEMA}.remediations`, id };
      } catch (err) {
        // The change is made and cannot be taken back; the log line below still records it.
        notes.push(`the audit row could not be written: ${classifyDbError(err).message}`);
        status = 'critical';
      }
    }
  }

  const report: RemediateReport = {
    version: REPORT_VERSION,
    job: 'ops',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    status,
    metrics: [],
    action: 'remediate',
    fix: options.fix,
    apply,
    dryRun: !apply,
    restore: options.restore === true,
    invokedBy: run.invokedBy,
    actions: plan.actions,
    verification,
    audit,
    notes,
  };
  if (apply) {
    deps.log?.info('remediation applied', {
      fix: options.fix, restore: report.restore, invokedBy: run.invokedBy, status, audit,
      statements: plan.actions.filter((a) => a.outcome === 'done').flatMap((a) => a.sql ?? []),
    });
  }
  return report;
}

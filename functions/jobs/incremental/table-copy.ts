/**
 * The table-backed attempt_mv: converting the materialized view into it, rebuilding it, and
 * refreshing it incrementally from the change log (docs/INCREMENTAL_REFRESH.md).
 *
 * Each function runs on the session that holds refresh-mv's advisory lock, so none of them ever
 * runs beside another refresh; the transaction around them is the caller's (runInTransaction),
 * except for the conversion, which needs two.
 *
 * Snapshots: the refresh transaction is REPEATABLE READ, so the change rows it consumes and the
 * rows it recomputes are read in one snapshot. A change committed after that snapshot is neither
 * consumed nor seen, and the next run handles it; one committed before is both. Nothing else ever
 * updates these rows (the advisory lock), so REPEATABLE READ cannot fail on a serialization
 * conflict here.
 */
import type { PoolClient } from '../../db/pool.ts';
import {
  COPY_BUILD_NAME, captureInstallSql, copyIndexesSql, createCopySql, fullRebuildSql, incrementalSql, markCopySql, swapSql,
} from '../../sql/incremental.ts';
import { qualified, quoteIdent } from '../../db/identifiers.ts';
import { longStatement } from '../analyze.ts';

/** When to give up on recomputing students one by one and rebuild the whole copy instead. */
export interface FallbackPolicy {
  /** Fraction of the copy's rows: more rows to recompute than this, and a full rebuild is cheaper. */
  fraction: number;
  /** Below this many rows to recompute, never fall back, however small the copy. */
  minRows: number;
}

export const DEFAULT_FALLBACK: FallbackPolicy = { fraction: 0.05, minRows: 10_000 };

export interface StepContext {
  client: PoolClient;
  schema: string;
  statementTimeoutMs: number;
}

export interface Rebuilt {
  rows: number;
  sql: string[];
}

export interface Incremented {
  /** null: the change was too large (or could not be applied in part) and nothing was done. */
  rows: number | null;
  fallbackReason: string | null;
  students: number;
  batches: number;
  deleted: number;
  inserted: number;
  sql: string[];
}

async function run(ctx: StepContext, sql: string, values: unknown[] = [], log?: string[]): Promise<{ rowCount: number; rows: Record<string, unknown>[] }> {
  log?.push(sql);
  const r = await ctx.client.query({ ...longStatement(sql, ctx.statementTimeoutMs), values });
  return { rowCount: r.rowCount ?? 0, rows: r.rows as Record<string, unknown>[] };
}

export async function serverVersion(client: PoolClient): Promise<number> {
  const { rows } = await client.query<{ v: number }>(`SELECT current_setting('server_version_num')::int AS v`);
  return rows[0]!.v;
}

/**
 * The change log, the legacy-student map, the state row's table, the capture function and its
 * triggers. CREATE TRIGGER takes SHARE ROW EXCLUSIVE on exam_results and questions, which makes
 * writers wait: so this runs alone, in its own short transaction, under the session's lock_timeout.
 */
export async function installCapture(ctx: StepContext, log: string[]): Promise<void> {
  for (const sql of captureInstallSql(ctx.schema)) await run(ctx, sql, [], log);
}

/** The whole copy, recomputed in one statement from the view's SELECT, with the change log consumed first. */
export async function rebuildCopy(ctx: StepContext, copy: string, log: string[]): Promise<Rebuilt> {
  const sql: string[] = [];
  const f = fullRebuildSql(ctx.schema, copy);
  await run(ctx, f.consume, [ctx.schema], sql);
  await run(ctx, f.delete, [], sql);
  const inserted = await run(ctx, f.insert, [], sql);
  for (const s of f.legacy) await run(ctx, s, [ctx.schema], sql);
  await run(ctx, f.state, [ctx.schema, inserted.rowCount], sql);
  log.push(...sql);
  return { rows: inserted.rowCount, sql };
}

/**
 * Only the students the consumed changes touched: their copy rows out, their view rows in. Returns
 * a fallback reason instead when the change asks for a full rebuild (a TRUNCATE, a lost state row)
 * or is too large to be worth doing in part; the consumed changes are then still consumed, by the
 * caller's rebuild in the same transaction.
 */
export async function refreshStudents(ctx: StepContext, copy: string, policy: FallbackPolicy, log: string[]): Promise<Incremented> {
  const sql: string[] = [];
  const q = incrementalSql(ctx.schema, copy, await serverVersion(ctx.client));
  for (const s of q.consume) await run(ctx, s, s.includes('$1') ? [ctx.schema] : [], sql);
  const summary = (await run(ctx, q.summary, [ctx.schema], sql)).rows[0] as { batches: number; full_rebuild: boolean; question_batches: number; row_count: string | null };
  const base = { students: 0, batches: summary.batches, deleted: 0, inserted: 0 };
  const stop = (reason: string): Incremented => {
    log.push(...sql);
    return { ...base, rows: null, fallbackReason: reason, sql };
  };
  if (summary.full_rebuild) return stop('a TRUNCATE of exam_results or questions asked for a full rebuild');
  if (summary.row_count === null) return stop('the copy has no state row (its row count): rebuilt to start from a known state');
  const rowCount = Number(summary.row_count);
  if (summary.batches === 0) {
    await run(ctx, q.state, [ctx.schema, 0], sql);
    log.push(...sql);
    return { ...base, rows: rowCount, fallbackReason: null, sql };
  }

  await run(ctx, q.keys[0]!, [], sql);
  // The scan of exam_results for changed questions' results runs only when a question changed.
  await run(ctx, q.keys[1]!, [summary.question_batches > 0], sql);
  await run(ctx, q.keys[2]!, [ctx.schema], sql);
  await run(ctx, q.keys[3]!, [], sql);
  const size = (await run(ctx, q.sizing, [], sql)).rows[0] as { keys: string; old_rows: string; null_student: boolean };
  const students = Number(size.keys);
  const oldRows = Number(size.old_rows);
  const limit = Math.max(policy.minRows, policy.fraction * rowCount);
  // A student's rows come out and go back in: the work is about the rows they have, plus new ones.
  if (oldRows + students > limit) {
    return stop(`${students} students with ${oldRows} rows to recompute, over ${Math.round(limit)} (${policy.fraction * 100} % of ${rowCount} rows): a full rebuild is cheaper`);
  }
  const deleted = (await run(ctx, q.deleteStudents, [], sql)).rowCount + (size.null_student ? (await run(ctx, q.deleteNullStudent, [], sql)).rowCount : 0);
  const inserted = (await run(ctx, q.insertStudents, [], sql)).rowCount + (size.null_student ? (await run(ctx, q.insertNullStudent, [], sql)).rowCount : 0);
  for (const s of q.legacy) await run(ctx, s, [ctx.schema], sql);
  await run(ctx, q.state, [ctx.schema, inserted - deleted], sql);
  log.push(...sql);
  return { rows: rowCount + inserted - deleted, fallbackReason: null, students, batches: summary.batches, deleted, inserted, sql };
}

export interface MvAccess {
  owner: string;
  /** GRANT statements that give the new table the materialized view's privileges. */
  grants: string[];
}

/** The materialized view's owner and privileges, to be given to the table that replaces it. */
export async function readAccess(ctx: StepContext, newName: string): Promise<MvAccess> {
  const { rows } = await ctx.client.query<{ owner: string; grantee: string | null; privilege: string; grantable: boolean }>(
    `SELECT pg_get_userbyid(c.relowner) AS owner, a.grantee, a.privilege, a.grantable
       FROM pg_class c
       LEFT JOIN LATERAL (
         SELECT CASE WHEN x.grantee = 0 THEN NULL ELSE pg_get_userbyid(x.grantee) END AS grantee,
                x.privilege_type AS privilege, x.is_grantable AS grantable
           FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner) a ON true
      WHERE c.oid = to_regclass($1)`,
    [qualified(ctx.schema, 'attempt_mv')],
  );
  const rel = qualified(ctx.schema, newName);
  const grants = rows
    .filter((r) => r.privilege !== null && r.privilege !== undefined)
    .map((r) => `GRANT ${r.privilege} ON ${rel} TO ${r.grantee === null ? 'PUBLIC' : quoteIdent(r.grantee)}${r.grantable ? ' WITH GRANT OPTION' : ''}`);
  return { owner: rows[0]?.owner ?? '', grants };
}

/**
 * Builds the table-backed copy beside the materialized view and swaps it in. Runs in the caller's
 * REPEATABLE READ transaction, after the capture's own transaction committed: every change from
 * here on is in the change log, and the copy is computed in the snapshot that consumed the log.
 * Only the swap, at the very end, takes an ACCESS EXCLUSIVE lock (on the old materialized view),
 * for as long as the rest of the commit takes.
 */
export async function convertToTable(ctx: StepContext, log: string[]): Promise<{ rows: number; sql: string[]; swapSql: string[] }> {
  const sql: string[] = [];
  const name = COPY_BUILD_NAME;
  const copy = qualified(ctx.schema, name);
  // A build left by a conversion that failed mid-way rolled back with it: this name is free.
  await run(ctx, createCopySql(ctx.schema, name), [], sql);
  const rebuilt = await rebuildCopy(ctx, copy, []);
  sql.push(...rebuilt.sql);
  for (const s of copyIndexesSql(ctx.schema, name)) await run(ctx, s, [], sql);
  const { rows: me } = await ctx.client.query<{ me: string }>('SELECT current_user AS me');
  const access = await readAccess(ctx, name);
  for (const g of access.grants) await run(ctx, g, [], sql);
  await run(ctx, markCopySql(ctx.schema, name), [], sql);
  await run(ctx, `ANALYZE ${copy}`, [], sql);
  // Last: once another role owns it, only that role's members may grant on it or comment it.
  if (access.owner && access.owner !== me[0]!.me) await run(ctx, `ALTER TABLE ${copy} OWNER TO ${quoteIdent(access.owner)}`, [], sql);
  const swap = swapSql(ctx.schema, name);
  for (const s of swap) await run(ctx, s, [], sql);
  log.push(...sql);
  return { rows: rebuilt.rows, sql, swapSql: swap };
}

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
  COPY_BUILD_NAME, viewGuardSql, CURSOR_EXISTS_SQL, MARK_REBUILD_SQL, MV_STATE, REGISTER_SQL, copyIndexesSql, createCopySql, fullRebuildSql,
  incrementalSql, markCopySql, swapSql, verifySql, viewCheckSql,
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
  /** The view was the V1 text, so the next run may be incremental. */
  v1: boolean;
}

export interface Incremented {
  /** null: the change was too large (or could not be applied in part) and nothing was done. */
  rows: number | null;
  /** What the rotating comparison with the view found, when the run applied its change. */
  verified?: Verified;
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

/** How the copy is checked against the view after each incremental refresh. */
export interface VerifyPolicy {
  /** Fewest students compared per run. */
  minStudents: number;
  /** The whole copy is compared, one rotating sample after another, within this period. */
  periodHours: number;
}

export const DEFAULT_VERIFY: VerifyPolicy = { minStudents: 200, periodHours: 24 * 7 };

/**
 * Is the view still the V1 text? When its deparsed definition is the one last verified, yes
 * without asking again; otherwise a temporary view of the V1 text is compared with it.
 */
export async function viewIsV1(ctx: StepContext, knownMd5: string | null, log?: string[]): Promise<{ v1: boolean; md5: string | null }> {
  const q = viewCheckSql(ctx.schema);
  const md5 = ((await run(ctx, q.md5, [], log)).rows[0]?.md5 as string | null) ?? null;
  if (md5 === null) return { v1: false, md5 };
  if (knownMd5 !== null && md5 === knownMd5) return { v1: true, md5 };
  await run(ctx, q.savepoint);
  try {
    await run(ctx, q.reference);
    const v1 = (await run(ctx, q.compare)).rows[0]?.v1 === true;
    return { v1, md5: v1 ? md5 : null };
  } catch {
    // The V1 text does not even compile against the tables as they are now (a renamed column).
    return { v1: false, md5: null };
  } finally {
    await run(ctx, q.rollback);
  }
}

/**
 * refresh-mv's cursor into the change log, registered at this transaction's snapshot when it has
 * none: only a caller that rebuilds the whole copy from this same snapshot may do that.
 */
async function ensureCursor(ctx: StepContext, sql: string[]): Promise<boolean> {
  const registered = (await run(ctx, CURSOR_EXISTS_SQL, [ctx.schema], sql)).rows[0]?.registered === true;
  if (!registered) await run(ctx, REGISTER_SQL, [ctx.schema], sql);
  return registered;
}

/**
 * The whole copy, recomputed in one statement from the view itself, with the change log consumed
 * first in the same snapshot. When the view is not the V1 text the copy still follows it, but the
 * incremental path (which recomputes students from the V1 text) is off until it is again.
 */
export async function rebuildCopy(ctx: StepContext, copy: string, log: string[]): Promise<Rebuilt> {
  const sql: string[] = [];
  const f = fullRebuildSql(ctx.schema, copy);
  await ensureCursor(ctx, sql);
  await run(ctx, f.consume, [ctx.schema], sql);
  const known = (await run(ctx, `SELECT view_md5 FROM ${MV_STATE} WHERE source_schema = $1`, [ctx.schema])).rows[0]?.view_md5 as string | null | undefined;
  const view = await viewIsV1(ctx, known ?? null, sql);
  await run(ctx, f.delete, [], sql);
  const inserted = await run(ctx, f.insert, [], sql);
  if (view.v1) for (const s of f.legacy) await run(ctx, s, [ctx.schema], sql);
  else await run(ctx, f.clearLegacy, [ctx.schema], sql);
  await run(ctx, f.state, [ctx.schema, inserted.rowCount, view.md5, view.v1], sql);
  log.push(...sql);
  return { rows: inserted.rowCount, sql, v1: view.v1 };
}

/**
 * Only the students the consumed changes touched: their copy rows out, their view rows in. Returns
 * a fallback reason instead when the change asks for a full rebuild (a TRUNCATE, a lost state row)
 * or is too large to be worth doing in part; the consumed changes are then still consumed, by the
 * caller's rebuild in the same transaction.
 */
export async function refreshStudents(ctx: StepContext, copy: string, policy: FallbackPolicy, log: string[], verify: VerifyPolicy = DEFAULT_VERIFY): Promise<Incremented> {
  const sql: string[] = [];
  const q = incrementalSql(ctx.schema, copy, await serverVersion(ctx.client));
  // Without a cursor nobody knows what changed since the copy was made: rebuild from here on.
  const registered = await ensureCursor(ctx, sql);
  for (const s of q.consume) await run(ctx, s, s.includes('$1') ? [ctx.schema] : [], sql);
  const summary = (await run(ctx, q.summary, [ctx.schema], sql)).rows[0] as {
    batches: number; full_rebuild: boolean; rebuild_reason: string | null; incremental_ready: boolean | null; question_batches: number; row_count: string | null;
  };
  const base = { students: 0, batches: summary.batches, deleted: 0, inserted: 0 };
  const stop = (reason: string): Incremented => {
    log.push(...sql);
    return { ...base, rows: null, fallbackReason: reason, sql };
  };
  if (!registered) return stop("the change log had no cursor for refresh-mv: nothing says what changed since the copy was made");
  if (summary.full_rebuild) return stop(`the change log asks for a full rebuild (${summary.rebuild_reason ?? 'a TRUNCATE'})`);
  if (summary.row_count === null) return stop('the copy has no state row (its row count): rebuilt to start from a known state');
  if (summary.incremental_ready === false) return stop('the view is not the V1 text: the copy follows it by full rebuilds');
  const known = (await run(ctx, `SELECT view_md5 FROM ${MV_STATE} WHERE source_schema = $1`, [ctx.schema])).rows[0]?.view_md5 as string | null;
  if (!(await viewIsV1(ctx, known, sql)).v1) return stop('the view is no longer the V1 text (CREATE OR REPLACE VIEW, or a renamed column): rebuilt from the view');
  const rowCount = Number(summary.row_count);
  if (summary.batches === 0) {
    await run(ctx, q.state, [ctx.schema, 0], sql);
    const verified = await verifyCopy(ctx, copy, verify, sql);
    log.push(...sql);
    return { ...base, rows: rowCount, fallbackReason: null, sql, verified };
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
  const verified = await verifyCopy(ctx, copy, verify, sql);
  log.push(...sql);
  return { rows: rowCount + inserted - deleted, fallbackReason: null, students, batches: summary.batches, deleted, inserted, sql, verified };
}

export interface Verified {
  students: number;
  divergent: number;
  /** Sample students (uuids) whose rows differ. */
  sample: string[];
  /** This sample reached the end of the students: the whole copy has been compared once more. */
  lapCompleted: boolean;
}

/**
 * Compares the next students of the rotating sample with the view, in the refresh's snapshot, so
 * what it compares is what the refresh just wrote. Enough students each run that the whole copy
 * is compared within the period, whatever the schedule; a divergence records a full rebuild for
 * the next run (the capture missed something, and nobody knows how much).
 */
export async function verifyCopy(ctx: StepContext, copy: string, policy: VerifyPolicy, log: string[]): Promise<Verified> {
  const v = verifySql(ctx.schema, copy);
  const { rows } = await run(
    ctx,
    `SELECT m.verify_position::text AS position, extract(epoch FROM now() - coalesce(m.verified_at, m.rebuilt_at)) / 3600 AS hours,
            (SELECT CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * c.reltuples ELSE s.n_distinct END
               FROM pg_stats s JOIN pg_class c ON c.oid = to_regclass($2)
              WHERE s.schemaname = $1 AND s.tablename = 'attempt_mv' AND s.attname = 'student_id') AS students
       FROM ${MV_STATE} m WHERE m.source_schema = $1`,
    [ctx.schema, copy],
    log,
  );
  const st = rows[0] as { position: string | null; hours: number | null; students: number | null } | undefined;
  const total = Number(st?.students ?? 0);
  const share = Math.min(1, Math.max(0, Number(st?.hours ?? 0)) / policy.periodHours);
  const size = Math.min(20_000, Math.max(policy.minStudents, Math.ceil(total * share)));
  await run(ctx, v.sample[0]!, [], log);
  await run(ctx, v.sample[1]!, [st?.position ?? null, size], log);
  await run(ctx, v.sample[2]!, [], log);
  for (const s of v.keys) await run(ctx, s, s.includes('$1') ? [ctx.schema] : [], log);
  const r = (await run(ctx, v.compare, [], log)).rows[0] as { divergent: string; students: string[] | null; sampled: number; last_student: string | null };
  const divergent = Number(r.divergent);
  const lapCompleted = r.sampled < size;
  const sample = r.students ?? [];
  await run(ctx, v.state, [ctx.schema, r.sampled, divergent, lapCompleted ? null : r.last_student, lapCompleted,
    JSON.stringify({ by: 'sample', divergentStudents: sample })], log);
  if (divergent > 0) await run(ctx, MARK_REBUILD_SQL, [ctx.schema, `mv_fidelity: ${divergent} row(s) of ${r.sampled} sampled students differ from the view`], log);
  return { students: r.sampled, divergent, sample, lapCompleted };
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
  const to = (grantee: string | null, grantable: boolean) => `${grantee === null ? 'PUBLIC' : quoteIdent(grantee)}${grantable ? ' WITH GRANT OPTION' : ''}`;
  const grants = rows
    .filter((r) => r.privilege !== null && r.privilege !== undefined)
    .map((r) => `GRANT ${r.privilege} ON ${rel} TO ${to(r.grantee, r.grantable)}`);
  // Column-level grants live on pg_attribute, not on the relation.
  const { rows: cols } = await ctx.client.query<{ attname: string; grantee: string | null; privilege: string; grantable: boolean }>(
    `SELECT a.attname, CASE WHEN x.grantee = 0 THEN NULL ELSE pg_get_userbyid(x.grantee) END AS grantee,
            x.privilege_type AS privilege, x.is_grantable AS grantable
       FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid, aclexplode(a.attacl) x
      WHERE a.attrelid = to_regclass($1) AND a.attacl IS NOT NULL AND NOT a.attisdropped AND x.grantee <> c.relowner
      ORDER BY a.attnum`,
    [qualified(ctx.schema, 'attempt_mv')],
  );
  for (const c of cols) grants.push(`GRANT ${c.privilege} (${quoteIdent(c.attname)}) ON ${rel} TO ${to(c.grantee, c.grantable)}`);
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
  // The materialized view depended on the view, so DROP VIEW attempt needed CASCADE: keep it so.
  await run(ctx, viewGuardSql(ctx.schema), [], sql);
  log.push(...sql);
  return { rows: rebuilt.rows, sql, swapSql: swap };
}

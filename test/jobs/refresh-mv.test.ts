import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttemptOpsError } from '../../functions/db/errors.ts';
import type { Pool } from '../../functions/db/pool.ts';
import { executeJob } from '../../functions/jobs/execute.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { attemptMvSql, opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';
import { PENDING_CHANGES, catalogChecksum, count, holdLock, jobDeps, recordingSink } from './helpers.ts';

const MV_EQUALS_VIEW = `SELECT count(*) AS n FROM (
  (SELECT * FROM attempt EXCEPT ALL SELECT * FROM attempt_mv) UNION ALL (SELECT * FROM attempt_mv EXCEPT ALL SELECT * FROM attempt)) d`;

type RunRow = { job: string; mode: string; outcome: string; rows: string | null; error: string | null; finished: boolean; details: Record<string, unknown> };
async function runs(db: TestDatabase): Promise<RunRow[]> {
  const { rows } = await db.admin.query<RunRow>(
    `SELECT job, mode, outcome, rows, error, finished_at IS NOT NULL AS finished, details FROM attempt_ops.job_runs ORDER BY id`,
  );
  return rows;
}

/** A pool that fails the test if anything touches the database. */
const noSqlPool = {
  query: () => Promise.reject(new Error('no SQL may run')),
  connect: () => Promise.reject(new Error('no connection may be made')),
} as unknown as Pool;

describe('refresh-mv', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await db.admin.query(opsSchemaSql());
    await db.admin.query(attemptMvSql('public'));
    pool = db.pool('refresh-mv');
  });
  afterAll(async () => db?.drop());

  it('dry run plans the refresh and changes and records nothing', async () => {
    // Prepare
    const before = await catalogChecksum(db.admin);
    // Act
    const report = await runRefresh(jobDeps(pool), { dryRun: true });
    // Assess
    expect(report.actions).toEqual([expect.objectContaining({ outcome: 'planned', sql: ['REFRESH MATERIALIZED VIEW "public"."attempt_mv"', 'ANALYZE "public"."attempt_mv"'] })]);
    expect(await catalogChecksum(db.admin)).toBe(before);
    expect(await runs(db)).toEqual([]);
  });

  it('populates an attempt_mv that was never populated, with a plain refresh, its audit row and its metrics', async () => {
    // Prepare
    const sink = recordingSink();
    // Act
    const { report } = await executeJob({ job: 'refresh-mv', target: 'test', sink, dryRun: false, log: silentLogger, run: () => runRefresh(jobDeps(pool)) });
    // Assess
    expect(report).toMatchObject({ version: 1, job: 'refresh-mv', target: 'test', status: 'ok', mode: 'concurrent', dryRun: false });
    expect(report.actions[0]).toMatchObject({ object: 'public.attempt_mv', outcome: 'done', sql: ['REFRESH MATERIALIZED VIEW "public"."attempt_mv"', 'ANALYZE "public"."attempt_mv"'], after: { populated: true, rows: 24, mode: 'full' } });
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBe(0);
    expect(await count(db.admin, 'SELECT count(*) AS n FROM attempt_mv')).toBe(24);
    // Analyzed with it: a new copy would otherwise have no statistics until the daily analyze.
    expect(await count(db.admin, `SELECT count(*) AS n FROM pg_stats WHERE schemaname = 'public' AND tablename = 'attempt_mv'`)).toBeGreaterThan(0);
    expect(await runs(db)).toEqual([
      { job: 'refresh-mv', mode: 'full', outcome: 'success', rows: '24', error: null, finished: true, details: expect.objectContaining({ requestedMode: 'concurrent' }) },
    ]);
    const duration = report.actions[0]!.durationMs!;
    expect(sink.calls).toEqual([
      [
        { name: 'attempt_mv_refresh_duration_ms', value: duration, unit: 'Milliseconds', dimensions: { Database: 'test' } },
        { name: 'attempt_mv_row_count', value: 24, unit: 'Count', dimensions: { Database: 'test' } },
        { name: 'job_success', value: 1, unit: 'Count', dimensions: { Database: 'test', Job: 'refresh-mv' } },
      ],
    ]);
  });

  it('refreshes a populated attempt_mv concurrently, after which it equals attempt, and mv_staleness sees it', async () => {
    // Prepare: new, changed and deleted rows since the last refresh.
    await insertResult(db.admin, { id: 5001, student: '3f1c2a9e-8b7d-4c6e-9a1b-2c3d4e5f6a7b', json: { questionId: 3, studentAnswer: 'water', isCorrect: true, responseTime: 700 } });
    await db.admin.query(`UPDATE exam_results SET result_json = result_json || '{"isCorrect": false}' WHERE id = 1011`);
    await db.admin.query('DELETE FROM exam_results WHERE id = 1012');
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBeGreaterThan(0);
    // Act
    const report = await runRefresh(jobDeps(pool), { mode: 'concurrent' });
    // Assess
    expect(report.actions[0]).toMatchObject({ outcome: 'done', sql: ['REFRESH MATERIALIZED VIEW CONCURRENTLY "public"."attempt_mv"'], after: { mode: 'concurrent', rows: 24 } });
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBe(0);
    const staleness = await runHealthCheck(jobDeps(pool), { checks: ['mv_staleness'], dryRun: true });
    expect(staleness.checks[0]).toMatchObject({ status: 'ok' });
    expect(staleness.checks[0]!.value).toBeLessThan(60);
  });

  it('mode full runs a plain refresh of a populated view', async () => {
    const report = await runRefresh(jobDeps(pool), { mode: 'full' });
    expect(report.actions[0]).toMatchObject({ outcome: 'done', sql: ['REFRESH MATERIALIZED VIEW "public"."attempt_mv"'], after: { mode: 'full' } });
    expect((await runs(db)).at(-1)).toMatchObject({ mode: 'full', outcome: 'success', details: expect.objectContaining({ requestedMode: 'full' }) });
  });

  it('of two refreshes started together, one refreshes and the other is skipped at once', async () => {
    // Prepare: a lock on exam_results keeps whichever refresh wins the advisory lock busy, so the
    // two overlap for certain rather than by luck.
    const lock = await holdLock(db.url, 'exam_results');
    const before = (await runs(db)).length;
    try {
      // Act
      const a = runRefresh(jobDeps(pool), { lockTimeoutMs: 30_000 });
      const b = runRefresh(jobDeps(pool), { lockTimeoutMs: 30_000 });
      const first = await Promise.race([a, b]);
      // Assess: the loser did not wait for the winner.
      expect(first.actions[0]).toMatchObject({ outcome: 'skipped', message: expect.stringMatching(/another refresh/) });
      expect(first.status).toBe('ok');
      await lock.release();
      const outcomes = (await Promise.all([a, b])).map((r) => r.actions[0]!.outcome).sort();
      expect(outcomes).toEqual(['done', 'skipped']);
      expect((await runs(db)).slice(before).map((r) => r.outcome).sort()).toEqual(['skipped', 'success']);
    } finally {
      await lock.release();
    }
  });

  it('fails within seconds with a lock timeout while exam_results is locked, and records the failure', async () => {
    // Prepare
    const lock = await holdLock(db.url, 'exam_results');
    const sink = recordingSink();
    const started = Date.now();
    try {
      // Act
      const error = await executeJob({ job: 'refresh-mv', target: 'test', sink, dryRun: false, log: silentLogger, run: () => runRefresh(jobDeps(pool)) }).catch((e: unknown) => e);
      // Assess
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(error).toBeInstanceOf(AttemptOpsError);
      expect((error as AttemptOpsError).kind).toBe('lock-timeout');
      expect((error as AttemptOpsError).exitCode).toBe(2);
      expect((error as AttemptOpsError).message).toMatch(/attempt_mv.*lock timeout/);
      expect((await runs(db)).at(-1)).toMatchObject({ outcome: 'failure', finished: true, rows: null, error: expect.stringMatching(/lock timeout/) });
      expect(sink.calls).toEqual([[{ name: 'job_success', value: 0, unit: 'Count', dimensions: { Database: 'test', Job: 'refresh-mv' } }]]);
    } finally {
      await lock.release();
    }
    // The failed run let go of the advisory lock: the next one refreshes.
    expect((await runRefresh(jobDeps(pool))).actions[0]!.outcome).toBe('done');
  });

  it("caps the refresh's statement_timeout by the time the run has left", async () => {
    // Prepare: the refresh waits on a lock far longer than it has left.
    const lock = await holdLock(db.url, 'exam_results');
    const started = Date.now();
    try {
      // Act
      const error = await runRefresh(jobDeps(pool, { remainingMs: () => 300 }), { lockTimeoutMs: 30_000 }).catch((e: unknown) => e);
      // Assess
      expect((error as AttemptOpsError).kind).toBe('timeout');
      expect(Date.now() - started).toBeLessThan(5_000);
    } finally {
      await lock.release();
    }
  });

  it("waits for a lock no longer than the session's configured lock_timeout", async () => {
    // Prepare: the stack configures the lock timeout per function; here 400 ms instead of 3 s.
    const quick = db.pool('refresh-mv', { lockTimeoutMs: 400 });
    const lock = await holdLock(db.url, 'exam_results');
    const started = Date.now();
    try {
      // Act
      const error = await runRefresh(jobDeps(quick)).catch((e: unknown) => e);
      // Assess
      expect((error as AttemptOpsError).kind).toBe('lock-timeout');
      expect(Date.now() - started).toBeLessThan(2_500);
    } finally {
      await lock.release();
    }
  });

  it('rejects a fallback policy out of range before any SQL, as a configuration error', async () => {
    const error = await runRefresh(jobDeps(noSqlPool), { mode: 'incremental', fallback: { fraction: 1.5 } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AttemptOpsError);
    expect(error).toMatchObject({ kind: 'config', message: 'fallback.fraction must be between 0 and 1' });
  });

  it('a dry run of mode incremental on the materialized view plans the one-time conversion and changes nothing', async () => {
    // Prepare
    const before = await catalogChecksum(db.admin);
    const recorded = (await runs(db)).length;
    // Act
    const report = await runRefresh(jobDeps(pool), { mode: 'incremental', dryRun: true });
    // Assess
    expect(report).toMatchObject({ mode: 'incremental', dryRun: true, status: 'ok' });
    expect(report.actions).toEqual([expect.objectContaining({ outcome: 'planned', message: expect.stringMatching(/^would run an incremental refresh \(converts the materialized view once/) })]);
    expect(report.actions[0]!.sql).toContain('DROP MATERIALIZED VIEW "public"."attempt_mv"');
    expect(await catalogChecksum(db.admin)).toBe(before);
    expect(await runs(db)).toHaveLength(recorded);
  });
});

describe('refresh-mv on the table-backed attempt_mv', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await db.admin.query(opsSchemaSql());
    await db.admin.query(attemptMvSql('public'));
    pool = db.pool('refresh-mv');
    await runRefresh(jobDeps(pool), { mode: 'incremental' });
  });
  afterAll(async () => db?.drop());

  it('a dry run of mode concurrent plans a rebuild by DELETE and INSERT, not REFRESH MATERIALIZED VIEW', async () => {
    const report = await runRefresh(jobDeps(pool), { dryRun: true });
    expect(report.actions[0]).toMatchObject({ outcome: 'planned', message: expect.stringMatching(/^would run a full refresh \(table-backed copy/), before: { kind: 'table' } });
    expect(report.actions[0]!.sql).toContain('DELETE FROM "public"."attempt_mv"');
  });

  it.each(['concurrent', 'full'] as const)('mode %s rebuilds it whole, equal to attempt, without locking out its readers', async (mode) => {
    // Prepare: changes, and a reader inside a transaction that has read attempt_mv (a REFRESH
    // MATERIALIZED VIEW would wait for it; a plain REFRESH would also make it wait).
    await insertResult(db.admin, { id: 6001, student: 'legacy-6001', json: { questionId: 1, isCorrect: true } });
    await db.admin.query('DELETE FROM exam_results WHERE id = 1013');
    const reader = await holdLock(db.url, 'attempt_mv', 'ACCESS SHARE');
    try {
      // Act
      const report = await runRefresh(jobDeps(pool), { mode, lockTimeoutMs: 1_000 });
      // Assess
      expect(report.actions[0]).toMatchObject({ outcome: 'done', after: { mode: 'full' }, message: expect.stringMatching(/table-backed copy/) });
    } finally {
      await reader.release();
    }
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBe(0);
    expect((await runs(db)).at(-1)).toMatchObject({ mode: 'full', outcome: 'success', details: expect.objectContaining({ requestedMode: mode }) });
    expect(await count(db.admin, PENDING_CHANGES)).toBe(0);
    // The incremental runs after it start from the rebuilt state.
    await db.admin.query(`DELETE FROM exam_results WHERE student_id = 'legacy-6001'`);
    expect((await runRefresh(jobDeps(pool), { mode: 'incremental' })).actions[0]).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBe(0);
  });

  it('fails with a lock timeout while exam_results is locked, records it, and leaves the copy as it was', async () => {
    // A run with nothing logged never reads exam_results: give it a change to apply.
    await insertResult(db.admin, { id: 6002, student: 'legacy-6002', json: { questionId: 2 } });
    const lock = await holdLock(db.url, 'exam_results');
    try {
      const error = await runRefresh(jobDeps(pool), { mode: 'incremental' }).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'lock-timeout' });
      expect((await runs(db)).at(-1)).toMatchObject({ mode: 'incremental', outcome: 'failure', error: expect.stringMatching(/lock timeout/) });
    } finally {
      await lock.release();
    }
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBe(1);
    expect(await count(db.admin, PENDING_CHANGES)).toBe(1);
    expect((await runRefresh(jobDeps(pool), { mode: 'incremental' })).actions[0]).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, MV_EQUALS_VIEW)).toBe(0);
  });

  it('mv_staleness and query_latency treat it as the populated attempt_mv', async () => {
    const report = await runHealthCheck(jobDeps(pool), { checks: ['mv_staleness', 'query_latency'], dryRun: true });
    expect(report.checks.map((c) => [c.name, c.status])).toEqual([['query_latency', 'ok'], ['mv_staleness', 'ok']]);
  });
});

describe('refresh-mv before bootstrap', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.admin.query(opsSchemaSql());
  });
  afterAll(async () => db?.drop());

  it('names bootstrap as the fix for a missing attempt_mv, then for a missing unique index', async () => {
    const pool = db.pool();
    const missing = await runRefresh(jobDeps(pool)).catch((e: unknown) => e);
    expect(missing).toMatchObject({ kind: 'missing-object', message: 'public.attempt_mv does not exist: run attempt-ops bootstrap --apply' });

    await db.admin.query('CREATE MATERIALIZED VIEW attempt_mv AS SELECT * FROM attempt');
    const noIndex = await runRefresh(jobDeps(pool)).catch((e: unknown) => e);
    expect(noIndex).toMatchObject({ kind: 'missing-object', message: expect.stringMatching(/no unique index on id.*attempt-ops bootstrap --apply/) });

    // A table of that name that is not our table-backed copy is never taken for one.
    await db.admin.query('DROP MATERIALIZED VIEW attempt_mv; CREATE TABLE attempt_mv AS SELECT * FROM attempt; CREATE UNIQUE INDEX ON attempt_mv (id)');
    const foreign = await runRefresh(jobDeps(pool), { mode: 'incremental' }).catch((e: unknown) => e);
    expect(foreign).toMatchObject({ kind: 'missing-object', message: expect.stringMatching(/neither a materialized view nor attempt-ops' table-backed copy \(relkind r\)/) });
    expect(await count(db.admin, `SELECT count(*) AS n FROM attempt_ops.job_runs`)).toBe(0);
  });
});

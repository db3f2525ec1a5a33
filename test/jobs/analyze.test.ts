import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AttemptOpsError } from '../../functions/db/errors.ts';
import { analyzeDue, modificationThreshold, runAnalyze, type TableStats } from '../../functions/jobs/analyze.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { executeJob } from '../../functions/jobs/execute.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool, type Pool } from '../../functions/db/pool.ts';
import { createTestDatabase, ensureRole, seedClean, type TestDatabase } from '../support/db.ts';
import { catalogChecksum, flushStats, holdLock, jobDeps, recordingSink } from './helpers.ts';

async function lastAnalyze(db: TestDatabase, table: string): Promise<Date | null> {
  const { rows } = await db.admin.query<{ last: Date | null }>(
    'SELECT greatest(last_analyze, last_autoanalyze) AS last FROM pg_stat_user_tables WHERE relid = to_regclass($1)',
    [table],
  );
  return rows[0]?.last ?? null;
}

/** 500 valid results: far past 50 + 10 % of the table. */
async function bulkLoad(db: TestDatabase): Promise<void> {
  await db.admin.query(`INSERT INTO exam_results (id, student_id, result_json, completed_at)
    SELECT 100000 + g, 'bulk-' || (g % 7), jsonb_build_object('questionId', 1 + g % 4, 'isCorrect', g % 2 = 0, 'responseTime', 900),
           now() - make_interval(mins => g)
      FROM generate_series(1, 500) g`);
  await flushStats(db.admin);
}

describe('analyze', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    pool = db.pool('analyze');
    await runBootstrap(jobDeps(pool), { apply: true });
    // The bootstrap's first refresh analyzed the new copy; forget that, for a never-analyzed attempt_mv.
    await db.admin.query(`SELECT pg_stat_reset_single_table_counters('attempt_mv'::regclass)`);
    await flushStats(db.admin);
  });
  afterAll(async () => db?.drop());

  it('skips tables whose statistics are fresh', async () => {
    // Act
    const report = await runAnalyze(jobDeps(pool), { tables: ['exam_results', 'questions'] });
    // Assess
    expect(report).toMatchObject({ version: 1, job: 'analyze', target: 'test', status: 'ok', dryRun: false, force: false, metrics: [] });
    expect(report.actions).toEqual([
      expect.objectContaining({ object: 'public.exam_results', action: 'analyze', outcome: 'skipped', message: expect.stringMatching(/^statistics fresh/) }),
      expect.objectContaining({ object: 'public.questions', action: 'analyze', outcome: 'skipped', message: expect.stringMatching(/^statistics fresh/) }),
    ]);
  });

  it('dry run lists a heavily modified table with its SQL and analyzes nothing', async () => {
    // Prepare
    await bulkLoad(db);
    const before = await lastAnalyze(db, 'exam_results');
    const checksum = await catalogChecksum(db.admin);
    // Act
    const report = await runAnalyze(jobDeps(pool), { dryRun: true });
    // Assess
    const er = report.actions.find((a) => a.object === 'public.exam_results');
    expect(er).toMatchObject({ outcome: 'planned', sql: ['ANALYZE "public"."exam_results"'], message: expect.stringMatching(/rows modified since the last analyze/) });
    expect(report.metrics).toEqual([]);
    expect(await lastAnalyze(db, 'exam_results')).toEqual(before);
    expect(await catalogChecksum(db.admin)).toBe(checksum);
  });

  it('analyzes a heavily modified table and a never-analyzed attempt_mv, reporting before and after', async () => {
    // Prepare
    const sink = recordingSink();
    // Act
    const { report } = await executeJob({ job: 'analyze', target: 'test', sink, dryRun: false, log: silentLogger, run: () => runAnalyze(jobDeps(pool)) });
    // Assess
    const [er, q, mv] = report.actions;
    expect(er).toMatchObject({ object: 'public.exam_results', outcome: 'done', sql: ['ANALYZE "public"."exam_results"'] });
    expect(er!.before).toMatchObject({ nModSinceAnalyze: expect.any(Number), threshold: modificationThreshold(24) });
    expect(er!.before!.nModSinceAnalyze as number).toBeGreaterThanOrEqual(500);
    expect(er!.after).toMatchObject({ nModSinceAnalyze: 0, liveTuples: 524 });
    expect(new Date(er!.after!.lastAnalyze as string).getTime()).toBeGreaterThan(new Date(er!.before!.lastAnalyze as string).getTime());
    expect(q).toMatchObject({ object: 'public.questions', outcome: 'skipped' });
    expect(mv).toMatchObject({ object: 'public.attempt_mv', outcome: 'done', message: expect.stringMatching(/never analyzed/), before: { lastAnalyze: null } });
    expect(mv!.after!.lastAnalyze).not.toBeNull();
    expect(report.metrics).toEqual([
      { name: 'analyze_duration_ms', value: er!.durationMs, unit: 'Milliseconds', dimensions: { Database: 'test', Table: 'exam_results' } },
      { name: 'analyze_duration_ms', value: mv!.durationMs, unit: 'Milliseconds', dimensions: { Database: 'test', Table: 'attempt_mv' } },
    ]);
    expect(sink.calls).toEqual([[...report.metrics, { name: 'job_success', value: 1, unit: 'Count', dimensions: { Database: 'test', Job: 'analyze' } }]]);
  });

  it('force analyzes the tables asked for, fresh or not', async () => {
    // Prepare
    const before = await lastAnalyze(db, 'questions');
    // Act
    const report = await runAnalyze(jobDeps(pool), { tables: ['questions'], force: true });
    // Assess
    expect(report.actions).toEqual([expect.objectContaining({ object: 'public.questions', outcome: 'done', message: expect.stringMatching(/^analyzed: forced/) })]);
    expect((await lastAnalyze(db, 'questions'))!.getTime()).toBeGreaterThan(before!.getTime());
    expect(report.metrics.map((m) => m.dimensions.Table)).toEqual(['questions']);
  });

  it('fails within seconds with a lock timeout, never queueing, while exam_results is locked', async () => {
    // Prepare
    const lock = await holdLock(db.url, 'exam_results');
    const started = Date.now();
    try {
      // Act
      const error = await runAnalyze(jobDeps(pool), { force: true }).catch((e: unknown) => e);
      // Assess
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(error).toBeInstanceOf(AttemptOpsError);
      expect(error).toMatchObject({ kind: 'lock-timeout', exitCode: 2, message: expect.stringMatching(/^ANALYZE public\.exam_results: lock timeout/) });
      // It gave up: nothing of ours is left waiting in the lock queue.
      const waiting = await db.admin.query(`SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE NOT l.granted AND a.datname = current_database() AND a.application_name LIKE 'attempt-ops/%'`);
      expect(waiting.rows[0].n).toBe(0);
    } finally {
      await lock.release();
    }
  });
  it('runs once when started twice: the second run reports skipped at once', async () => {
    // Prepare: the first run waits on a lock we hold, so the two certainly overlap.
    const lock = await holdLock(db.url, 'questions', 'SHARE UPDATE EXCLUSIVE');
    try {
      const first = runAnalyze(jobDeps(pool), { force: true, tables: ['questions'], lockTimeoutMs: 8_000 });
      await new Promise((r) => setTimeout(r, 300));
      // Act
      const started = Date.now();
      const second = await runAnalyze(jobDeps(db.pool('analyze-2')), { force: true, tables: ['questions'] });
      // Assess
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(second.actions).toEqual([expect.objectContaining({ outcome: 'skipped', message: 'skipped: another analyze run is in progress' })]);
      await lock.release();
      const done = await first;
      expect(done.actions).toEqual([expect.objectContaining({ object: 'public.questions', outcome: 'done' })]);
    } finally {
      await lock.release();
    }
  });
});

describe('analyze without attempt_mv', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('fails, rather than report done, when the role may not analyze a table', async () => {
    // Prepare: PostgreSQL only warns and skips the table for a role that does not own it.
    await ensureRole(db.admin, 'attempt_ops_test_outsider', "LOGIN PASSWORD 'outsider-pw'");
    await db.admin.query('GRANT SELECT ON questions TO attempt_ops_test_outsider');
    const url = new URL(db.url);
    url.username = 'attempt_ops_test_outsider';
    url.password = 'outsider-pw';
    const outsider = createPool(fromUrl(url.toString(), 'test url'), { job: 'analyze' });
    try {
      // Act
      const error = await runAnalyze(jobDeps(outsider), { tables: ['questions'], force: true }).catch((e: unknown) => e);
      // Assess
      expect(error).toBeInstanceOf(AttemptOpsError);
      expect(error).toMatchObject({ kind: 'permission', exitCode: 2, // PostgreSQL 16+ says "permission denied ... skipping it", 15 "skipping ... only table or database owner can analyze it".
        message: expect.stringMatching(/^ANALYZE public\.questions: (permission denied .*skipping it|skipping "questions" --- only table or database owner can analyze it) \(it needs the table's owner/) });
    } finally {
      await outsider.end();
    }
  });

  it('skips what does not exist and empty tables never analyzed', async () => {
    const report = await runAnalyze(jobDeps(db.pool()));
    expect(report.actions.map((a) => [a.object, a.outcome, a.message])).toEqual([
      ['public.exam_results', 'skipped', 'statistics fresh: empty and never analyzed'],
      ['public.questions', 'skipped', 'statistics fresh: empty and never analyzed'],
      ['public.attempt_mv', 'skipped', 'public.attempt_mv does not exist'],
    ]);
  });
});

describe('analyzeDue', () => {
  const stats = (s: Partial<TableStats>): TableStats => ({
    table: 'exam_results', relation: 'public.exam_results', exists: true, reltuples: 10_000, liveTuples: 10_000,
    modifiedSinceAnalyze: 0, lastAnalyze: new Date(), ageHours: 1, ...s,
  });

  it('uses 50 + 10 % of the rows as the modification threshold, like autovacuum', () => {
    expect(modificationThreshold(10_000)).toBe(1050);
    expect(modificationThreshold(-1)).toBe(50);
    expect(analyzeDue(stats({ modifiedSinceAnalyze: 1050 }), false).due).toBe(false);
    expect(analyzeDue(stats({ modifiedSinceAnalyze: 1051 }), false)).toMatchObject({ due: true, reason: '1051 rows modified since the last analyze (threshold 1050)' });
  });

  it('is due after the contract 7 days without an analyze, and when never analyzed with rows', () => {
    expect(analyzeDue(stats({ ageHours: 168 }), false).due).toBe(false);
    expect(analyzeDue(stats({ ageHours: 169 }), false)).toMatchObject({ due: true, reason: 'last analyzed 169.0 h ago (threshold 168 h)' });
    expect(analyzeDue(stats({ lastAnalyze: null, ageHours: null, reltuples: -1, liveTuples: 3 }), false)).toMatchObject({ due: true, reason: 'never analyzed, 3 rows' });
  });
});

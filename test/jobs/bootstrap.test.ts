import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { executeJob } from '../../functions/jobs/execute.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';
import { catalogChecksum, count, jobDeps, recordingSink } from './helpers.ts';

const EVERY_OBJECT = [
  'attempt_ops',
  'attempt_ops.job_runs',
  'attempt_ops.job_runs_job_started_idx',
  'attempt_ops.metric_state',
  'attempt_ops audit functions',
  'public.attempt_mv',
  'public.attempt_mv_id_idx',
  'public.attempt_mv_student_completed_idx',
  'public.attempt_mv to seedtest_user',
  'public.attempt_mv',
  'public.exam_results_completed_at_idx',
  // The change capture, a foundation since issue 10, and the student index its consumers read through.
  'public.exam_results, public.questions',
  'public.idx_exam_results_student_completed',
];

describe('bootstrap', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
  });
  afterAll(async () => db?.drop());

  it('dry run reports every missing object with its exact SQL and changes nothing at all', async () => {
    // Prepare
    const before = await catalogChecksum(db.admin);
    // Act
    const report = await runBootstrap(jobDeps(db.pool()));
    // Assess
    expect(await catalogChecksum(db.admin)).toBe(before);
    expect(report).toMatchObject({ version: 1, job: 'bootstrap', target: 'test', status: 'ok', apply: false, dryRun: true, metrics: [] });
    expect(report.actions.map((a) => a.object)).toEqual(EVERY_OBJECT);
    expect(report.actions.every((a) => a.outcome === 'planned')).toBe(true);
    const sql = report.actions.flatMap((a) => a.sql ?? []);
    expect(sql).toContain('CREATE SCHEMA IF NOT EXISTS "attempt_ops"');
    expect(sql).toContain('CREATE UNIQUE INDEX IF NOT EXISTS attempt_mv_id_idx ON "public"."attempt_mv" (id)');
    expect(sql).toContain('CREATE INDEX IF NOT EXISTS attempt_mv_student_completed_idx ON "public"."attempt_mv" (student_id, completed_at)');
    expect(sql).toContain('GRANT SELECT ON "public"."attempt_mv" TO "seedtest_user"');
    expect(sql).toContain('REFRESH MATERIALIZED VIEW "public"."attempt_mv"');
    expect(sql).toContain('CREATE INDEX CONCURRENTLY IF NOT EXISTS exam_results_completed_at_idx ON "public"."exam_results" (completed_at)');
    expect(report.notes.join(' ')).toMatch(/dry run: nothing was changed/);
  });

  it('apply creates, populates and grants everything, recording the first refresh', async () => {
    // Act
    const sink = recordingSink();
    const { report } = await executeJob({ job: 'bootstrap', target: 'test', sink, dryRun: false, log: silentLogger, run: () => runBootstrap(jobDeps(db.pool()), { apply: true }) });
    // Assess
    expect(report.status).toBe('ok');
    expect(report.actions.map((a) => [a.object, a.outcome])).toEqual(EVERY_OBJECT.map((o) => [o, 'done']));
    const { rows } = await db.admin.query(`
      SELECT c.relispopulated AS populated,
             has_table_privilege('seedtest_user', 'public.attempt_mv', 'SELECT') AS granted,
             (SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.exam_results_completed_at_idx'::regclass) AS completed_idx_valid,
             (SELECT indisunique FROM pg_index WHERE indexrelid = 'public.attempt_mv_id_idx'::regclass) AS id_unique,
             to_regclass('attempt_ops.metric_state') IS NOT NULL AS metric_state
        FROM pg_class c WHERE c.oid = 'public.attempt_mv'::regclass`);
    expect(rows[0]).toEqual({ populated: true, granted: true, completed_idx_valid: true, id_unique: true, metric_state: true });
    expect(await count(db.admin, 'SELECT count(*) AS n FROM (SELECT * FROM attempt EXCEPT SELECT * FROM attempt_mv) d')).toBe(0);
    expect(await count(db.admin, 'SELECT count(*) AS n FROM attempt_mv')).toBe(24);
    const runs = await db.admin.query(`SELECT job, mode, outcome, rows FROM attempt_ops.job_runs`);
    expect(runs.rows).toEqual([{ job: 'refresh-mv', mode: 'full', outcome: 'success', rows: '24' }]);
    // Bootstrap publishes only its heartbeat.
    expect(sink.calls).toEqual([[{ name: 'job_success', value: 1, unit: 'Count', dimensions: { Database: 'test', Job: 'bootstrap' } }]]);
  });

  it('a second apply finds everything in place and changes nothing', async () => {
    // Prepare
    const before = await catalogChecksum(db.admin);
    const runsBefore = await count(db.admin, 'SELECT count(*) AS n FROM attempt_ops.job_runs');
    // Act
    const report = await runBootstrap(jobDeps(db.pool()), { apply: true });
    // Assess
    expect(report.actions.map((a) => a.outcome)).toEqual(EVERY_OBJECT.map(() => 'exists'));
    expect(report.actions.every((a) => a.sql === undefined)).toBe(true);
    expect(report.notes).toEqual(['everything exists: nothing to do']);
    expect(await catalogChecksum(db.admin)).toBe(before);
    expect(await count(db.admin, 'SELECT count(*) AS n FROM attempt_ops.job_runs')).toBe(runsBefore);
  });

  it('replaces an INVALID completed_at index left by a failed concurrent build', async () => {
    // Prepare: a unique concurrent build over duplicate values fails and leaves an INVALID index behind.
    await db.admin.query('DROP INDEX public.exam_results_completed_at_idx');
    await insertResult(db.admin, { id: 9001, student: 'dup-a', json: { questionId: 1 }, at: '2026-01-01T00:00:00Z' });
    await insertResult(db.admin, { id: 9002, student: 'dup-b', json: { questionId: 1 }, at: '2026-01-01T00:00:00Z' });
    await expect(db.admin.query('CREATE UNIQUE INDEX CONCURRENTLY exam_results_completed_at_idx ON exam_results (completed_at)')).rejects.toThrow(/could not create unique index/);
    const valid = async () => (await db.admin.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.exam_results_completed_at_idx'::regclass`)).rows[0]?.indisvalid;
    expect(await valid()).toBe(false);
    // Act
    const planned = await runBootstrap(jobDeps(db.pool()));
    const applied = await runBootstrap(jobDeps(db.pool()), { apply: true });
    // Assess
    const plannedIdx = planned.actions.find((a) => a.object === 'public.exam_results_completed_at_idx');
    expect(plannedIdx).toMatchObject({ action: 'recreate index', outcome: 'planned' });
    expect(plannedIdx?.sql).toEqual([
      'DROP INDEX CONCURRENTLY IF EXISTS "public"."exam_results_completed_at_idx"',
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS exam_results_completed_at_idx ON "public"."exam_results" (completed_at)',
    ]);
    expect(applied.actions.filter((a) => a.outcome !== 'exists').map((a) => [a.object, a.outcome])).toEqual([['public.exam_results_completed_at_idx', 'done']]);
    expect(await valid()).toBe(true);
    const unique = await db.admin.query(`SELECT indisunique FROM pg_index WHERE indexrelid = 'public.exam_results_completed_at_idx'::regclass`);
    expect(unique.rows[0].indisunique).toBe(false);
  });

  it('takes an equivalent index under another name for the one it would create', async () => {
    // Prepare
    await db.admin.query('DROP INDEX public.attempt_mv_student_completed_idx');
    await db.admin.query('CREATE INDEX my_student_time_idx ON attempt_mv (student_id, completed_at) INCLUDE (is_correct)');
    // Act
    const report = await runBootstrap(jobDeps(db.pool()));
    // Assess
    expect(report.actions.find((a) => a.object === 'public.attempt_mv_student_completed_idx')).toMatchObject({ outcome: 'exists', message: 'exists as my_student_time_idx' });
    expect(report.actions.every((a) => a.outcome === 'exists')).toBe(true);
  });

  it('reports a grant it cannot make when the app role does not exist', async () => {
    // Act
    const report = await runBootstrap(jobDeps(db.pool(), { appRole: 'no_such_role' }));
    // Assess
    const grant = report.actions.find((a) => a.action === 'grant select');
    expect(grant).toMatchObject({ outcome: 'blocked', message: expect.stringMatching(/role no_such_role does not exist/) });
    expect(report.status).toBe('critical');
  });
});

describe('bootstrap without the attempt view', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase({ view: false });
  });
  afterAll(async () => db?.drop());

  it('creates what it can and reports attempt_mv as blocked, naming the fix', async () => {
    // Act
    const report = await runBootstrap(jobDeps(db.pool()), { apply: true });
    // Assess
    expect(report.status).toBe('critical');
    const byObject = report.actions.map((a) => [a.object, a.action, a.outcome]);
    expect(byObject).toContainEqual(['attempt_ops.job_runs', 'create table', 'done']);
    expect(byObject).toContainEqual(['public.attempt_mv', 'create materialized view', 'blocked']);
    expect(byObject).toContainEqual(['public.attempt_mv', 'populate', 'blocked']);
    expect(byObject).toContainEqual(['public.exam_results_completed_at_idx', 'create index', 'done']);
    expect(report.actions.find((a) => a.action === 'create materialized view')?.message).toMatch(/public\.attempt does not exist.*remediate recreate-view/);
    expect(await count(db.admin, `SELECT count(*) AS n FROM pg_class WHERE relname = 'attempt_mv'`)).toBe(0);
  });
});

describe('bootstrap over a poison row', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await insertResult(db.admin, { id: 4040, student: 'legacy-1', json: { questionId: '12.5' } });
  });
  afterAll(async () => db?.drop());

  it('creates every object, leaves attempt_mv unpopulated with a warning, and does not fail the deploy', async () => {
    const report = await runBootstrap(jobDeps(db.pool()), { apply: true });
    expect(report.status).toBe('warning');
    const populate = report.actions.find((a) => a.action === 'populate')!;
    expect(populate).toMatchObject({ outcome: 'failed', message: expect.stringMatching(/stays unpopulated.*invalid input syntax for type integer: "12.5"/) });
    expect(report.actions.filter((a) => a !== populate).every((a) => a.outcome === 'done')).toBe(true);
    const { rows } = await db.admin.query(`SELECT relispopulated AS populated, to_regclass('public.exam_results_completed_at_idx') IS NOT NULL AS idx FROM pg_class WHERE oid = 'public.attempt_mv'::regclass`);
    expect(rows[0]).toEqual({ populated: false, idx: true });
  });
});

/**
 * The hourly check's change-driven scope (issue 11, item 1), against a real PostgreSQL: with the
 * change capture installed, the data-quality checks read the rows changed since the last run that
 * measured them, however old, and the starting point moves only over checks that measured.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { createTestDatabase, insertResult, resetToClean, type TestDatabase } from '../support/db.ts';
import { holdLock, jobDeps } from '../jobs/helpers.ts';

const DAY = 24 * 3600 * 1000;

describe('change-driven scope', () => {
  let db: TestDatabase;
  const deps = () => jobDeps(db.pool('health-check'));
  const check = async (names: Parameters<typeof runHealthCheck>[1] = {}) => runHealthCheck(deps(), names);

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());
  beforeEach(async () => {
    await resetToClean(db.admin);
    expect((await runBootstrap(deps(), { apply: true })).status).toBe('ok');
    // The first run with the capture registers its cursor (and reads recent rows); from the second on, changes.
    await check();
    const second = await check();
    expect(second.checks.find((c) => c.name === 'view_queryable')!.message).toMatch(/^no poison rows among the rows changed since the last run \(0 student\(s\)\)/);
  });

  it('a late backfill with a poison questionId dated 30 days ago is found by the next hourly run', async () => {
    await insertResult(db.admin, { id: 8001, student: 'legacy-8001', json: { questionId: '12.5' }, at: new Date(Date.now() - 30 * DAY).toISOString() });
    const report = await check();
    const poison = report.checks.find((c) => c.name === 'view_queryable')!;
    expect(poison).toMatchObject({ status: 'critical', value: 1, message: expect.stringMatching(/among the rows changed since the last run \(1 student\(s\)\)/) });
    expect(report.metrics).toContainEqual(expect.objectContaining({ name: 'attempt_poison_rows', value: 1 }));
  });

  it('an old row updated to a NULL student_id is found by the next hourly run', async () => {
    await db.admin.query(`UPDATE exam_results SET student_id = NULL WHERE id = (SELECT min(id) FROM exam_results)`);
    const nulls = (await check()).checks.find((c) => c.name === 'required_nulls')!;
    expect(nulls).toMatchObject({ status: 'critical' });
    expect(nulls.value).toBeGreaterThan(0);
  });

  it('a deleted question makes its old results orphans, found by the next hourly run', async () => {
    await db.admin.query(`DELETE FROM questions WHERE id = 4`);
    const orphans = (await check()).checks.find((c) => c.name === 'orphan_results')!;
    expect(orphans).toMatchObject({ status: 'critical', value: 6, message: expect.stringMatching(/1 question\(s\)/) });
  });

  it('a run whose data-quality check came back unknown does not move the starting point', async () => {
    await insertResult(db.admin, { id: 8002, student: 'legacy-8002', json: { questionId: '7x' }, at: new Date(Date.now() - 40 * DAY).toISOString() });
    // Act: exam_results is locked, so the data-quality checks give up on their lock timeout: unknown.
    const lock = await holdLock(db.url, 'exam_results');
    try {
      const cut = await runHealthCheck(deps(), { lockTimeoutMs: 100 });
      expect(cut.checks.find((c) => c.name === 'view_queryable')!.status).toBe('unknown');
    } finally {
      await lock.release();
    }
    // Assess: the next run still reads that row.
    const next = await check();
    expect(next.checks.find((c) => c.name === 'view_queryable')!).toMatchObject({ status: 'critical', value: 1 });
    // Once measured it is an open finding: re-read by every run while it is there, resolved once fixed.
    const after = await check();
    expect(after.checks.find((c) => c.name === 'view_queryable')!).toMatchObject({ status: 'critical', value: 1 });
    await db.admin.query('DELETE FROM exam_results WHERE id = 8002');
    const fixed = await check();
    expect(fixed.checks.find((c) => c.name === 'view_queryable')!).toMatchObject({ status: 'ok', value: 0 });
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM attempt_ops.open_findings`)).rows[0].n).toBe(0);
    expect((await check()).checks.find((c) => c.name === 'view_queryable')!.message).toMatch(/\(0 student\(s\)\)/);
  });

  it('an old duplicate found by the daily full run is reported by every hourly run until it is fixed: one page, not one a day', async () => {
    // Prepare: a duplicate result 10 days old, written with the capture off so no change names it (as a restore would).
    await db.admin.query('ALTER TABLE exam_results DISABLE TRIGGER attempt_ops_capture_insert');
    await db.admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json, completed_at FROM exam_results WHERE id = (SELECT min(id) FROM exam_results)`);
    await db.admin.query('ALTER TABLE exam_results ENABLE ALWAYS TRIGGER attempt_ops_capture_insert');
    expect((await check()).checks.find((c) => c.name === 'duplicate_ids')!.value).toBe(0);
    // Act: the daily full run finds it; the hourly runs after it keep counting it.
    const full = await runHealthCheck(deps(), { scope: 'full' });
    expect(full.checks.find((c) => c.name === 'duplicate_ids')!).toMatchObject({ status: 'warning', value: 1 });
    for (let hour = 0; hour < 3; hour++) {
      expect((await check()).checks.find((c) => c.name === 'duplicate_ids')!, `hour ${hour}`).toMatchObject({ status: 'warning', value: 1 });
    }
    // Assess: fixed, it resolves at the next hourly run, and stays resolved.
    await db.admin.query(`DELETE FROM exam_results WHERE ctid = (SELECT max(ctid) FROM exam_results WHERE id = (SELECT min(id) FROM exam_results))`);
    expect((await check()).checks.find((c) => c.name === 'duplicate_ids')!).toMatchObject({ status: 'ok', value: 0 });
    expect((await check()).checks.find((c) => c.name === 'duplicate_ids')!).toMatchObject({ status: 'ok', value: 0 });
  });

  it('without the change capture the checks read recent rows and say so', async () => {
    await runBootstrap(deps(), { apply: true, capture: false });
    const report = await check();
    expect(report.checks.find((c) => c.name === 'duplicate_ids')!.message).toMatch(/since .* \(recent rows: the change capture is turned off \(bootstrap --no-capture\)\)$/);
  });
});

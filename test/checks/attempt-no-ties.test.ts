/**
 * attempt_no_ties (runbook section 5): (raw student, item) pairs with two rows at the same
 * completed_at, whose attempt_no the view's ROW_NUMBER() assigns in no fixed order. Each case gets
 * a fresh database with the clean seed (every question its own item: no ties) plus two questions
 * of one item.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckResult, HealthReport, Scope } from '../../functions/contract/index.ts';
import { CHECK_SPECS } from '../../functions/contract/index.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

let db: TestDatabase | undefined;

afterEach(async () => {
  await db?.drop();
  db = undefined;
});

/** Questions 11 and 12 share item 201. */
async function fresh(): Promise<TestDatabase> {
  db = await createTestDatabase();
  await seedClean(db.admin);
  await db.admin.query(`INSERT INTO questions (id, item_id, question_text, correct_answer) VALUES (11, 201, 'a', 'x'), (12, 201, 'b', 'y')`);
  return db;
}

async function run(d: TestDatabase, scope?: Scope): Promise<{ report: HealthReport; check: CheckResult }> {
  const report = await runHealthCheck(
    { pool: d.pool(), target: 'ties', schema: 'public', appRole: 'seedtest_user' },
    { checks: ['attempt_no_ties'], ...(scope ? { scope } : {}) },
  );
  expect(report.checks).toHaveLength(1);
  return { report, check: report.checks[0]! };
}

/** One result of `student` for question `q` at `at`. */
const answer = (d: TestDatabase, id: number, student: string | null, q: number | string, at: string) =>
  insertResult(d.admin, { id, student, json: { questionId: q, studentAnswer: 'x', isCorrect: true, responseTime: 100 }, at });

interface Sample {
  student_id: string | null;
  item_id: number;
  completed_at: string;
  exam_result_ids: string[];
}
const sampleOf = (check: CheckResult) => (check.details.find((x) => (x as { sample?: unknown }).sample) as { sample: Sample[] } | undefined)?.sample ?? [];
const summaryOf = (check: CheckResult) => check.details[0] as { kind: string; pairs: number; tieGroups: number; tiedRows: number };

describe('attempt_no_ties', () => {
  it('is ok with value 0 on clean data, and emits its metric', async () => {
    const d = await fresh();
    const { report, check } = await run(d);
    expect(check).toMatchObject({ name: 'attempt_no_ties', status: 'ok', value: 0, severity: 'P2', runbook: CHECK_SPECS.attempt_no_ties.runbook, threshold: 0 });
    expect(check.message).toContain('among all rows');
    expect(summaryOf(check)).toEqual({ kind: 'attempt_no_ties', pairs: 0, tieGroups: 0, tiedRows: 0 });
    expect(report.metrics).toContainEqual({ name: 'attempt_no_tie_groups', value: 0, unit: 'Count', dimensions: { Database: 'ties' } });
  });

  it('warns about two questions of one item answered at the same completed_at, naming them', async () => {
    const d = await fresh();
    const at = '2026-11-24T10:15:30.123456Z';
    await answer(d, 9001, 'Legacy-Student-7', 11, at);
    await answer(d, 9002, 'Legacy-Student-7', 12, at);
    const { report, check } = await run(d);
    expect(check).toMatchObject({ status: 'warning', value: 1 });
    expect(check.message).toMatch(/^1 \(student, item\) pair\(s\) among all rows .*2 tied row/);
    expect(summaryOf(check)).toEqual({ kind: 'attempt_no_ties', pairs: 1, tieGroups: 1, tiedRows: 2 });
    // The raw student id, as the view partitions by it (not the uuid the view shows).
    expect(sampleOf(check)).toEqual([{ student_id: 'Legacy-Student-7', item_id: 201, completed_at: '2026-11-24T10:15:30.123456Z', exam_result_ids: ['9001', '9002'] }]);
    expect(report.metrics).toContainEqual({ name: 'attempt_no_tie_groups', value: 1, unit: 'Count', dimensions: { Database: 'ties' } });

    // The tie is real: the view gives the pair attempt_no 1 and 2, in an order nothing fixes.
    const { rows } = await d.admin.query(`SELECT attempt_no FROM attempt WHERE exam_result_id IN (9001, 9002) ORDER BY attempt_no`);
    expect(rows.map((r) => Number(r.attempt_no))).toEqual([1, 2]);
  });

  it('is ok when the same pair has different completed_at, or when one student differs', async () => {
    const d = await fresh();
    await answer(d, 9001, 'legacy-7', 11, '2026-11-24T10:15:30Z');
    await answer(d, 9002, 'legacy-7', 12, '2026-11-24T10:15:31Z');
    // Same instant, same item, but another raw student: another partition.
    await answer(d, 9003, 'legacy-8', 11, '2026-11-24T10:15:30Z');
    expect((await run(d)).check).toMatchObject({ status: 'ok', value: 0 });
  });

  it('counts pairs, not groups or rows: three rows at one instant and a second tie of the same pair are one pair', async () => {
    const d = await fresh();
    await d.admin.query(`INSERT INTO questions (id, item_id, question_text, correct_answer) VALUES (13, 201, 'c', 'z')`);
    for (const [id, q] of [[9001, 11], [9002, 12], [9003, 13]] as const) await answer(d, id, 'legacy-7', q, '2026-11-24T10:00:00Z');
    await answer(d, 9004, 'legacy-7', 11, '2026-11-25T10:00:00Z');
    await answer(d, 9005, 'legacy-7', 12, '2026-11-25T10:00:00Z');
    const { check } = await run(d);
    expect(check).toMatchObject({ status: 'warning', value: 1 });
    expect(summaryOf(check)).toEqual({ kind: 'attempt_no_ties', pairs: 1, tieGroups: 2, tiedRows: 5 });
    // Newest first.
    expect(sampleOf(check).map((s) => s.exam_result_ids)).toEqual([['9004', '9005'], ['9001', '9002', '9003']]);
  });

  it('does not count a tie older than the incremental window, and counts it with scope full', async () => {
    const d = await fresh();
    const old = new Date(Date.now() - 3 * 24 * 3600 * 1000).toISOString();
    await answer(d, 9001, 'legacy-7', 11, old);
    await answer(d, 9002, 'legacy-7', 12, old);
    // A recorded run makes the incremental scope "since the last run, at least the last 24 h".
    await d.admin.query(opsSchemaSql());
    await d.admin.query(`INSERT INTO attempt_ops.job_runs (job, started_at, finished_at, mode, outcome) VALUES ('health-check', now(), now(), 'incremental', 'success')`);

    const incremental = await run(d);
    expect(incremental.report.scope).toBe('incremental');
    expect(incremental.check).toMatchObject({ status: 'ok', value: 0 });
    expect(incremental.check.message).toMatch(/since \d{4}-/);

    const full = await run(d, 'full');
    expect(full.report.scope).toBe('full');
    expect(full.check).toMatchObject({ status: 'warning', value: 1 });
    expect(full.check.message).toContain('among all rows');

    // A fresh tie inside the window is seen by the incremental scope.
    const now = new Date().toISOString();
    await answer(d, 9003, 'legacy-9', 11, now);
    await answer(d, 9004, 'legacy-9', 12, now);
    expect((await run(d)).check).toMatchObject({ status: 'warning', value: 1 });
  });

  it('does not fail on a poison questionId row, and still counts the real tie', async () => {
    const d = await fresh();
    const at = '2026-11-24T10:15:30Z';
    await answer(d, 9001, 'legacy-7', 11, at);
    await answer(d, 9002, 'legacy-7', 12, at);
    // These make every query of the view fail; the check reads around them.
    await answer(d, 9003, 'legacy-7', '12.5', at);
    await answer(d, 9004, 'legacy-7', 'abc', at);
    await expect(d.admin.query('SELECT * FROM attempt')).rejects.toThrow();
    const { check } = await run(d);
    expect(check).toMatchObject({ status: 'warning', value: 1 });
    expect(sampleOf(check)[0]!.exam_result_ids).toEqual(['9001', '9002']);
  });

  it('counts NULL-student ties as one partition', async () => {
    const d = await fresh();
    const at = '2026-11-24T10:15:30Z';
    await answer(d, 9001, null, 11, at);
    await answer(d, 9002, null, 12, at);
    const { check } = await run(d);
    expect(check).toMatchObject({ status: 'warning', value: 1 });
    expect(sampleOf(check)).toEqual([{ student_id: null, item_id: 201, completed_at: '2026-11-24T10:15:30.000000Z', exam_result_ids: ['9001', '9002'] }]);
    // The view agrees: both NULL-student rows share one numbering.
    const { rows } = await d.admin.query(`SELECT attempt_no FROM attempt WHERE exam_result_id IN (9001, 9002) ORDER BY attempt_no`);
    expect(rows.map((r) => Number(r.attempt_no))).toEqual([1, 2]);
  });
});

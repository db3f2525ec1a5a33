/**
 * Incremental scope reads the rows since the last recorded run (at least the last 24 h); full
 * scope, or no recorded run, reads every row. The report says which.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

describe('incremental and full scope', () => {
  let db: TestDatabase;
  const deps = () => ({ pool: db.pool(), target: 'scope', schema: 'public', appRole: 'seedtest_user' });

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    // An old NULL student id, outside any incremental window.
    await insertResult(db.admin, { id: 8001, student: null, json: { questionId: 1, isCorrect: true }, at: '2026-01-01T00:00:00Z' });
  });
  afterAll(async () => db?.drop());

  it('reads every row when no run was ever recorded, and records none without the audit table', async () => {
    const report = await runHealthCheck(deps(), { checks: ['required_nulls'] });
    expect(report.scope).toBe('incremental');
    expect(report.checks[0]).toMatchObject({ status: 'critical', value: 1 });
    expect(report.checks[0]!.message).toContain('among all rows');
  });

  it('after a recorded run, reads only the window since then (at least 24 h)', async () => {
    await db.admin.query(opsSchemaSql());
    const first = await runHealthCheck(deps());
    expect(first.checks.find((c) => c.name === 'required_nulls')).toMatchObject({ status: 'critical', value: 1 });
    const runs = await db.admin.query(`SELECT job, outcome, mode FROM attempt_ops.job_runs`);
    expect(runs.rows).toEqual([{ job: 'health-check', outcome: 'success', mode: 'incremental' }]);

    const second = await runHealthCheck(deps(), { checks: ['required_nulls', 'orphan_results'] });
    const nulls = second.checks.find((c) => c.name === 'required_nulls')!;
    expect(nulls).toMatchObject({ status: 'ok', value: 0 });
    expect(nulls.message).toMatch(/since \d{4}-/);

    // A fresh fault inside the window is still seen.
    await insertResult(db.admin, { id: 8002, student: 'legacy-1', json: { questionId: 31337 } });
    const third = await runHealthCheck(deps(), { checks: ['orphan_results'] });
    expect(third.checks[0]).toMatchObject({ status: 'critical', value: 1 });
  });

  it('full scope reads every row again and says so', async () => {
    const report = await runHealthCheck(deps(), { checks: ['required_nulls'], scope: 'full' });
    expect(report.scope).toBe('full');
    expect(report.checks[0]).toMatchObject({ status: 'critical', value: 1 });
  });

  it('a dry run records nothing', async () => {
    const before = await db.admin.query('SELECT count(*)::int AS n FROM attempt_ops.job_runs');
    await runHealthCheck(deps(), { dryRun: true });
    const after = await db.admin.query('SELECT count(*)::int AS n FROM attempt_ops.job_runs');
    expect(after.rows[0].n).toBe(before.rows[0].n);
  });
});

/**
 * A refresh whose backend is terminated half-way (an operator's pg_terminate_backend, a
 * failover): the job reports the failure, attempt_mv keeps its previous contents, the pool drops
 * the broken client, and the next run succeeds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool } from '../../functions/db/pool.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';
import { count, holdLock, jobDeps } from '../jobs/helpers.ts';

describe('refresh terminated in the middle', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await runBootstrap(jobDeps(db.pool('bootstrap')), { apply: true });
  });
  afterAll(async () => db?.drop());

  it.each(['concurrent', 'full'] as const)('%s: fails, keeps the previous contents, and the next run succeeds', async (mode) => {
    const pool = createPool(fromUrl(db.url, 'test'), { job: 'refresh-mv', max: 2 });
    const id = mode === 'full' ? 77_001 : 77_000;
    try {
      const before = await count(db.admin, 'SELECT count(*) AS n FROM attempt_mv');
      await insertResult(db.admin, { id, student: 'legacy-late', json: { questionId: 2, isCorrect: true } });
      // The refresh waits on this lock, so we know where it is when we kill it.
      const lock = await holdLock(db.url, 'exam_results');
      const running = runRefresh(jobDeps(pool), { mode, lockTimeoutMs: 20_000 }).catch((e: unknown) => e);
      let killed = 0;
      for (let i = 0; i < 100 && killed === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const r = await db.admin.query(
          `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND application_name = 'attempt-ops/refresh-mv' AND wait_event_type = 'Lock'`,
        );
        killed = r.rows[0].n;
      }
      expect(killed).toBe(1);
      const error = await running;
      await lock.release();
      expect(error).toMatchObject({ kind: 'connection' });
      // The refresh's transaction died with its backend: the copy is as it was.
      expect(await count(db.admin, 'SELECT count(*) AS n FROM attempt_mv')).toBe(before);
      expect(await count(db.admin, 'SELECT count(*) AS n FROM attempt_mv WHERE exam_result_id = $1', [id])).toBe(0);
      // Same pool: the dead client was dropped, not handed out again.
      const next = await runRefresh(jobDeps(pool), { mode });
      expect(next.actions[0]!.outcome).toBe('done');
      expect(await count(db.admin, 'SELECT count(*) AS n FROM attempt_mv WHERE exam_result_id = $1', [id])).toBe(1);
      const staleness = await runHealthCheck(jobDeps(pool), { checks: ['mv_staleness'] });
      expect(staleness.checks[0]!.status).toBe('ok');
    } finally {
      await db.admin.query('DELETE FROM exam_results WHERE id = $1', [id]);
      await pool.end();
    }
  });

  it('the same scheduled health check delivered twice runs twice harmlessly', async () => {
    const deps = jobDeps(db.pool('twice'));
    const [a, b] = await Promise.all([runHealthCheck(deps), runHealthCheck(deps)]);
    // Both complete with a verdict for every check, and they agree on the data.
    for (const r of [a, b]) expect(r.checks.filter((c) => c.status === 'unknown')).toEqual([]);
    const verdicts = (r: typeof a) => r.checks.filter((c) => c.name !== 'query_latency' && c.name !== 'connections').map((c) => [c.name, c.status, c.value]);
    expect(verdicts(a)).toEqual(verdicts(b));
  });
});

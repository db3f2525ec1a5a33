import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Pool } from '../../functions/db/pool.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { executeJob } from '../../functions/jobs/execute.ts';
import { runPublishMetrics } from '../../functions/jobs/publish-metrics.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { jobDeps, recordingSink } from './helpers.ts';

const LIVE_METRICS = ['long_running_queries', 'database_connections', 'attempt_query_p99_latency', 'blocked_queries', 'attempt_mv_staleness_seconds'];
/** The P0 and P1 catalog facts, and the idle transactions, every minute too. */
const FAST_METRICS = ['attempt_view_exists', 'attempt_view_schema_drift', 'attempt_permission_missing', 'idle_in_transaction_sessions'];
/** Where bootstrap installed the change capture. */
const CAPTURE_METRICS = ['attempt_capture_problems', 'attempt_mv_divergent_rows'];

/** Queries as the application runs them: as the app role, not as attempt-ops' own role. */
async function appQueries(db: TestDatabase, n: { view: number; mv: number; other: number }): Promise<void> {
  await db.admin.query('SET ROLE seedtest_user');
  try {
    for (let i = 0; i < n.view; i++) {
      await db.admin.query(`SELECT * FROM attempt WHERE student_id = $1 AND completed_at >= CURRENT_DATE - INTERVAL '30 days'`, ['3f1c2a9e-8b7d-4c6e-9a1b-2c3d4e5f6a7b']);
    }
    for (let i = 0; i < n.mv; i++) await db.admin.query('SELECT count(*) FROM attempt_mv');
    for (let i = 0; i < n.other; i++) await db.admin.query('SELECT count(*) FROM questions');
  } finally {
    await db.admin.query('RESET ROLE');
  }
}

async function sampledAt(db: TestDatabase): Promise<Date | undefined> {
  const { rows } = await db.admin.query<{ sampled_at: Date }>(`SELECT sampled_at FROM attempt_ops.metric_state WHERE name = 'pg_stat_statements:attempt'`);
  return rows[0]?.sampled_at;
}

describe('publish-metrics with pg_stat_statements', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    pool = db.pool('publish-metrics');
    await runBootstrap(jobDeps(pool), { apply: true });
    await db.admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  });
  afterAll(async () => db?.drop());

  it('publishes the live metrics from the check catalog and keeps a first pg_stat_statements sample', async () => {
    // Act
    const report = await runPublishMetrics(jobDeps(pool));
    // Assess
    expect(report).toMatchObject({ version: 1, job: 'publish-metrics', target: 'test', status: 'ok', dryRun: false });
    // No health check has read the change log yet: the data-quality checks are the hourly run's.
    expect(report.metrics.map((m) => m.name).sort()).toEqual([...LIVE_METRICS, ...FAST_METRICS, ...CAPTURE_METRICS].sort());
    expect(report.actions.find((a) => a.object === 'attempt_poison_rows')).toMatchObject({ outcome: 'skipped', message: expect.stringMatching(/the hourly health check reads these rows/) });
    for (const m of report.metrics) expect(m.dimensions).toEqual({ Database: 'test' });
    expect(report.metrics.find((m) => m.name === 'attempt_query_p99_latency')?.unit).toBe('Milliseconds');
    expect(report.metrics.find((m) => m.name === 'attempt_mv_staleness_seconds')?.unit).toBe('Seconds');
    expect(report.actions.filter((a) => a.object.startsWith('attempt_query_') && a.object !== 'attempt_query_p99_latency').map((a) => a.outcome)).toEqual(['skipped', 'skipped']);
    expect(report.notes.join('\n')).toMatch(/first sample of pg_stat_statements kept/);
    expect(await sampledAt(db)).toBeInstanceOf(Date);
    // No health-check run is recorded: these are not the hourly checks.
    const { rows } = await db.admin.query(`SELECT count(*)::int AS n FROM attempt_ops.job_runs WHERE job = 'health-check'`);
    expect(rows[0].n).toBe(0);
  });

  it("publishes the count and mean time of the app's queries on attempt since the previous run, in one batch", async () => {
    // Prepare: 3 + 2 queries on attempt by the app; ours and unrelated ones do not count.
    await appQueries(db, { view: 3, mv: 2, other: 4 });
    await db.admin.query('SELECT count(*) FROM attempt');
    const sink = recordingSink();
    // Act
    const { report } = await executeJob({ job: 'publish-metrics', target: 'test', sink, dryRun: false, log: silentLogger, run: () => runPublishMetrics(jobDeps(pool)) });
    // Assess
    const byName = new Map(report.metrics.map((m) => [m.name, m]));
    expect(byName.get('attempt_query_count')).toEqual({ name: 'attempt_query_count', value: 5, unit: 'Count', dimensions: { Database: 'test' } });
    expect(byName.get('attempt_query_mean_ms')).toMatchObject({ unit: 'Milliseconds', dimensions: { Database: 'test' } });
    expect(byName.get('attempt_query_mean_ms')!.value).toBeGreaterThan(0);
    expect(report.metrics.map((m) => m.name).sort()).toEqual([...LIVE_METRICS, ...FAST_METRICS, ...CAPTURE_METRICS, 'attempt_query_count', 'attempt_query_mean_ms'].sort());
    expect(sink.calls).toHaveLength(1);
    expect(sink.calls[0]).toEqual([...report.metrics, { name: 'job_success', value: 1, unit: 'Count', dimensions: { Database: 'test', Job: 'publish-metrics' } }]);
    expect(report.durationMs).toBeLessThan(1000);
  });

  it('publishes a poison row within a minute of its write, once a health check has read the change log', async () => {
    // Prepare: the hourly check registers its cursor; publish-metrics reads the changes since it.
    await runHealthCheck(jobDeps(pool));
    await insertResult(db.admin, { id: 8801, student: 'legacy-8801', json: { questionId: '1.5' }, at: '2026-01-01T00:00:00Z' });
    // Act
    const report = await runPublishMetrics(jobDeps(pool));
    // Assess: old as the row is, it is a change, and every data-quality metric of the P0 and P1 checks goes out.
    expect(report.metrics).toContainEqual(expect.objectContaining({ name: 'attempt_poison_rows', value: 1 }));
    for (const name of ['attempt_null_required_fields', 'attempt_orphan_results']) expect(report.metrics.map((m) => m.name)).toContain(name);
    await db.admin.query('DELETE FROM exam_results WHERE id = 8801');
  });

  it('a dry run computes the delta but keeps no sample and publishes nothing', async () => {
    // Prepare
    await appQueries(db, { view: 2, mv: 0, other: 0 });
    const kept = await sampledAt(db);
    const sink = recordingSink();
    // Act
    const { report } = await executeJob({ job: 'publish-metrics', target: 'test', sink, dryRun: true, log: silentLogger, run: () => runPublishMetrics(jobDeps(pool), { dryRun: true }) });
    // Assess
    expect(report.metrics.find((m) => m.name === 'attempt_query_count')?.value).toBe(2);
    expect(sink.calls).toEqual([]);
    expect(await sampledAt(db)).toEqual(kept);
    // The next real run still counts from the kept sample.
    const next = await runPublishMetrics(jobDeps(pool));
    expect(next.metrics.find((m) => m.name === 'attempt_query_count')?.value).toBe(2);
  });

  it('publishes zero queries, and no mean, for a quiet minute', async () => {
    const report = await runPublishMetrics(jobDeps(pool));
    expect(report.metrics.find((m) => m.name === 'attempt_query_count')?.value).toBe(0);
    expect(report.metrics.some((m) => m.name === 'attempt_query_mean_ms')).toBe(false);
    expect(report.actions.find((a) => a.object === 'attempt_query_mean_ms')).toMatchObject({ outcome: 'skipped', message: expect.stringMatching(/no query on attempt/) });
  });

  it('skips a run whose counters went backwards (entries reset or evicted), then counts again', async () => {
    // Prepare: a reset limited to this database drops its entries without a global stats_reset.
    await appQueries(db, { view: 1, mv: 0, other: 0 });
    await db.admin.query('SELECT pg_stat_statements_reset(0, (SELECT oid FROM pg_database WHERE datname = current_database()), 0)');
    // Act
    const skipped = await runPublishMetrics(jobDeps(pool));
    await appQueries(db, { view: 0, mv: 1, other: 0 });
    const counted = await runPublishMetrics(jobDeps(pool));
    // Assess
    expect(skipped.metrics.some((m) => m.name === 'attempt_query_count')).toBe(false);
    expect(skipped.notes.join('\n')).toMatch(/evicted from pg_stat_statements/);
    expect(counted.metrics.find((m) => m.name === 'attempt_query_count')?.value).toBe(1);
  });
});

describe('publish-metrics without pg_stat_statements', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
  });
  afterAll(async () => db?.drop());

  it('skips the pg_stat_statements metrics with a note, and mv_staleness without attempt_mv', async () => {
    // Act
    const report = await runPublishMetrics(jobDeps(db.pool()));
    // Assess
    expect(report.status).toBe('ok');
    expect(report.metrics.map((m) => m.name).sort()).toEqual([...LIVE_METRICS.filter((m) => m !== 'attempt_mv_staleness_seconds'), ...FAST_METRICS].sort());
    expect(report.notes).toContain('attempt_query_count and attempt_query_mean_ms skipped: pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)');
    expect(report.actions.find((a) => a.object === 'attempt_mv_staleness_seconds')).toMatchObject({ outcome: 'skipped' });
  });

  it('names bootstrap when the extension is there but attempt_ops.metric_state is not', async () => {
    await db.admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const report = await runPublishMetrics(jobDeps(db.pool()));
    expect(report.notes.join('\n')).toMatch(/attempt_ops\.metric_state does not exist: run attempt-ops bootstrap --apply/);
    expect(report.metrics.some((m) => m.name === 'attempt_query_count')).toBe(false);
  });
});

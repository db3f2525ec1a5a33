/**
 * An alarm can only fire on a metric some job really emits. The jobs run here against a real
 * database with every metric-producing path exercised (including a table per Table dimension and
 * pg_stat_statements), and every custom metric an alarm watches must be among what they emitted,
 * with the dimensions the alarm filters on.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ALL_ALARM_SPECS, customDimensions, type MetricDatum } from '../../functions/contract/index.ts';
import { SCHEDULES } from '../../functions/contract/schedules.ts';
import { executeJob } from '../../functions/jobs/execute.ts';
import { runAnalyze } from '../../functions/jobs/analyze.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runPublishMetrics } from '../../functions/jobs/publish-metrics.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import type { ReportEnvelope } from '../../functions/contract/index.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { jobDeps, recordingSink } from '../jobs/helpers.ts';

describe('every alarm watches an emitted metric', () => {
  let db: TestDatabase;
  const emitted: MetricDatum[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await db.admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const deps = { ...jobDeps(db.pool('emitted')), target: 'prod' };
    const sink = recordingSink();
    const run = async <R extends ReportEnvelope>(job: ReportEnvelope['job'], fn: () => Promise<R>) => {
      await executeJob({ job, target: 'prod', sink, dryRun: false, log: silentLogger, run: fn });
    };
    await run('bootstrap', () => runBootstrap(deps, { apply: true }));
    await run('analyze', () => runAnalyze(deps, { force: true }));
    await run('refresh-mv', () => runRefresh(deps));
    await run('health-check', () => runHealthCheck(deps, { scope: 'full' }));
    // Two samples: the second publishes the pg_stat_statements deltas.
    await run('publish-metrics', () => runPublishMetrics(deps));
    await db.admin.query('SELECT count(*) FROM attempt');
    await run('publish-metrics', () => runPublishMetrics(deps));
    emitted.push(...sink.calls.flat());
  });
  afterAll(async () => db?.drop());

  it('emits every custom metric an alarm watches, with the alarm\'s dimensions', () => {
    for (const spec of ALL_ALARM_SPECS) {
      const source = spec.source;
      if (source.kind === 'custom') {
        const tables = source.perTable ?? [undefined];
        for (const table of tables) {
          const dims = customDimensions('prod', table ? { table } : {});
          expect(emitted.some((d) => d.name === source.metric && JSON.stringify(d.dimensions) === JSON.stringify(dims)), `${spec.id}: ${source.metric} ${JSON.stringify(dims)}`).toBe(true);
        }
      }
      if (source.kind === 'heartbeat') {
        for (const s of SCHEDULES) {
          const dims = customDimensions('prod', { job: s.job });
          expect(emitted.some((d) => d.name === 'job_success' && d.value === 1 && JSON.stringify(d.dimensions) === JSON.stringify(dims)), `${spec.id}: ${s.job}`).toBe(true);
        }
      }
    }
  });
});

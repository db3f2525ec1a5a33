/**
 * The maintenance Lambda handlers end to end: Secrets Manager and CloudWatch through
 * aws-sdk-client-mock, the database real.
 */
import { PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ENV, type ActionsReport } from '../../functions/contract/index.ts';
import { AttemptOpsError } from '../../functions/db/errors.ts';
import { handler as analyzeHandler } from '../../functions/handlers/analyze.ts';
import { handler as bootstrapHandler } from '../../functions/handlers/bootstrap.ts';
import { handler as publishMetricsHandler } from '../../functions/handlers/publish-metrics.ts';
import { handler as refreshHandler } from '../../functions/handlers/refresh-mv.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { SCHEDULED_EVENT as scheduled, lambdaContext, useLambdaHarness } from '../support/lambda.ts';
import { holdLock } from './helpers.ts';

const context = lambdaContext({ functionName: 'maintenance' });
let db: TestDatabase;
const { secrets, cloudwatch, sentDatums } = useLambdaHarness({ databaseUrl: () => db?.url, env: { [ENV.logLevel]: 'error' } });

function heartbeat(job: string, value: 0 | 1) {
  return expect.objectContaining({ MetricName: 'job_success', Value: value, Dimensions: [{ Name: 'Database', Value: 'prod-eu' }, { Name: 'Job', Value: job }] });
}

beforeAll(async () => {
  db = await createTestDatabase();
  await seedClean(db.admin);
});
afterAll(async () => db?.drop());

describe('maintenance handlers reject bad payloads before any SQL', () => {
  const cases: [string, (event: unknown, ctx: Context) => Promise<unknown>, unknown, RegExp][] = [
    ['analyze: an unknown table', analyzeHandler, { tables: ['exam_results', 'students'] }, /^invalid analyze payload: tables\.1: /],
    ['analyze: a wrong type', analyzeHandler, { force: 'yes' }, /^invalid analyze payload: force: /],
    ['refresh-mv: mode "fast"', refreshHandler, { mode: 'fast' }, /^invalid refresh-mv payload: mode: /],
    ['refresh-mv: an extra field', refreshHandler, { mode: 'full', table: 'attempt_mv' }, /^invalid refresh-mv payload: .*table/],
    ['publish-metrics: an extra field', publishMetricsHandler, { dryRun: true, checks: ['connections'] }, /^invalid publish-metrics payload: .*checks/],
    ['bootstrap: a wrong type', bootstrapHandler, { apply: 'true' }, /^invalid bootstrap payload: apply: /],
    ['bootstrap: an extra field', bootstrapHandler, { apply: true, force: true }, /^invalid bootstrap payload: .*force/],
  ];
  it.each(cases)('%s', async (_name, handler, payload, message) => {
    const error = await handler(payload, context).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AttemptOpsError);
    expect(error).toMatchObject({ kind: 'config', message: expect.stringMatching(message) });
    // The secret was never read, so no connection, let alone SQL, was ever made; nothing was published.
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });
});

describe('maintenance handlers', () => {
  it('bootstrap only reports without apply, publishing nothing, and applies with {"apply": true}', async () => {
    // Act
    const planned = (await bootstrapHandler({}, context)) as ActionsReport;
    // Assess
    expect(planned).toMatchObject({ job: 'bootstrap', target: 'prod-eu', dryRun: true, status: 'ok' });
    expect(planned.actions.every((a) => a.outcome === 'planned')).toBe(true);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
    const { rows } = await db.admin.query(`SELECT to_regclass('attempt_mv') AS mv`);
    expect(rows[0].mv).toBeNull();

    // Act
    const applied = (await bootstrapHandler({ apply: true }, context)) as ActionsReport;
    // Assess
    expect(applied.actions.every((a) => a.outcome === 'done')).toBe(true);
    expect(sentDatums()).toEqual([heartbeat('bootstrap', 1)]);
  });

  it('refresh-mv on a scheduled event refreshes and publishes its metrics and job_success in one call', async () => {
    const report = (await refreshHandler(scheduled, context)) as ActionsReport;
    expect(report).toMatchObject({ job: 'refresh-mv', mode: 'concurrent', status: 'ok', actions: [{ outcome: 'done' }] });
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(1);
    const datums = sentDatums();
    expect(datums.map((d) => d.MetricName)).toEqual(['attempt_mv_refresh_duration_ms', 'attempt_mv_row_count', 'job_success']);
    expect(datums).toContainEqual(expect.objectContaining({ MetricName: 'attempt_mv_row_count', Value: 24, Unit: 'Count', Dimensions: [{ Name: 'Database', Value: 'prod-eu' }] }));
    expect(datums).toContainEqual(heartbeat('refresh-mv', 1));
  });

  it('refresh-mv throws a lock timeout (so Lambda counts an error) and publishes job_success 0', async () => {
    const lock = await holdLock(db.url, 'exam_results');
    try {
      const error = await refreshHandler({ mode: 'full' }, context).catch((e: unknown) => e);
      expect(error).toMatchObject({ kind: 'lock-timeout' });
      expect(sentDatums()).toEqual([heartbeat('refresh-mv', 0)]);
    } finally {
      await lock.release();
    }
  });

  it('refresh-mv accepts mode incremental: converts attempt_mv once, then refreshes only what changed, publishing like the other modes', async () => {
    const first = (await refreshHandler({ mode: 'incremental' }, context)) as ActionsReport;
    expect(first).toMatchObject({ job: 'refresh-mv', mode: 'incremental', status: 'ok' });
    // bootstrap installed the capture and built the student index already.
    expect(first.actions.map((a) => a.action)).toEqual(['convert to table', 'refresh']);
    await db.admin.query(`INSERT INTO exam_results VALUES (7001, 'legacy-7001', '{"questionId": 2}', now())`);
    cloudwatch.resetHistory();
    const next = (await refreshHandler({ mode: 'incremental' }, context)) as ActionsReport;
    expect(next.actions).toEqual([expect.objectContaining({ outcome: 'done', after: { populated: true, rows: 25, mode: 'incremental' } })]);
    expect(sentDatums()).toEqual([
      expect.objectContaining({ MetricName: 'attempt_mv_refresh_duration_ms' }),
      expect.objectContaining({ MetricName: 'attempt_mv_row_count', Value: 25 }),
      heartbeat('refresh-mv', 1),
    ]);
  });

  it('analyze runs the tables a manual payload names and publishes their durations', async () => {
    const report = (await analyzeHandler({ tables: ['questions'], force: true }, context)) as ActionsReport;
    expect(report.actions).toEqual([expect.objectContaining({ object: 'public.questions', outcome: 'done' })]);
    expect(sentDatums()).toEqual([
      expect.objectContaining({ MetricName: 'analyze_duration_ms', Unit: 'Milliseconds', Dimensions: [{ Name: 'Database', Value: 'prod-eu' }, { Name: 'Table', Value: 'questions' }] }),
      heartbeat('analyze', 1),
    ]);
  });

  it('analyze with dryRun publishes nothing', async () => {
    const report = (await analyzeHandler({ force: true, dryRun: true }, context)) as ActionsReport;
    expect(report.actions.map((a) => a.outcome)).toEqual(['planned', 'planned', 'planned']);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });

  it('publish-metrics on a scheduled event sends every datum in one PutMetricData call', async () => {
    const report = (await publishMetricsHandler(scheduled, context)) as ActionsReport;
    expect(report).toMatchObject({ job: 'publish-metrics', status: 'ok' });
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(1);
    const names = sentDatums().map((d) => d.MetricName);
    expect(names).toEqual([...report.metrics.map((m) => m.name), 'job_success']);
    expect(names).toEqual(expect.arrayContaining(['database_connections', 'blocked_queries', 'long_running_queries', 'attempt_query_p99_latency', 'attempt_mv_staleness_seconds']));
  });
});

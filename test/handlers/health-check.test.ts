/**
 * The health-check Lambda handler end to end: Secrets Manager and CloudWatch through
 * aws-sdk-client-mock (counting calls, faults moto cannot make), the database real. Against moto's
 * server: aws-api.test.ts.
 */
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CHECK_NAMES, ENV, type HealthReport } from '../../functions/contract/index.ts';
import { handler } from '../../functions/handlers/health-check.ts';
import { resetContainer } from '../../functions/handlers/runtime.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { SCHEDULED_EVENT as scheduled, SECRET_ARN, lambdaContext, secretFor, useLambdaHarness } from '../support/lambda.ts';

const context = lambdaContext({ functionName: 'health-check' });
let db: TestDatabase;
const { secrets, cloudwatch, sentDatums, logged } = useLambdaHarness({ databaseUrl: () => db?.url, env: { [ENV.connectTimeoutMs]: '2000' } });

beforeAll(async () => {
  db = await createTestDatabase();
  await seedClean(db.admin);
});
afterAll(async () => db?.drop());

describe('health-check handler', () => {
  it('runs every check on a scheduled event and publishes all metrics plus job_success in one call', async () => {
    const report = (await handler(scheduled, context)) as HealthReport;
    expect(report).toMatchObject({ version: 1, job: 'health-check', target: 'prod-eu', scope: 'incremental', status: 'ok' });
    expect(report.checks.map((c) => c.name)).toEqual([...CHECK_NAMES]);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(1);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)[0]!.args[0].input.Namespace).toBe('AttemptView');
    const datums = sentDatums();
    expect(datums).toHaveLength(report.metrics.length + 1);
    expect(datums).toContainEqual(expect.objectContaining({ MetricName: 'job_success', Value: 1, Dimensions: [{ Name: 'Database', Value: 'prod-eu' }, { Name: 'Job', Value: 'health-check' }] }));
    expect(datums).toContainEqual(expect.objectContaining({ MetricName: 'attempt_view_exists', Value: 1, Unit: 'Count' }));
    // Within its max age the secret is read once per container, not per invocation.
    await handler(scheduled, context);
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
  });

  it('runs the checks and scope a manual payload names', async () => {
    const report = (await handler({ checks: ['view_exists', 'permissions'], scope: 'full' }, context)) as HealthReport;
    expect(report.scope).toBe('full');
    expect(report.checks.map((c) => c.name)).toEqual(['view_exists', 'permissions']);
  });

  it.each([
    [{ checks: ['view_exists', 'nope'] }, /checks\.1: Invalid option/],
    [{ scope: 'fast' }, /scope: Invalid option/],
    [{ dryRun: 'yes' }, /dryRun: Invalid input: expected boolean/],
    [{ checks: 'view_exists' }, /checks: Invalid input: expected array/],
    [{ extra: 1 }, /Unrecognized key: "extra"/],
  ])('rejects the payload %j before any SQL', async (payload, message) => {
    await expect(handler(payload, context)).rejects.toThrow(message);
    // No secret fetched means no connection was ever attempted.
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });

  it('publishes nothing on a dry run', async () => {
    const report = (await handler({ dryRun: true }, context)) as HealthReport;
    expect(report.checks).toHaveLength(CHECK_NAMES.length);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });

  it('reports a critical check as a successful job: the metric drives the alarm', async () => {
    const faulty = await createTestDatabase();
    try {
      await faulty.admin.query('DROP VIEW attempt');
      secrets.on(GetSecretValueCommand).resolves({ SecretString: secretFor(faulty.url) });
      const report = (await handler(scheduled, context)) as HealthReport;
      expect(report.status).toBe('critical');
      expect(sentDatums()).toContainEqual(expect.objectContaining({ MetricName: 'attempt_view_exists', Value: 0 }));
      expect(sentDatums()).toContainEqual(expect.objectContaining({ MetricName: 'job_success', Value: 1 }));
    } finally {
      resetContainer();
      await faulty.drop();
    }
  });

  it('throws when the database is unreachable, after publishing job_success 0', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: secretFor(db.url, { port: 1 }) });
    await expect(handler(scheduled, context)).rejects.toMatchObject({ kind: 'connection' });
    expect(sentDatums()).toEqual([expect.objectContaining({ MetricName: 'job_success', Value: 0 })]);
  });

  it('names a wrong password as an authentication failure, never the password', async () => {
    const password = 'Wr0ng-Pa55word-Canary';
    secrets.on(GetSecretValueCommand).resolves({ SecretString: secretFor(db.url, { password }) });
    const error = await handler(scheduled, context).catch((e: Error) => e);
    expect(error).toMatchObject({ kind: 'authentication' });
    expect((error as Error).message).not.toContain(password);
    expect(logged.join('')).toContain('authentication failed');
    expect(logged.join('')).not.toContain(password);
  });

  it.each([
    ['not json at all', /is not valid JSON/],
    [JSON.stringify({ host: 'h', username: 'u', dbname: 'd' }), /missing or has a malformed field: password/],
    [JSON.stringify({ host: 'h', username: 'u', password: 'S3cret-Canary', port: 'abc' }), /malformed field: port/],
  ])('rejects a malformed secret %#, naming the field and never a value', async (secretString, message) => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: secretString });
    const error = await handler(scheduled, context).catch((e: Error) => e);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).toContain(SECRET_ARN);
    expect((error as Error).message).not.toContain('S3cret-Canary');
    expect(logged.join('')).not.toContain('S3cret-Canary');
  });

  it('fails with the variable name when the configuration is missing', async () => {
    vi.stubEnv(ENV.dbSecretArn, '');
    await expect(handler(scheduled, context)).rejects.toThrow(`${ENV.dbSecretArn} is not set`);
  });

  it('fails loudly when PutMetricData fails, after logging the report', async () => {
    cloudwatch.on(PutMetricDataCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(handler(scheduled, context)).rejects.toMatchObject({ kind: 'metrics', message: expect.stringContaining('ThrottlingException') });
    expect(logged.join('')).toContain('"message":"job finished"');
  });
});

/**
 * The ops Lambda handler: payloads rejected before any SQL (no secret is even fetched), diagnose
 * and dry runs publish nothing, an apply publishes the heartbeat and audits the caller.
 */
import { PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type DiagnoseReport, type RemediateReport } from '../../functions/contract/index.ts';
import { handler, invokerOf } from '../../functions/handlers/ops.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { lambdaContext, useLambdaHarness } from '../support/lambda.ts';
import { stateDigest } from './helpers.ts';

const context = lambdaContext({ functionName: 'attempt-ops-prod-ops', awsRequestId: 'req-1' });
let db: TestDatabase;
const { secrets, cloudwatch } = useLambdaHarness({ databaseUrl: () => db?.url });

beforeAll(async () => {
  db = await createTestDatabase();
  await seedClean(db.admin);
});
afterAll(async () => db?.drop());

describe('ops handler', () => {
  it.each([
    [{}, /action: Invalid discriminator value/],
    [{ source: 'aws.events', 'detail-type': 'Scheduled Event' }, /action: Invalid discriminator value/],
    [{ action: 'explode' }, /action: Invalid discriminator value/],
    [{ action: 'diagnose' }, /incident: Invalid option/],
    [{ action: 'diagnose', incident: 'everything' }, /incident: Invalid option/],
    [{ action: 'remediate', fix: 'drop-view-cascade' }, /fix: Invalid option/],
    [{ action: 'remediate', fix: 'analyze', apply: 'yes' }, /apply: Invalid input: expected boolean/],
    [{ action: 'remediate', fix: 'quarantine-duplicates', restore: true }, /Unrecognized key: "restore"/],
    [{ action: 'diagnose', incident: 'duplicates', apply: true }, /Unrecognized key: "apply"/],
  ])('rejects %j before any SQL', async (payload, message) => {
    await expect(handler(payload, context)).rejects.toThrow(message);
    // No secret fetched means no connection was ever attempted.
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });

  it('diagnoses and publishes nothing', async () => {
    const report = (await handler({ action: 'diagnose', incident: 'view-missing' }, context)) as DiagnoseReport;
    expect(report).toMatchObject({ job: 'ops', action: 'diagnose', incident: 'view-missing', target: 'prod-eu', status: 'ok' });
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });

  it('a remediation without apply changes and publishes nothing', async () => {
    await db.admin.query('REVOKE SELECT ON exam_results FROM seedtest_user');
    const before = await stateDigest(db.admin);
    const report = (await handler({ action: 'remediate', fix: 'grant-select' }, context)) as RemediateReport;
    expect(report).toMatchObject({ action: 'remediate', fix: 'grant-select', apply: false, dryRun: true, status: 'ok' });
    expect(report.actions.filter((a) => a.outcome === 'planned').flatMap((a) => a.sql)).toEqual(['GRANT SELECT ON "public"."exam_results" TO "seedtest_user"']);
    expect(await stateDigest(db.admin)).toEqual(before);
    expect(cloudwatch.commandCalls(PutMetricDataCommand)).toHaveLength(0);
  });

  it('applies, verifies, audits the caller from the client context, and publishes job_success', async () => {
    await db.admin.query('REVOKE SELECT ON exam_results FROM seedtest_user');
    const withCaller = { ...context, clientContext: { custom: { invokedBy: 'alice@laptop' } } } as unknown as Context;
    const report = (await handler({ action: 'remediate', fix: 'grant-select', apply: true }, withCaller)) as RemediateReport;
    expect(report).toMatchObject({ apply: true, status: 'ok', invokedBy: 'lambda:alice@laptop request req-1' });
    expect(report.verification).toEqual([expect.objectContaining({ name: 'permissions', status: 'ok' })]);
    const audit = await db.admin.query(`SELECT fix, target, invoked_by, outcome FROM attempt_ops.remediations ORDER BY id DESC LIMIT 1`);
    expect(audit.rows[0]).toEqual({ fix: 'grant-select', target: 'prod-eu', invoked_by: 'lambda:alice@laptop request req-1', outcome: 'success' });
    const datums = cloudwatch.commandCalls(PutMetricDataCommand).flatMap((c) => c.args[0].input.MetricData ?? []);
    expect(datums).toEqual([expect.objectContaining({ MetricName: 'job_success', Value: 1, Dimensions: [{ Name: 'Database', Value: 'prod-eu' }, { Name: 'Job', Value: 'ops' }] })]);
  });
});

describe('invokerOf', () => {
  it('prefers the claimed caller, then a Cognito identity, then plain lambda', () => {
    expect(invokerOf({ awsRequestId: 'r', clientContext: { custom: { invokedBy: 'bob\n@host' } } } as unknown as Context)).toBe('lambda:bob@host request r');
    expect(invokerOf({ identity: { cognitoIdentityId: 'eu-west-1:abc', cognitoIdentityPoolId: 'p' } } as unknown as Context)).toBe('lambda:cognito:eu-west-1:abc');
    expect(invokerOf(undefined)).toBe('lambda');
  });
});

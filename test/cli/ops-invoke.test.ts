/**
 * `attempt-ops invoke`: the payload is validated before any AWS call, the function name comes from
 * the environment, a `cdk deploy --outputs-file` file or the stack's naming, and the answer is
 * printed exactly as the local command prints its own report.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { functionFromOutputs } from '../../functions/cli/commands/invoke.ts';
import { renderDiagnoseReport, renderHealthReport, renderRemediateReport } from '../../functions/cli/render.ts';
import type { DiagnoseReport, HealthReport, RemediateReport } from '../../functions/contract/index.ts';
import { runDiagnose } from '../../functions/jobs/diagnose.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runRemediation } from '../../functions/jobs/remediate.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { jobDeps } from '../jobs/helpers.ts';

const lambda = mockClient(LambdaClient);
const env = { AWS_REGION: 'eu-west-1', AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE', AWS_SECRET_ACCESS_KEY: 'not-a-real-secret' };

const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => runCli(args, { ...env, ...extraEnv });

function answer(report: unknown) {
  return { StatusCode: 200, Payload: new TextEncoder().encode(JSON.stringify(report)) as never };
}

function sent() {
  return lambda.commandCalls(InvokeCommand).map((c) => c.args[0].input);
}

/** Real reports, made on a real database, as the deployed functions would return them. */
let health: HealthReport;
let diagnosis: DiagnoseReport;
let remediation: RemediateReport;
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await seedClean(db.admin);
  await db.admin.query('DROP VIEW attempt');
  const deps = jobDeps(db.pool(), { target: 'prod' });
  health = JSON.parse(JSON.stringify(await runHealthCheck(deps, { checks: ['view_exists', 'connections'], dryRun: true })));
  diagnosis = JSON.parse(JSON.stringify(await runDiagnose(deps, { incident: 'view-missing' })));
  remediation = JSON.parse(JSON.stringify(await runRemediation(deps, { fix: 'recreate-view', invokedBy: 'lambda:alice' })));
});
afterAll(async () => db?.drop());

beforeEach(() => {
  lambda.reset();
});

describe('attempt-ops invoke', () => {
  it.each([
    [['invoke', 'ops'], /^attempt-ops: invalid ops payload: action: Invalid discriminator value/],
    [['invoke', 'ops', '--payload', '{"action":"diagnose","incident":"everything"}'], /invalid ops payload: incident: Invalid option/],
    [['invoke', 'ops', '--payload', '{"action":"remediate","fix":"analyze","apply":"yes"}'], /apply: Invalid input: expected boolean/],
    [['invoke', 'health-check', '--payload', '{"checks":["nope"]}'], /invalid health-check payload: checks\.0: Invalid option/],
    [['invoke', 'analyze', '--payload', '{"tables": ["attempt"], "extra": 1}'], /tables\.0: Invalid option.*Unrecognized key: "extra"/],
    [['invoke', 'health-check', '--payload', '{not json'], /--payload is not valid JSON/],
    [['invoke', 'pagerduty-forwarder'], /invoke: unknown function "pagerduty-forwarder" \(functions: health-check, analyze, refresh-mv, publish-metrics, bootstrap, ops\)/],
    [['invoke', 'health-check', '--region', 'moon'], /--region must be an AWS region/],
  ])('rejects %j with exit 3 before calling AWS', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(sent()).toEqual([]);
  });

  it('sends the validated payload to the stack-named function and prints what `check` prints', async () => {
    lambda.on(InvokeCommand).resolves(answer(health));
    const r = await cli(['invoke', 'health-check', '--payload', '{"checks":["view_exists","connections"]}', '--target', 'prod']);
    expect(sent()).toHaveLength(1);
    const input = sent()[0]!;
    expect(input).toMatchObject({ FunctionName: 'attempt-ops-prod-health-check', InvocationType: 'RequestResponse' });
    expect(JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array))).toEqual({ checks: ['view_exists', 'connections'] });
    expect(JSON.parse(Buffer.from(input.ClientContext!, 'base64').toString())).toEqual({ custom: { invokedBy: `${os.userInfo().username}@${os.hostname()}` } });
    expect(r.stdout).toBe(renderHealthReport(health, false, 'docs/RUNBOOK.md'));
    expect(r.code).toBe(2);
    const json = await cli(['invoke', 'health-check', '--json', '--target', 'prod']);
    expect(json.stdout).toBe(`${JSON.stringify(health, null, 2)}\n`);
  });

  it('prints an ops diagnosis and a remediation as diagnose and remediate print them, with their exit codes', async () => {
    lambda.on(InvokeCommand).resolves(answer(diagnosis));
    const d = await cli(['invoke', 'ops', '--payload', '{"action":"diagnose","incident":"view-missing"}']);
    expect(d.stdout).toBe(renderDiagnoseReport(diagnosis, false, 'docs/RUNBOOK.md'));
    expect(d.code).toBe(2);

    lambda.on(InvokeCommand).resolves(answer(remediation));
    const m = await cli(['invoke', 'ops', '--payload', '{"action":"remediate","fix":"recreate-view"}']);
    expect(m.stdout).toBe(renderRemediateReport(remediation, false));
    expect(m.code).toBe(0);
  });

  it('takes the function name from ATTEMPT_OPS_FUNCTION_<NAME> first', async () => {
    lambda.on(InvokeCommand).resolves(answer(diagnosis));
    await cli(['invoke', 'ops', '--payload', '{"action":"diagnose","incident":"view-missing"}'], { ATTEMPT_OPS_FUNCTION_OPS: 'custom-ops-fn' });
    expect(sent()[0]!.FunctionName).toBe('custom-ops-fn');
    const bad = await cli(['invoke', 'ops', '--payload', '{"action":"diagnose","incident":"view-missing"}'], { ATTEMPT_OPS_FUNCTION_OPS: 'no spaces; allowed' });
    expect(bad.code).toBe(3);
    expect(bad.stderr).toMatch(/ATTEMPT_OPS_FUNCTION_OPS: .* is not a Lambda function name or ARN/);
  });

  it('reads the function name from a cdk --outputs-file, picking the stack of --target', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'outputs-'));
    const file = path.join(dir, 'outputs.json');
    writeFileSync(file, JSON.stringify({
      'AttemptOps-staging': { Functionhealthcheck: 'attempt-ops-staging-health-check', Functionops: 'attempt-ops-staging-ops', DashboardName: 'd1' },
      'AttemptOps-prod': { Functionhealthcheck: 'attempt-ops-prod-health-check', Functionops: 'attempt-ops-prod-ops-v2', DashboardName: 'd2' },
    }));
    lambda.on(InvokeCommand).resolves(answer(diagnosis));
    const r = await cli(['invoke', 'ops', '--outputs', file, '--target', 'prod', '--payload', '{"action":"diagnose","incident":"view-missing"}']);
    expect(r.stderr).toBe('');
    expect(sent()[0]!.FunctionName).toBe('attempt-ops-prod-ops-v2');
    const ambiguous = await cli(['invoke', 'ops', '--outputs', file, '--payload', '{"action":"diagnose","incident":"view-missing"}']);
    expect(ambiguous.code).toBe(3);
    expect(ambiguous.stderr).toMatch(/several outputs name the ops function .*pick one with --target/);
    const missing = await cli(['invoke', 'ops', '--outputs', path.join(dir, 'nope.json'), '--payload', '{"action":"diagnose","incident":"view-missing"}']);
    expect(missing.stderr).toMatch(/--outputs: cannot read/);
  });

  it('matches output keys by the function, tolerant of their style', () => {
    expect(functionFromOutputs({ S: { ProdRefreshMvFunctionName: 'fn-refresh', ProdOpsFunctionName: 'fn-ops' } }, 'refresh-mv', 'prod', 'f')).toBe('fn-refresh');
    expect(functionFromOutputs({ S: { Functionbootstrap1A2B3C4D: 'fn-boot', Functionbootstrapondeploy: 'other' } }, 'bootstrap', 'prod', 'f')).toBe('fn-boot');
    expect(functionFromOutputs({ Functionpublishmetrics: 'flat' }, 'publish-metrics', 'x', 'f')).toBe('flat');
    expect(() => functionFromOutputs({ S: { DashboardName: 'd' } }, 'ops', 'x', 'f')).toThrow(/no output names the ops function/);
  });

  it('a function error exits 2 with its message on one line', async () => {
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200, FunctionError: 'Unhandled',
      Payload: new TextEncoder().encode(JSON.stringify({ errorType: 'AttemptOpsError', errorMessage: 'remediate analyze: ANALYZE public.exam_results: lock timeout,\nanother session holds a conflicting lock', trace: ['at x', 'at y'] })) as never,
    });
    const r = await cli(['invoke', 'ops', '--payload', '{"action":"remediate","fix":"analyze","apply":true}']);
    expect(r.code).toBe(2);
    expect(r.stderr).toBe('attempt-ops: ops (attempt-ops-local-ops) failed: AttemptOpsError: remediate analyze: ANALYZE public.exam_results: lock timeout, another session holds a conflicting lock\n');
    expect(r.stdout).toBe('');
  });

  it('exits 3 when AWS cannot run it: no such function, no credentials', async () => {
    lambda.on(InvokeCommand).rejects(Object.assign(new Error('Function not found: arn:aws:lambda:eu-west-1:123456789012:function:attempt-ops-local-ops'), { name: 'ResourceNotFoundException' }));
    const r = await cli(['invoke', 'ops', '--payload', '{"action":"diagnose","incident":"duplicates"}']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/^attempt-ops: invoke ops \(attempt-ops-local-ops\): no such function; set ATTEMPT_OPS_FUNCTION_OPS, pass --outputs FILE, or check --target\n$/);
    lambda.on(InvokeCommand).rejects(Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }));
    const creds = await cli(['invoke', 'ops', '--payload', '{"action":"diagnose","incident":"duplicates"}']);
    expect(creds.code).toBe(3);
    expect(creds.stderr).toMatch(/CredentialsProviderError: Could not load credentials/);
    expect(creds.stderr).not.toContain('not-a-real-secret');
  });

  it('refuses an answer that is not a report', async () => {
    lambda.on(InvokeCommand).resolves(answer({ hello: 'world' }));
    const r = await cli(['invoke', 'bootstrap']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bootstrap answered something that is not a report/);
  });
});

/**
 * Every job's Lambda handler fails loudly on an unreachable database or a broken secret: it
 * throws (Lambda's Errors metric), publishes job_success 0 where the run was not a dry run, and
 * its message names the problem, never a secret's value.
 */
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { describe, expect, it, vi } from 'vitest';
import { ENV } from '../../functions/contract/index.ts';
import { SCHEDULED_EVENT as scheduled, SECRET_ARN, lambdaContext, useLambdaHarness } from '../support/lambda.ts';

const CANARY = 'Pw-Canary-0e1d';
const context = lambdaContext();

const HANDLERS = [
  { job: 'health-check', load: () => import('../../functions/handlers/health-check.ts'), event: scheduled },
  { job: 'analyze', load: () => import('../../functions/handlers/analyze.ts'), event: scheduled },
  { job: 'refresh-mv', load: () => import('../../functions/handlers/refresh-mv.ts'), event: scheduled },
  { job: 'publish-metrics', load: () => import('../../functions/handlers/publish-metrics.ts'), event: scheduled },
  { job: 'bootstrap', load: () => import('../../functions/handlers/bootstrap.ts'), event: { apply: true } },
  { job: 'ops', load: () => import('../../functions/handlers/ops.ts'), event: { action: 'remediate', fix: 'grant-select', apply: true } },
] as const;

const { secrets, sentDatums, logged } = useLambdaHarness({ env: { [ENV.connectTimeoutMs]: '1000' } });

function heartbeats() {
  return sentDatums().filter((d) => d.MetricName === 'job_success');
}

describe.each(HANDLERS)('$job handler', ({ job, load, event }) => {
  it('database refused: throws a connection error within the connect timeout and publishes job_success 0', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ host: '127.0.0.1', port: 1, username: 'u', password: CANARY, dbname: 'd' }) });
    const { handler } = await load();
    const started = Date.now();
    await expect(handler(event, context)).rejects.toMatchObject({ kind: 'connection' });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(heartbeats()).toEqual([expect.objectContaining({ Value: 0, Dimensions: expect.arrayContaining([{ Name: 'Job', Value: job }]) })]);
    expect(logged.join('')).not.toContain(CANARY);
  });

  it('unresolvable host: throws a connection error', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ host: 'db.invalid', port: 5432, username: 'u', password: CANARY }) });
    const { handler } = await load();
    await expect(handler(event, context)).rejects.toMatchObject({ kind: 'connection' });
  });

  it.each([
    ['missing', undefined, /has no SecretString/],
    ['not JSON', `{"password": "${CANARY}"`, /is not valid JSON/],
    ['without a host', JSON.stringify({ username: 'u', password: CANARY }), /malformed field: host/],
  ])('secret %s: a config error naming the problem, never the value', async (_what, secretString, message) => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: secretString });
    const { handler } = await load();
    const error = (await handler(event, context).catch((e: unknown) => e)) as Error & { kind: string };
    expect(error.kind).toBe('config');
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain(CANARY);
    expect(logged.join('')).not.toContain(CANARY);
  });

  it('secret unreadable (AccessDenied): a config error naming the secret', async () => {
    secrets.on(GetSecretValueCommand).rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    const { handler } = await load();
    await expect(handler(event, context)).rejects.toThrow(`cannot read secret ${SECRET_ARN} (AccessDeniedException)`);
  });

  it('hostile schema name in the environment: rejected before any secret or SQL', async () => {
    vi.stubEnv(ENV.schema, 'public"; DROP TABLE exam_results; --');
    const { handler } = await load();
    await expect(handler(event, context)).rejects.toThrow(`${ENV.schema} must be a plain identifier`);
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });
});

/**
 * The job handlers against a real AWS API: moto's server for Secrets Manager and CloudWatch, the
 * database real. What aws-sdk-client-mock cannot show: the secret as the SDK really reads it, a
 * rotation reaching a warm container, metrics read back with GetMetricData, and an endpoint that
 * cannot be reached failing with a message that names it.
 */
import { CloudWatchClient, GetMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ENV, type HealthReport } from '../../functions/contract/index.ts';
import { handler } from '../../functions/handlers/health-check.ts';
import { cloudWatchSink } from '../../functions/metrics/cloudwatch.ts';
import { SDK_NETWORK } from '../../functions/runtime/aws.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { SCHEDULED_EVENT as scheduled, lambdaContext, secretFor, useMotoLambdaHarness } from '../support/lambda.ts';
import { freeLoopbackPort, MOTO_MISSING, silentEndpoint, startMoto, unansweredEndpoint, type Moto } from '../support/moto.ts';

const context = lambdaContext({ functionName: 'health-check' });
/** One check is enough: what is under test is the secret and the metrics, not the checks. */
const payload = { checks: ['view_exists'] };

let moto: Moto;
let db: TestDatabase;
/** A login role of its own, so that its password can rotate without touching the admin's. */
let role: string;

async function waitFor(what: string, condition: () => boolean | Promise<boolean>, deadlineMs = 10_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** health-check's job_success datapoints since `since`, as moto's CloudWatch answers GetMetricData. */
async function jobSuccessValues(since: Date): Promise<number[] | undefined> {
  const out = await new CloudWatchClient({}).send(
    new GetMetricDataCommand({
      StartTime: new Date(since.getTime() - 5 * 60_000),
      EndTime: new Date(Date.now() + 5 * 60_000),
      MetricDataQueries: [
        {
          Id: 'success',
          MetricStat: {
            Metric: { Namespace: 'AttemptView', MetricName: 'job_success', Dimensions: [{ Name: 'Database', Value: 'prod-eu' }, { Name: 'Job', Value: 'health-check' }] },
            Period: 60,
            Stat: 'Maximum',
          },
        },
      ],
    }),
  );
  return out.MetricDataResults?.[0]?.Values;
}

describe.skipIf(MOTO_MISSING !== undefined)(`job handlers against moto's server${MOTO_MISSING ? ` (skipped: ${MOTO_MISSING})` : ''}`, () => {
  beforeAll(async () => {
    [moto, db] = await Promise.all([startMoto(), createTestDatabase()]);
    role = `rot_${randomBytes(4).toString('hex')}`;
  });
  afterAll(async () => {
    await db?.admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]).catch(() => undefined);
    await db?.drop();
    await db?.admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    await moto?.stop();
  });

  const { logged } = useMotoLambdaHarness(() => moto, { env: { [ENV.connectTimeoutMs]: '2000' } });
  // Made in a test's own scope, after the harness has pointed the SDK at moto.
  const secretsManager = () => new SecretsManagerClient({});

  /** The role with this password, and a secret in moto that holds it; the handler reads that secret. */
  async function roleSecret(password: string): Promise<string> {
    await db.admin.query(`DO $$ BEGIN CREATE ROLE ${role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$`);
    await db.admin.query(`ALTER ROLE ${role} PASSWORD '${password}'`);
    const u = new URL(db.url);
    u.username = role;
    u.password = password;
    const out = await secretsManager().send(new CreateSecretCommand({ Name: `attempt-db-${randomBytes(3).toString('hex')}`, SecretString: secretFor(u.toString()) }));
    vi.stubEnv(ENV.dbSecretArn, out.ARN!);
    return out.ARN!;
  }

  /**
   * Rotate as RDS does: the database's password first, then the secret (or not, with
   * updateSecret false). Then end the role's sessions, as the pool's idle timeout would, and wait
   * until the warm container's pool has dropped them all: its next session is a new login.
   */
  async function rotate(arn: string, password: string, updateSecret = true): Promise<void> {
    await db.admin.query(`ALTER ROLE ${role} PASSWORD '${password}'`);
    if (updateSecret) {
      const u = new URL(db.url);
      u.username = role;
      u.password = password;
      await secretsManager().send(new PutSecretValueCommand({ SecretId: arn, SecretString: secretFor(u.toString()) }));
    }
    const dropped = () => logged.filter((l) => l.includes('idle database client dropped')).length;
    const before = dropped();
    const ended = await db.admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1`, [role]);
    await waitFor(`the pool to drop ${ended.rowCount} idle session(s)`, () => dropped() - before >= (ended.rowCount ?? 0));
  }

  it('reads the database secret from Secrets Manager and publishes job_success, read back with GetMetricData', async () => {
    // Prepare
    await roleSecret('first-Passw0rd');
    // Act
    const started = new Date();
    const report = (await handler(payload, context)) as HealthReport;
    // Assess
    expect(report.status).toBe('ok');
    expect(await jobSuccessValues(started)).toEqual([1]);
  });

  it('a rotation between two invocations of a warm container: the rejected password makes it read the secret again, once', async () => {
    // Prepare
    const arn = await roleSecret('before-Rotat10n');
    await handler(payload, context);
    await rotate(arn, 'after-Rotat10n');
    // Act
    const report = (await handler(payload, context)) as HealthReport;
    // Assess
    expect(report.status).toBe('ok');
    const log = logged.join('');
    expect(log.match(/rejected the password/g)).toHaveLength(1);
    expect(log).toContain('database secret changed: new connection pool');
    expect(log).not.toContain('before-Rotat10n');
    expect(log).not.toContain('after-Rotat10n');
  });

  it('a rotation after the max age reaches the warm container without a rejected login', async () => {
    // Prepare: a max age of 0 reads the secret on every invocation.
    vi.stubEnv(ENV.secretMaxAgeSeconds, '0');
    const arn = await roleSecret('old-Passw0rd-1');
    await handler(payload, context);
    await rotate(arn, 'new-Passw0rd-2');
    // Act
    const report = (await handler(payload, context)) as HealthReport;
    // Assess
    expect(report.status).toBe('ok');
    expect(logged.join('')).toContain('database secret changed: new connection pool');
    expect(logged.join('')).not.toContain('rejected the password');
  });

  it('a password the secret does not have yet fails the job after one re-read, naming the failure and never the password', async () => {
    // Prepare
    const arn = await roleSecret('kept-Passw0rd');
    await handler(payload, context);
    await rotate(arn, 'unknown-Passw0rd', false);
    // Act
    const error = await handler(payload, context).catch((e: Error) => e);
    // Assess
    expect(error).toMatchObject({ kind: 'authentication' });
    const log = logged.join('');
    expect(log.match(/rejected the password/g)).toHaveLength(1);
    expect(log).not.toContain('kept-Passw0rd');
    expect(log).not.toContain('unknown-Passw0rd');
  });

  it('rejects a malformed secret in Secrets Manager, naming the field and never a value', async () => {
    const out = await secretsManager().send(new CreateSecretCommand({ Name: 'attempt-db-bad', SecretString: JSON.stringify({ host: 'h', username: 'u', password: 'S3cret-Canary', port: 'abc' }) }));
    vi.stubEnv(ENV.dbSecretArn, out.ARN!);
    const error = await handler(payload, context).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/malformed field: port/);
    expect(logged.join('')).not.toContain('S3cret-Canary');
  });

  it('names a secret Secrets Manager does not have', async () => {
    const missing = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:attempt-db-none-AbCdEf';
    vi.stubEnv(ENV.dbSecretArn, missing);
    await expect(handler(payload, context)).rejects.toThrow(`cannot read secret ${missing} (ResourceNotFoundException)`);
  });
});

describe.skipIf(MOTO_MISSING !== undefined)(`unreachable AWS endpoints${MOTO_MISSING ? ` (skipped: ${MOTO_MISSING})` : ''}`, () => {
  let closed: string;
  beforeAll(async () => {
    moto = await startMoto();
    closed = `http://127.0.0.1:${await freeLoopbackPort()}`;
  });
  afterAll(async () => moto?.stop());
  const { logged } = useMotoLambdaHarness(() => moto);

  it('keep every SDK call well under 10 s: two attempts of a 2 s connect and a 3 s request timeout', () => {
    expect(SDK_NETWORK.maxAttempts).toBe(2);
    expect(SDK_NETWORK.maxAttempts * SDK_NETWORK.connectionTimeoutMs).toBeLessThanOrEqual(5_000);
    expect(SDK_NETWORK.maxAttempts * SDK_NETWORK.requestTimeoutMs).toBeLessThanOrEqual(6_000);
  });

  // Secrets Manager only (the SDK's per-service endpoint variable): CloudWatch stays on moto.
  const SECRETS_ENDPOINT = 'AWS_ENDPOINT_URL_SECRETS_MANAGER';

  it('a closed Secrets Manager port fails the job with one message naming the endpoint, after job_success 0', async () => {
    vi.stubEnv(SECRETS_ENDPOINT, closed);
    const started = new Date();
    const error = await handler(payload, context).catch((e: Error) => e);
    expect(error).toMatchObject({ kind: 'connection' });
    expect(await jobSuccessValues(started)).toEqual([0]);
    expect((error as Error).message).toBe(`cannot reach Secrets Manager (${closed.replace('http://', '')}) (ECONNREFUSED): in private subnets, add an interface endpoint or a NAT route`);
    expect(logged.join('')).toContain('cannot reach Secrets Manager');
  });

  it('a Secrets Manager endpoint that never answers the SYN fails on the connect timeout, naming it', async () => {
    // Without a connect timeout this waits for the OS's (minutes), past the test's own timeout.
    const unanswered = await unansweredEndpoint();
    try {
      vi.stubEnv(SECRETS_ENDPOINT, unanswered.endpoint);
      const error = await handler(payload, context).catch((e: Error) => e);
      expect(error).toMatchObject({ kind: 'connection' });
      expect((error as Error).message).toBe(`cannot reach Secrets Manager (${unanswered.endpoint.replace('http://', '')}) within 2 s: in private subnets, add an interface endpoint or a NAT route`);
    } finally {
      await unanswered.close();
    }
  });

  it('a Secrets Manager endpoint that accepts and never answers fails on the request timeout, naming it', async () => {
    const silent = await silentEndpoint();
    try {
      vi.stubEnv(SECRETS_ENDPOINT, silent.endpoint);
      const error = await handler(payload, context).catch((e: Error) => e);
      expect((error as Error).message).toBe(`Secrets Manager (${silent.endpoint.replace('http://', '')}) accepted the connection but did not answer within 3 s`);
    } finally {
      await silent.close();
    }
  });

  it('a closed CloudWatch port fails the metrics once, naming the endpoint, without our retries', async () => {
    vi.stubEnv('AWS_ENDPOINT_URL', closed);
    const sink = cloudWatchSink({ namespace: 'AttemptView', retry: { sleep: async () => expect.fail('an unreachable endpoint is not retried') } });
    const error = await sink.publish([{ name: 'job_success', value: 1, unit: 'Count', dimensions: { Database: 'prod-eu', Job: 'health-check' } }]).catch((e: Error) => e);
    expect(error).toMatchObject({ kind: 'metrics' });
    expect((error as Error).message).toBe(`PutMetricData failed after 1 attempt(s) (cannot reach CloudWatch (${closed.replace('http://', '')}) (ECONNREFUSED): in private subnets, add an interface endpoint or a NAT route): 1 datum(s) not published`);
  });
});

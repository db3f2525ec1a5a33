/**
 * What a Lambda handler test needs around a real database: Secrets Manager and CloudWatch through
 * aws-sdk-client-mock (useLambdaHarness) or moto's server (useMotoLambdaHarness), the environment
 * the stack sets, a fresh container per test, and the handler's log lines captured (so they can
 * be searched for secrets) instead of printed.
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, vi } from 'vitest';
import { ENV } from '../../functions/contract/index.ts';
import { resetContainer } from '../../functions/handlers/runtime.ts';
import { motoEnvironment, type Moto } from './moto.ts';

export const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:attempt-db-AbCdEf';
export const SCHEDULED_EVENT = { source: 'aws.events', 'detail-type': 'Scheduled Event', detail: {}, time: '2026-11-25T03:00:00Z' };

export function lambdaContext(extra: Record<string, unknown> = {}): Context {
  return { getRemainingTimeInMillis: () => 60_000, functionName: 'attempt-ops-test', awsRequestId: 'req-1', ...extra } as unknown as Context;
}

/** An RDS-format secret for a database URL, with fields overridden. */
export function secretFor(url: string, overrides: Record<string, unknown> = {}): string {
  const u = new URL(url);
  return JSON.stringify({
    host: u.hostname, port: Number(u.port), username: decodeURIComponent(u.username), password: decodeURIComponent(u.password), dbname: u.pathname.slice(1),
    ...overrides,
  });
}

const mockSecrets = () => mockClient(SecretsManagerClient);
const mockCloudWatch = () => mockClient(CloudWatchClient);

export interface LambdaHarness {
  secrets: ReturnType<typeof mockSecrets>;
  cloudwatch: ReturnType<typeof mockCloudWatch>;
  /** Everything the handlers wrote to stdout and stderr in this test. */
  logged: string[];
  sentDatums(): NonNullable<PutMetricDataCommand['input']['MetricData']>;
}

/**
 * Registers the hooks. `databaseUrl` is read before each test (the database is usually made in
 * beforeAll); undefined leaves GetSecretValue unanswered for the test to set.
 */
export function useLambdaHarness(options: { databaseUrl?: () => string | undefined; env?: Record<string, string> } = {}): LambdaHarness {
  const secrets = mockSecrets();
  const cloudwatch = mockCloudWatch();
  const harness: LambdaHarness = {
    secrets,
    cloudwatch,
    logged: [],
    sentDatums: () => cloudwatch.commandCalls(PutMetricDataCommand).flatMap((c) => c.args[0].input.MetricData ?? []),
  };
  beforeEach(() => {
    resetContainer();
    secrets.reset();
    cloudwatch.reset();
    cloudwatch.on(PutMetricDataCommand).resolves({});
    const url = options.databaseUrl?.();
    if (url) secrets.on(GetSecretValueCommand).resolves({ SecretString: secretFor(url) });
    stubContainer({ AWS_REGION: 'eu-west-1', ...options.env }, harness.logged);
  });
  afterEach(endContainer);
  return harness;
}

/** The environment the stack sets, and the log lines captured into `logged`. */
function stubContainer(env: Record<string, string>, logged: string[]): void {
  vi.stubEnv(ENV.dbSecretArn, SECRET_ARN);
  vi.stubEnv(ENV.dbTls, 'disable');
  vi.stubEnv(ENV.target, 'prod-eu');
  for (const [k, v] of Object.entries(env)) vi.stubEnv(k, v);
  logged.length = 0;
  const capture = (chunk: string | Uint8Array) => {
    logged.push(String(chunk));
    return true;
  };
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
}

function endContainer(): void {
  vi.unstubAllEnvs();
  vi.restoreAllMocks();
  resetContainer();
}

/**
 * The same container, with the SDK pointed at moto's server (started by the caller, in
 * beforeAll): no mock, so the requests are real HTTP. moto forgets everything between tests;
 * `moto()` is read before each test.
 */
export function useMotoLambdaHarness(moto: () => Moto, options: { env?: Record<string, string> } = {}): { logged: string[] } {
  const harness = { logged: [] as string[] };
  beforeEach(async () => {
    resetContainer();
    await moto().reset();
    stubContainer({ ...motoEnvironment(moto().endpoint), ...options.env }, harness.logged);
  });
  afterEach(endContainer);
  return harness;
}

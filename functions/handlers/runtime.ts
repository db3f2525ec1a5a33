/**
 * What every job handler shares: configuration read once, the secret fetched once, one pool and
 * one CloudWatch client per container, payload validation before any SQL, metrics (with the
 * job_success heartbeat) after the run, and a thrown error when the job failed so that Lambda's
 * Errors metric and its alarm see it.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import type * as z from 'zod/mini';
import { describeIssues, type JobName, type ReportEnvelope } from '../contract/index.ts';
import { fromSecretString, type ConnectionSettings } from '../db/connection.ts';
import { ConfigError } from '../db/errors.ts';
import { createPool, type Pool, type SessionTimeouts } from '../db/pool.ts';
import type { JobDeps } from '../jobs/deps.ts';
import { executeJob } from '../jobs/execute.ts';
import { cloudWatchSink } from '../metrics/cloudwatch.ts';
import { noneSink, stdoutSink, type MetricSink } from '../metrics/sink.ts';
import { readLambdaConfig, type RuntimeConfig } from '../runtime/config.ts';
import { createLogger, type Logger } from '../runtime/log.ts';

let config: RuntimeConfig | undefined;
let secrets: SecretsManagerClient | undefined;
let settings: Promise<ConnectionSettings> | undefined;
let pool: Pool | undefined;

export function getConfig(): RuntimeConfig {
  config ??= readLambdaConfig();
  return config;
}

async function fetchSettings(cfg: RuntimeConfig): Promise<ConnectionSettings> {
  // Loaded on first use: the SDK's module loading stays out of the cold start's init phase.
  const { GetSecretValueCommand, SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  secrets ??= new SecretsManagerClient({});
  let secretString: string | undefined;
  try {
    const out = await secrets.send(new GetSecretValueCommand({ SecretId: cfg.secretArn }));
    secretString = out.SecretString;
  } catch (err) {
    const name = (err as { name?: string }).name ?? 'Error';
    throw new ConfigError(`cannot read secret ${cfg.secretArn} (${name})`, { cause: err });
  }
  return fromSecretString(secretString, cfg.secretArn!, cfg.tls, cfg.caFile);
}

/** The container's pool, made on first use. A failed secret fetch is retried on the next invoke. */
export async function getPool(job: JobName, log: Logger, timeouts?: Partial<SessionTimeouts>): Promise<Pool> {
  if (pool) return pool;
  const cfg = getConfig();
  settings ??= fetchSettings(cfg).catch((err) => {
    settings = undefined;
    throw err;
  });
  const s = await settings;
  pool ??= createPool(s, { job, timeouts: { ...cfg.timeouts, ...timeouts }, onError: (m) => log.warn(m) });
  return pool;
}

export function sinkFor(cfg: RuntimeConfig): MetricSink {
  if (cfg.metrics === 'cloudwatch') return cloudWatchSink({ namespace: cfg.namespace });
  if (cfg.metrics === 'stdout') return stdoutSink();
  return noneSink;
}

/** For tests: forget the container's state, as a new container would. */
export function resetContainer(): void {
  config = undefined;
  secrets = undefined;
  settings = undefined;
  const p = pool;
  pool = undefined;
  void p?.end().catch(() => undefined);
}

/** An EventBridge scheduled event means "run with the defaults". */
export function isScheduledEvent(event: unknown): boolean {
  const e = event as { source?: unknown; 'detail-type'?: unknown } | null;
  return typeof e === 'object' && e !== null && e.source === 'aws.events' && e['detail-type'] === 'Scheduled Event';
}

/** Middy middleware: replace the event with the validated payload, or reject it before any SQL. */
export function validatePayload<S extends z.ZodMiniType>(schema: S, job: string): MiddlewareObj<unknown> {
  return {
    before: (request) => {
      const raw = isScheduledEvent(request.event) || request.event === undefined || request.event === null ? {} : request.event;
      const parsed = schema.safeParse(raw);
      if (!parsed.success) throw new ConfigError(`invalid ${job} payload: ${describeIssues(parsed.error)}`);
      request.event = parsed.data;
    },
  };
}

/** Headroom kept between our own statement timeouts and the Lambda's hard stop. */
export const LAMBDA_HEADROOM_MS = 5_000;

export interface JobHandlerOptions<S extends z.ZodMiniType, R extends ReportEnvelope> {
  job: JobName;
  schema: S;
  run: (deps: JobDeps, payload: z.infer<S>) => Promise<R>;
  /** A run that publishes and changes nothing. */
  isDryRun?: (payload: z.infer<S>) => boolean;
  timeouts?: Partial<SessionTimeouts>;
}

export function createJobHandler<S extends z.ZodMiniType, R extends ReportEnvelope>(options: JobHandlerOptions<S, R>) {
  const core = async (payload: z.infer<S>, context: Context): Promise<R> => {
    const cfg = getConfig();
    const log = createLogger({ job: options.job, level: cfg.logLevel });
    const remainingMs = () => (context?.getRemainingTimeInMillis?.() ?? 900_000) - LAMBDA_HEADROOM_MS;
    const { report } = await executeJob({
      job: options.job,
      target: cfg.target,
      sink: sinkFor(cfg),
      dryRun: options.isDryRun?.(payload) ?? false,
      log,
      run: async () => {
        const p = await getPool(options.job, log, options.timeouts);
        return options.run({ pool: p, target: cfg.target, schema: cfg.schema, appRole: cfg.appRole, log, remainingMs }, payload);
      },
    });
    return report;
  };
  return middy<unknown, R>(async (event: unknown, context: Context) => core(event as z.infer<S>, context)).use(validatePayload(options.schema, options.job));
}

/**
 * What every job handler shares: configuration read once, the database secret read with a max
 * age, one pool per secret value and one CloudWatch client per container, payload validation
 * before any SQL, metrics (with the job_success heartbeat) after the run, and a thrown error when
 * the job failed so that Lambda's Errors metric and its alarm see it.
 */
import middy, { type MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import type * as z from 'zod/mini';
import { describeIssues, type JobName, type ReportEnvelope } from '../contract/index.ts';
import { fromSecretString } from '../db/connection.ts';
import { ConfigError } from '../db/errors.ts';
import { createPool, type Pool, type SessionTimeouts } from '../db/pool.ts';
import type { JobDeps } from '../jobs/deps.ts';
import { executeJob } from '../jobs/execute.ts';
import { cloudWatchSink, resetCloudWatchClient } from '../metrics/cloudwatch.ts';
import { noneSink, stdoutSink, type MetricSink } from '../metrics/sink.ts';
import { getSecretString, resetSecrets } from '../runtime/aws.ts';
import { readLambdaConfig, type RuntimeConfig } from '../runtime/config.ts';
import { createLogger, type Logger } from '../runtime/log.ts';

let config: RuntimeConfig | undefined;
/** The pool and the SecretString it was built from: a rotated secret means a new pool. */
let current: { secretString: string | undefined; pool: Pool } | undefined;

export function getConfig(): RuntimeConfig {
  config ??= readLambdaConfig();
  return config;
}

/**
 * The pool for the secret's current value. The secret is re-read once it is older than its max
 * age, or at once with forceFetch; a changed value replaces the pool (idle sessions of the old
 * one still work, new ones would not). A failed secret read is retried on the next invoke.
 */
export async function getPool(job: JobName, log: Logger, timeouts?: Partial<SessionTimeouts>, options: { forceFetch?: boolean } = {}): Promise<Pool> {
  const cfg = getConfig();
  const secretString = await getSecretString(cfg.secretArn!, options);
  if (current && current.secretString === secretString) return current.pool;
  // Validated before the old pool is dropped: a malformed new value fails this run only.
  const settings = fromSecretString(secretString, cfg.secretArn!, cfg.tls, cfg.caFile);
  const old = current?.pool;
  current = { secretString, pool: createPool(settings, { job, timeouts: { ...cfg.timeouts, ...timeouts }, onError: (m) => log.warn(m) }) };
  if (old) {
    log.info('database secret changed: new connection pool', { secret: cfg.secretArn });
    void old.end().catch(() => undefined);
  }
  return current.pool;
}

/**
 * 28P01 (invalid_password) only: the secret may have rotated since it was read. 28000 (no
 * pg_hba entry, a role without LOGIN) is not a stale password, and re-reading would not help.
 */
export function isPasswordRejected(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === '28P01') return true;
  }
  return false;
}

export function sinkFor(cfg: RuntimeConfig): MetricSink {
  if (cfg.metrics === 'cloudwatch') return cloudWatchSink({ namespace: cfg.namespace });
  if (cfg.metrics === 'stdout') return stdoutSink();
  return noneSink;
}

/** For tests: forget the container's state, as a new container would. */
export function resetContainer(): void {
  config = undefined;
  resetSecrets();
  resetCloudWatchClient();
  const p = current?.pool;
  current = undefined;
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
        const attempt = async (forceFetch: boolean) => {
          const p = await getPool(options.job, log, options.timeouts, { forceFetch });
          return options.run({ pool: p, target: cfg.target, schema: cfg.schema, appRole: cfg.appRole, log, remainingMs }, payload);
        };
        try {
          return await attempt(false);
        } catch (err) {
          if (!isPasswordRejected(err)) throw err;
          // A rotation since the secret was read: read it again, once, and rerun on a new pool.
          // A second rejection is the job's failure (a password that is really wrong).
          log.warn('the database rejected the password: reading the secret again and retrying once', { secret: cfg.secretArn });
          return attempt(true);
        }
      },
    });
    return report;
  };
  return middy<unknown, R>(async (event: unknown, context: Context) => core(event as z.infer<S>, context)).use(validatePayload(options.schema, options.job));
}

/** A command's connection, metric sink and logger, made from the global options and closed after. */
import type { JobName } from '../contract/index.ts';
import { createPool, type Pool, type SessionTimeouts } from '../db/pool.ts';
import type { JobDeps } from '../jobs/deps.ts';
import { cloudWatchSink } from '../metrics/cloudwatch.ts';
import { noneSink, stdoutSink, type MetricSink } from '../metrics/sink.ts';
import { createLogger, type Logger } from '../runtime/log.ts';
import type { CliIo } from './io.ts';
import type { GlobalOptions } from './options.ts';

export interface Session {
  deps: JobDeps;
  pool: Pool;
  sink: MetricSink;
  log: Logger;
  close(): Promise<void>;
}

export function openSession(job: JobName, g: GlobalOptions, io: CliIo, timeouts?: Partial<SessionTimeouts>): Session {
  // Logs go to stderr only with --verbose: stdout carries the report, stderr the one-line error.
  const log = createLogger({ job, level: g.verbose ? 'debug' : 'error', write: g.verbose ? (l) => io.stderr(`${l}\n`) : () => undefined });
  const pool = createPool(g.connection(), { job, timeouts, onError: (m) => log.warn(m) });
  const sink = g.metrics === 'cloudwatch' ? cloudWatchSink({ namespace: g.namespace }) : g.metrics === 'stdout' ? stdoutSink((l) => io.stdout(`${l}\n`)) : noneSink;
  return {
    deps: { pool, target: g.target, schema: g.schema, appRole: g.appRole, log },
    pool,
    sink,
    log,
    close: () => pool.end(),
  };
}

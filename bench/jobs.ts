/**
 * A job run as the Lambda runs it (executeJob: the core, then its metrics and the job_success
 * heartbeat through cloudWatchSink), against a CloudWatch client whose PutMetricData calls are
 * counted instead of sent.
 */
import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { DEFAULT_APP_ROLE, DEFAULT_NAMESPACE, type JobName, type ReportEnvelope } from '../functions/contract/index.ts';
import { fromUrl } from '../functions/db/connection.ts';
import { createPool, type Pool } from '../functions/db/pool.ts';
import type { JobDeps } from '../functions/jobs/deps.ts';
import { executeJob } from '../functions/jobs/execute.ts';
import { MAX_BYTES_PER_CALL, MAX_DATUMS_PER_CALL, cloudWatchSink } from '../functions/metrics/cloudwatch.ts';
import type { Logger } from '../functions/runtime/log.ts';
import { meterPool, type Meter } from './meter.ts';

export const BENCH_TARGET = 'bench';

export interface PutMetricDataCount {
  calls: number;
  datums: number;
  /** The fewest calls the API's limits allow for these datums: 1,000 per call and 1 MB per payload. */
  fewest: number;
}

export interface CountingCloudWatch {
  client: CloudWatchClient;
  /** What was sent since the last call of take(). */
  take(): PutMetricDataCount;
}

export function countingCloudWatch(): CountingCloudWatch {
  const client = new CloudWatchClient({ region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' } });
  const mock = mockClient(client);
  mock.on(PutMetricDataCommand).resolves({});
  let seen = 0;
  return {
    client,
    take() {
      const calls = mock.commandCalls(PutMetricDataCommand).slice(seen);
      seen += calls.length;
      const batches = calls.map((c) => c.args[0].input.MetricData ?? []);
      const datums = batches.reduce((n, b) => n + b.length, 0);
      const bytes = batches.reduce((n, b) => n + b.reduce((m, d) => m + JSON.stringify(d).length, 0), 0);
      const fewest = datums === 0 ? 0 : Math.max(Math.ceil(datums / MAX_DATUMS_PER_CALL), Math.ceil(bytes / MAX_BYTES_PER_CALL));
      return { calls: calls.length, datums, fewest };
    },
  };
}

/** A pool as the Lambda makes it, with its statements metered, and deps for the jobs. */
export interface MeteredDeps {
  pool: Pool;
  meter: Meter;
  deps: JobDeps;
}

/** The refresh and a full-scope check run far longer than the Lambda defaults allow a statement. */
const LONG_MS = 30 * 60_000;

export function meteredDeps(url: string, job: string, log?: Logger): MeteredDeps {
  const pool = createPool(fromUrl(url, 'bench database'), { job, timeouts: { statementTimeoutMs: LONG_MS } });
  const meter = meterPool(pool);
  return { pool, meter, deps: { pool, target: BENCH_TARGET, schema: 'public', appRole: DEFAULT_APP_ROLE, ...(log ? { log } : {}) } };
}

export interface JobRun<R> {
  report: R;
  wallMs: number;
  /** Client-side database time: the run's statements, summed. */
  dbMs: number;
  statements: number;
  published: PutMetricDataCount;
}

export async function runJob<R extends ReportEnvelope>(
  job: JobName, m: MeteredDeps, cw: CountingCloudWatch, run: (deps: JobDeps) => Promise<R>, log: Logger,
): Promise<JobRun<R>> {
  cw.take();
  m.meter.reset();
  const sink = cloudWatchSink({ namespace: DEFAULT_NAMESPACE, client: cw.client });
  const started = performance.now();
  const { report } = await executeJob({ job, target: BENCH_TARGET, sink, dryRun: false, log, run: () => run(m.deps) });
  const wallMs = performance.now() - started;
  return { report, wallMs, dbMs: m.meter.totalMs, statements: m.meter.statements, published: cw.take() };
}

/** A plain session for the runbook's queries and the data changes: no timeouts, nothing metered. */
export async function adminClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url, application_name: 'attempt-ops/bench' });
  // An idle session ended by the server (Ctrl-C stops it too) emits 'error'; unheard, that kills
  // the process before it can clean up. A query in flight still rejects, and that is what we report.
  client.on('error', () => undefined);
  await client.connect();
  return client;
}

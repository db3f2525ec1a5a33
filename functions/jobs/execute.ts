/**
 * One run of a job as Lambda and the CLI both do it: run the core, log the report, publish its
 * metrics and the job_success heartbeat (1, or 0 before rethrowing a failure). A dry run
 * publishes nothing.
 */
import { jobSuccessDatum, type JobName, type MetricDatum, type ReportEnvelope } from '../contract/index.ts';
import { AttemptOpsError, oneLine } from '../db/errors.ts';
import type { MetricSink, PublishResult } from '../metrics/sink.ts';
import type { Logger } from '../runtime/log.ts';

export interface ExecuteOptions<R extends ReportEnvelope> {
  job: JobName;
  target: string;
  sink: MetricSink;
  dryRun: boolean;
  log: Logger;
  run: () => Promise<R>;
}

export interface Executed<R> {
  report: R;
  published: PublishResult;
}

export async function executeJob<R extends ReportEnvelope>(o: ExecuteOptions<R>): Promise<Executed<R>> {
  const publish = async (data: MetricDatum[]): Promise<PublishResult> => (o.dryRun ? { calls: 0, datums: 0 } : o.sink.publish(data));
  let report: R;
  try {
    report = await o.run();
  } catch (err) {
    const e = err instanceof AttemptOpsError ? err : new AttemptOpsError('job', oneLine(err), { cause: err });
    o.log.error('job failed', { error: e.message, kind: e.kind });
    // If even the heartbeat cannot be sent, the original error is still what the caller sees.
    await publish([jobSuccessDatum(o.job, false, o.target)]).catch((pubErr) => o.log.error('could not publish job_success 0', { error: oneLine(pubErr) }));
    throw e;
  }
  // Logged before publishing, so a PutMetricData failure never loses the report.
  o.log.info('job finished', { status: report.status, durationMs: report.durationMs, report });
  const published = await publish([...report.metrics, jobSuccessDatum(o.job, true, o.target)]);
  return { report, published };
}

/**
 * e. PutMetricData calls per job run. The health check and the refresh were counted while a. and
 * b. timed them; the jobs left are run once here, each as its schedule (or the deploy) runs it.
 */
import type { JobName } from '../functions/contract/index.ts';
import { runAnalyze } from '../functions/jobs/analyze.ts';
import { runBootstrap } from '../functions/jobs/bootstrap.ts';
import { runPublishMetrics } from '../functions/jobs/publish-metrics.ts';
import type { Logger } from '../functions/runtime/log.ts';
import type { HealthFigures } from './health.ts';
import { runJob, type CountingCloudWatch, type MeteredDeps, type PutMetricDataCount } from './jobs.ts';
import type { RefreshFigures } from './refresh.ts';
import { round1 } from './stats.ts';

export interface PublishFigures {
  job: JobName;
  /** Which run: its payload as the schedule sends it. */
  run: string;
  published: PutMetricDataCount;
  /** The run's own status: a run that went wrong still publishes, and that is worth seeing. */
  status: string;
  /** Wall time of that run (ms), for scale; a. and b. have the medians. */
  wallMs: number | null;
}

export async function measurePublishing(
  health: HealthFigures, refresh: RefreshFigures, m: MeteredDeps, cw: CountingCloudWatch, log: Logger,
): Promise<PublishFigures[]> {
  const out: PublishFigures[] = [
    { job: 'health-check', run: '{"scope":"incremental"} (hourly)', published: health.incremental.published, status: health.incremental.status, wallMs: health.incremental.wallMs.median },
    { job: 'health-check', run: '{"scope":"full"} (daily)', published: health.full.published, status: health.full.status, wallMs: health.full.wallMs.median },
  ];
  for (const r of refresh.modes) {
    if (!r.published) continue;
    out.push({ job: 'refresh-mv', run: `{"mode":"${r.mode}"}${r.mode === 'concurrent' ? ' (hourly)' : ''}`, published: r.published, status: r.status ?? 'ok', wallMs: r.wallMs?.median ?? null });
  }
  const once = async (job: JobName, run: string, fn: Parameters<typeof runJob>[3]) => {
    const r = await runJob(job, m, cw, fn, log);
    out.push({ job, run, published: r.published, status: r.report.status, wallMs: round1(r.wallMs) });
  };
  await once('publish-metrics', '{} (every minute)', (deps) => runPublishMetrics(deps));
  await once('analyze', '{} (daily)', (deps) => runAnalyze(deps));
  await once('bootstrap', '{"apply":true} (deploy)', (deps) => runBootstrap(deps, { apply: true }));
  return out;
}

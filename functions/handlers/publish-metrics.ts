/** Lambda entry point: EventBridge every minute, and manual invokes. */
import { publishMetricsPayload } from '../contract/index.ts';
import { runPublishMetrics } from '../jobs/publish-metrics.ts';
import { createJobHandler } from './runtime.ts';

export const handler = createJobHandler({
  job: 'publish-metrics',
  schema: publishMetricsPayload,
  isDryRun: (p) => p.dryRun === true,
  run: (deps, p) => runPublishMetrics(deps, { dryRun: p.dryRun }),
});

/** Lambda entry point: EventBridge (hourly incremental, daily full) and manual invokes. */
import { healthCheckPayload } from '../contract/index.ts';
import { runHealthCheck } from '../jobs/health-check.ts';
import { createJobHandler } from './runtime.ts';

export const handler = createJobHandler({
  job: 'health-check',
  schema: healthCheckPayload,
  isDryRun: (p) => p.dryRun === true,
  run: (deps, p) => runHealthCheck(deps, { checks: p.checks, scope: p.scope, dryRun: p.dryRun, concurrency: 2 }),
});

/** Lambda entry point: EventBridge (hourly, defaults) and manual invokes. */
import { refreshPayload } from '../contract/index.ts';
import { runRefresh } from '../jobs/refresh-mv.ts';
import { createJobHandler } from './runtime.ts';

export const handler = createJobHandler({
  job: 'refresh-mv',
  schema: refreshPayload,
  isDryRun: (p) => p.dryRun === true,
  // The refresh caps its statement_timeout by deps.remainingMs, the invocation's time left.
  run: (deps, p) => runRefresh(deps, { mode: p.mode, dryRun: p.dryRun }),
});

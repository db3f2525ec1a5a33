/** Lambda entry point: EventBridge (daily, defaults) and manual invokes. */
import { analyzePayload } from '../contract/index.ts';
import { runAnalyze } from '../jobs/analyze.ts';
import { createJobHandler } from './runtime.ts';

export const handler = createJobHandler({
  job: 'analyze',
  schema: analyzePayload,
  isDryRun: (p) => p.dryRun === true,
  run: (deps, p) => runAnalyze(deps, { tables: p.tables, force: p.force, dryRun: p.dryRun }),
});

/**
 * Lambda entry point: the stack invokes it with {"apply": true} at deploy. Like the command line,
 * it only reports unless told to apply; a report-only run publishes nothing.
 */
import { bootstrapPayload } from '../contract/index.ts';
import { runBootstrap } from '../jobs/bootstrap.ts';
import { createJobHandler, getConfig } from './runtime.ts';

export const handler = createJobHandler({
  job: 'bootstrap',
  schema: bootstrapPayload,
  isDryRun: (p) => p.apply !== true,
  run: (deps, p) => runBootstrap(deps, { apply: p.apply === true, capture: getConfig().capture }),
});

import { CHECK_SPECS } from '../contract/index.ts';
import type { HealthCheck } from './types.ts';

/** Runbook section 1: the view is gone (a DROP, a rollback), and every consumer fails. */
export const viewExists: HealthCheck = {
  spec: CHECK_SPECS.view_exists,
  async measure({ schema, facts }) {
    if (facts.attemptKind === 'v') return { value: 1, message: `view ${schema}.attempt exists` };
    if (facts.attemptKind === null) return { value: 0, message: `view ${schema}.attempt does not exist` };
    return { value: 0, message: `${schema}.attempt exists but is not a view (relkind ${facts.attemptKind})` };
  },
};

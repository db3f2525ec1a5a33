/** Every health check, in report order. Adding a check is adding its file and a line here. */
import type { CheckName } from '../contract/index.ts';
import { attemptNoTies } from './attempt-no-ties.ts';
import { blocking } from './blocking.ts';
import { capture } from './capture.ts';
import { connections } from './connections.ts';
import { duplicateIds } from './duplicate-ids.ts';
import { freshness } from './freshness.ts';
import { idleInTransaction } from './idle-in-transaction.ts';
import { longRunning } from './long-running.ts';
import { mvFidelity } from './mv-fidelity.ts';
import { mvStaleness } from './mv-staleness.ts';
import { orphanResults } from './orphan-results.ts';
import { permissions } from './permissions.ts';
import { queryLatency } from './query-latency.ts';
import { requiredNulls } from './required-nulls.ts';
import { tableStats } from './table-stats.ts';
import type { HealthCheck } from './types.ts';
import { viewExists } from './view-exists.ts';
import { viewQueryable } from './view-queryable.ts';
import { viewSchema } from './view-schema.ts';

export const CATALOG: Record<CheckName, HealthCheck> = {
  view_exists: viewExists,
  view_schema: viewSchema,
  view_queryable: viewQueryable,
  permissions,
  required_nulls: requiredNulls,
  orphan_results: orphanResults,
  duplicate_ids: duplicateIds,
  freshness,
  table_stats: tableStats,
  blocking,
  idle_in_transaction: idleInTransaction,
  long_running: longRunning,
  connections,
  query_latency: queryLatency,
  mv_staleness: mvStaleness,
  capture,
  mv_fidelity: mvFidelity,
  attempt_no_ties: attemptNoTies,
};

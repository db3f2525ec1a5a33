import { CHECK_SPECS } from '../contract/index.ts';
import { JOB_RUNS } from '../sql/ops-schema.ts';
import { formatAge } from './freshness.ts';
import type { HealthCheck } from './types.ts';

/** attempt_mv is only as good as its last refresh, which refresh-mv records in the audit table. */
export const mvStaleness: HealthCheck = {
  spec: CHECK_SPECS.mv_staleness,
  async measure({ db, schema, now, facts }) {
    if (!facts.attemptMv.exists) return { value: null, status: 'skipped', message: `${schema}.attempt_mv does not exist` };
    if (!facts.attemptMv.populated) {
      return { value: null, status: 'warning', message: `${schema}.attempt_mv has never been populated: run attempt-ops refresh` };
    }
    if (!facts.hasJobRuns) {
      return { value: null, status: 'warning', message: 'no refresh audit table (attempt_ops.job_runs): run attempt-ops bootstrap --apply' };
    }
    const { rows } = await db.query<{ last: Date | null }>(
      `SELECT max(finished_at) AS last FROM ${JOB_RUNS} WHERE job = 'refresh-mv' AND outcome = 'success'`,
    );
    const last = rows[0]?.last;
    if (!last) return { value: null, status: 'warning', message: 'no successful refresh of attempt_mv is recorded' };
    const age = Math.max(0, Math.round((now.getTime() - last.getTime()) / 1000));
    return { value: age, message: `attempt_mv last refreshed ${formatAge(age)} ago (${last.toISOString()})`, details: [{ lastRefresh: last.toISOString() }] };
  },
};

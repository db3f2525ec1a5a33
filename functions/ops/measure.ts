/**
 * The diagnosis reuses the health checks' own queries and judgement inside its single read-only
 * transaction, so a finding and the check that paged agree on what is wrong.
 */
import { loadFacts } from '../checks/facts.ts';
import type { CheckContext, DatabaseFacts, HealthCheck, Measurement } from '../checks/types.ts';
import { judge, type Status } from '../contract/index.ts';
import { classifyDbError } from '../db/errors.ts';
import type { PoolClient } from '../db/pool.ts';

export interface Judged {
  status: Exclude<Status, 'skipped'>;
  value: number | null;
  message: string;
  details: unknown[];
  /** Data-quality checks: what each raw student adds to the value (the open findings' rows). */
  found?: Measurement['found'];
}

/** What loadFacts learns, read on the transaction's own client. */
export const readFacts = (db: PoolClient, schema: string): Promise<DatabaseFacts> => loadFacts(db, schema);

/**
 * One check's measurement and verdict, as the health-check job would judge it. A savepoint keeps
 * a failing check from aborting the rest of the diagnosis; a skipped check has nothing wrong.
 */
export async function judgeIn(db: PoolClient, check: HealthCheck, ctx: Omit<CheckContext, 'db'>): Promise<Judged> {
  await db.query('SAVEPOINT judge_check');
  try {
    const m = await check.measure({ ...ctx, db });
    await db.query('RELEASE SAVEPOINT judge_check');
    const status: Status = m.status ?? (m.value === null ? 'unknown' : judge(check.spec, m.value));
    return { status: status === 'skipped' ? 'ok' : status, value: m.value, message: m.message, details: m.details ?? [], ...(m.found ? { found: m.found } : {}) };
  } catch (err) {
    await db.query('ROLLBACK TO SAVEPOINT judge_check');
    const e = classifyDbError(err, check.spec.name);
    return { status: 'unknown', value: null, message: e.message, details: [{ error: e.kind }] };
  }
}

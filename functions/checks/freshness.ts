import { CHECK_SPECS, datum } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import { RAW, safeQuestionIdSql } from './source-sql.ts';
import type { HealthCheck } from './types.ts';

/**
 * No new result for a day usually means an ingest is broken upstream. The newest completed_at
 * comes through the completed_at index; the row count is exact in full scope and the planner's
 * estimate in incremental scope, where a count would read the whole table every hour.
 */
export const freshness: HealthCheck = {
  spec: CHECK_SPECS.freshness,
  async measure({ db, schema, scope, now, target, facts }) {
    const table = qualified(schema, 'exam_results');
    const latest = await db.query<{ latest: Date | null }>(
      `SELECT er.completed_at AS latest FROM ${table} er
        WHERE ${RAW.questionId} IS NOT NULL ORDER BY er.completed_at DESC LIMIT 1`,
    );
    let rowCount: number | null;
    let countKind: 'exact' | 'estimate';
    if (scope === 'full') {
      const c = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${table} er JOIN ${qualified(schema, 'questions')} q ON q.id = ${safeQuestionIdSql(facts.serverVersion)}
          WHERE ${RAW.questionId} IS NOT NULL`,
      );
      rowCount = Number(c.rows[0]?.n ?? 0);
      countKind = 'exact';
    } else {
      const c = await db.query<{ n: number }>(`SELECT reltuples AS n FROM pg_class WHERE oid = $1::regclass`, [table]);
      const n = Number(c.rows[0]?.n ?? -1);
      rowCount = n < 0 ? null : Math.round(n);
      countKind = 'estimate';
    }
    const metrics = rowCount === null ? [] : [datum('attempt_row_count', rowCount, target)];
    const details: unknown[] = [{ rowCount, rowCountKind: countKind }];
    const at = latest.rows[0]?.latest;
    if (!at) return { value: null, status: 'warning', message: 'no results at all in exam_results', metrics, details };
    const age = Math.max(0, Math.round((now.getTime() - at.getTime()) / 1000));
    details.push({ latestCompletedAt: at.toISOString() });
    return { value: age, message: `latest result completed ${formatAge(age)} ago (${at.toISOString()})`, metrics, details };
  },
};

export function formatAge(seconds: number): string {
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

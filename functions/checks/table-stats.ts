import { CHECK_SPECS, DIMENSION_TABLE, THRESHOLDS, datum } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import type { HealthCheck } from './types.ts';

type TableRow = {
  table: string;
  live: string;
  dead: string;
  modified: string;
  last_analyze: Date | null;
  age_hours: number;
};

/**
 * Runbook section 3: stale statistics (no analyze for 7 days, or more than 20 % of the rows
 * modified since the last one) and bloat (over 10 % dead tuples) make the planner pick the
 * sequential scans behind slow queries. The value is how many tables fail.
 *
 * The modified ratio is n_mod_since_analyze over the live rows, but over at least
 * THRESHOLDS.modifiedRatioMinRows (1000) of them, as autovacuum's analyze_threshold keeps a tiny
 * table from being analyzed for a handful of rows: a table of 24 rows warns past 200 changed
 * rows, not at 5. table_modified_ratio carries that same ratio, so its alarm (> 20 %) and the
 * check agree.
 */
export function modifiedRatio(modified: number, live: number): number {
  return modified / Math.max(live, THRESHOLDS.modifiedRatioMinRows);
}

/**
 * dead / (live + dead), over at least THRESHOLDS.modifiedRatioMinRows tuples, as autovacuum's
 * vacuum_threshold keeps a tiny table from being vacuumed for a few dead rows: a copy of 24 rows
 * refreshed CONCURRENTLY a few times is not bloat worth a page.
 */
export function deadTupleRatio(dead: number, live: number): number {
  return live + dead === 0 ? 0 : dead / Math.max(live + dead, THRESHOLDS.modifiedRatioMinRows);
}

export const tableStats: HealthCheck = {
  spec: CHECK_SPECS.table_stats,
  async measure({ db, schema, target, facts }) {
    const tables = ['exam_results', 'questions'];
    if (facts.attemptMv.exists) tables.push('attempt_mv');
    const { rows } = await db.query<TableRow>(
      `SELECT s.relname AS table, s.n_live_tup AS live, s.n_dead_tup AS dead, s.n_mod_since_analyze AS modified,
              greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
              -- Never analyzed: the age is at least the time since statistics began (a lower bound).
              extract(epoch FROM now() - coalesce(greatest(s.last_analyze, s.last_autoanalyze),
                (SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()), pg_postmaster_start_time())) / 3600 AS age_hours
         FROM pg_stat_user_tables s
        WHERE s.relid = ANY (SELECT to_regclass(t) FROM unnest($1::text[]) t)`,
      [tables.map((t) => qualified(schema, t))],
    );
    const metrics = [];
    const details = [];
    const failing: string[] = [];
    for (const r of rows) {
      const live = Number(r.live);
      const dead = Number(r.dead);
      const ratio = deadTupleRatio(dead, live);
      const neverAnalyzed = r.last_analyze === null;
      // An empty table that was never analyzed has nothing for the planner to misjudge: its age
      // is 0, not the time since statistics began, or a copy just created on a database whose
      // statistics began a week ago would page "stale statistics" (the metric is what the alarm sees).
      const empty = live + dead + Number(r.modified) === 0;
      const ageHours = neverAnalyzed && empty ? 0 : Number(Number(r.age_hours).toFixed(2));
      const stale = neverAnalyzed ? !empty : ageHours > THRESHOLDS.statsAgeHours;
      const bloated = ratio > THRESHOLDS.deadTupleRatio;
      const modified = Number(r.modified);
      const modRatio = Number(modifiedRatio(modified, live).toFixed(4));
      // A never-analyzed table is already stale; the ratio speaks of changes since an analyze.
      const analyzeDue = !neverAnalyzed && modRatio > THRESHOLDS.modifiedRatio;
      const reasons = [
        stale ? (neverAnalyzed ? 'never analyzed' : `analyzed ${ageHours} h ago`) : '',
        analyzeDue ? `${(modRatio * 100).toFixed(1)} % of its rows modified since the last analyze (${modified} of ${live})` : '',
        bloated ? `${(ratio * 100).toFixed(1)} % dead tuples` : '',
      ].filter(Boolean);
      if (reasons.length > 0) failing.push(`${r.table} (${reasons.join(', ')})`);
      metrics.push(datum('table_stats_age_hours', ageHours, target, { [DIMENSION_TABLE]: r.table }));
      metrics.push(datum('table_modified_ratio', modRatio, target, { [DIMENSION_TABLE]: r.table }));
      metrics.push(datum('table_dead_tuple_ratio', Number(ratio.toFixed(4)), target, { [DIMENSION_TABLE]: r.table }));
      details.push({
        table: r.table, lastAnalyze: r.last_analyze?.toISOString() ?? null, ageHours, liveTuples: live, deadTuples: dead,
        deadTupleRatio: Number(ratio.toFixed(4)), modifiedSinceAnalyze: modified, modifiedRatio: modRatio, stale, analyzeDue, bloated,
      });
    }
    const value = failing.length;
    const message = value === 0
      ? `statistics fresh, under 20 % modified since the last analyze and dead tuples under 10 % on ${rows.map((r) => r.table).join(', ')}`
      : `stale statistics or bloat: ${failing.join('; ')}`;
    return { value, threshold: 0, message, details, metrics, emitValue: false, status: value === 0 ? 'ok' : 'warning' };
  },
};

import { CHECK_SPECS, THRESHOLDS } from '../contract/index.ts';
import { classifyDbError } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import { STUDENT_UUID_SQL } from './source-sql.ts';
import type { HealthCheck } from './types.ts';

/** Runbook section 3's diagnosis query: one student's last 30 days. */
export function section3QuerySql(relation: string): string {
  return `SELECT * FROM ${relation} WHERE student_id = $1 AND completed_at >= CURRENT_DATE - INTERVAL '30 days'`;
}

/** Each probe may run this long; a probe that hits it is over the critical threshold by definition. */
export const LATENCY_TIMEOUT_MS = THRESHOLDS.latencyCriticalMs + 500;

/** Matches no student: the probe's cost is the query path, not the rows it returns. */
const NO_STUDENT = '00000000-0000-0000-0000-000000000000';

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[rank - 1] ?? 0;
}

/**
 * Times section 3's query for a few recently active students. On attempt_mv when it is populated
 * (what the readers use once it exists); on the view otherwise, where one probe can take seconds
 * at scale, so there is a single probe, cut off just past the critical threshold.
 */
export const queryLatency: HealthCheck = {
  spec: CHECK_SPECS.query_latency,
  timeoutMs: LATENCY_TIMEOUT_MS,
  // A reader stuck behind a lock is a slow reader: the statement timeout, not the lock timeout,
  // ends the wait, and the wait counts as latency.
  lockTimeoutMs: LATENCY_TIMEOUT_MS + 1_000,
  async measure({ db, schema, facts, settings }) {
    const onMv = facts.attemptMv.exists && facts.attemptMv.populated;
    if (!onMv && facts.attemptKind === null) return { value: null, status: 'skipped', message: 'neither attempt nor attempt_mv exists' };
    const relation = qualified(schema, onMv ? 'attempt_mv' : 'attempt');
    // Recently active students, read through the completed_at index: no scan of the table.
    // Picking students must not itself wait behind a lock: that wait belongs to the probe, which
    // then measures it with a student that matches nothing (the path costs the same).
    let sampled: string[] = [];
    // SET LOCAL outlives RELEASE SAVEPOINT (only a rollback to it undoes it): the probe's own lock
    // timeout is put back by hand, or a reader stuck behind a lock on attempt_mv would end in
    // 200 ms as "lock timeout" instead of counting as the slow reader it is.
    const { rows: lockTimeout } = await db.query<{ v: string }>(`SELECT current_setting('lock_timeout') AS v`);
    await db.query('SAVEPOINT pick_students');
    try {
      await db.query('SET LOCAL lock_timeout = 200');
      const sample = await db.query<{ student_id: string }>(
        `SELECT DISTINCT student_id FROM (
           SELECT ${STUDENT_UUID_SQL} AS student_id FROM ${qualified(schema, 'exam_results')} er
            WHERE er.student_id IS NOT NULL ORDER BY er.completed_at DESC LIMIT 200) s
          LIMIT 50`,
      );
      sampled = sample.rows.map((r) => r.student_id);
      await db.query('RELEASE SAVEPOINT pick_students');
      await db.query(`SELECT set_config('lock_timeout', $1, true)`, [lockTimeout[0]!.v]);
    } catch (err) {
      await db.query('ROLLBACK TO SAVEPOINT pick_students');
      const e = classifyDbError(err, 'latency probe');
      if (e.kind !== 'lock-timeout') throw e;
      sampled = [NO_STUDENT];
    }
    const students = sampled;
    if (students.length === 0) return { value: null, status: 'skipped', message: 'no student to sample' };
    const probes = onMv ? Math.min(settings.latencySamples, students.length) : 1;
    const picked = Array.from({ length: probes }, (_, i) => students[Math.floor((i * students.length) / probes)] as string);
    const timings: number[] = [];
    let timedOut = false;
    for (const student of picked) {
      const started = performance.now();
      try {
        await db.query(section3QuerySql(relation), [student]);
        timings.push(performance.now() - started);
      } catch (err) {
        const e = classifyDbError(err, 'latency probe');
        if (e.kind !== 'timeout') throw e;
        // A timeout is over the threshold: it counts as what it waited, and the transaction is spent.
        timings.push(performance.now() - started);
        timedOut = true;
        break;
      }
    }
    const p99 = Math.round(percentile(timings, 99));
    const on = onMv ? 'attempt_mv' : 'attempt (the view; attempt_mv is absent or unpopulated)';
    const details = [{ relation: onMv ? 'attempt_mv' : 'attempt', probes: timings.length, timingsMs: timings.map((t) => Math.round(t * 10) / 10), timedOut }];
    const message = `${timedOut ? 'timed out: ' : ''}p99 ${p99} ms over ${timings.length} probe(s) on ${on}`;
    if (p99 > THRESHOLDS.latencyCriticalMs) return { value: p99, status: 'critical', message, details };
    if (p99 > THRESHOLDS.latencyWarningMs) {
      return { value: p99, status: 'warning', message: `${message}, over twice the ${THRESHOLDS.latencyBaselineMs} ms baseline`, details };
    }
    return { value: p99, status: 'ok', message, details };
  },
};

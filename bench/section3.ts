/**
 * c. Runbook section 3's per-student query (the one the latency check probes) on the view, where
 * the window function keeps every index out and one query costs seconds, and on attempt_mv.
 */
import type pg from 'pg';
import { section3QuerySql } from '../functions/checks/query-latency.ts';
import { qualified } from '../functions/db/identifiers.ts';
import { median, percentile, ratio, round1, round2 } from './stats.ts';

export interface LatencyFigures {
  relation: 'attempt' | 'attempt_mv';
  probes: number;
  /** Passes over the same students; p50, p99 and max are the medians of the passes' own. */
  passes: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Rows returned per probe, on average: the probes asked for real students. */
  meanRows: number;
}

export interface Section3Figures {
  view: LatencyFigures;
  mv: LatencyFigures;
  /** p50 on the view over p50 on attempt_mv. */
  speedup: number | null;
}

export interface Section3Options {
  /** Students probed on attempt_mv. */
  mvProbes: number;
  /** Passes over them: one p99 of 200 is one bad moment of a busy machine away from another. */
  mvPasses: number;
  /** Students probed on the view: each takes seconds at scale. */
  viewProbes: number;
}

/** Students spread over the whole population, the same for every run of the same size. */
export async function sampleStudents(admin: pg.Client, n: number): Promise<string[]> {
  const { rows } = await admin.query<{ student_id: string }>(
    `SELECT student_id FROM (SELECT DISTINCT student_id FROM attempt_mv) s ORDER BY md5(student_id::text) LIMIT $1`,
    [n],
  );
  return rows.map((r) => r.student_id);
}

async function probe(admin: pg.Client, relation: 'attempt' | 'attempt_mv', students: readonly string[], passes: number): Promise<LatencyFigures> {
  const sql = section3QuerySql(qualified('public', relation));
  const p50: number[] = [];
  const p99: number[] = [];
  const max: number[] = [];
  let rows = 0;
  for (let pass = 0; pass < passes; pass++) {
    const timings: number[] = [];
    for (const student of students) {
      const started = performance.now();
      // An unnamed statement, parsed and planned every time, as the application sends it.
      const r = await admin.query(sql, [student]);
      timings.push(performance.now() - started);
      rows += r.rowCount ?? 0;
    }
    p50.push(percentile(timings, 50));
    p99.push(percentile(timings, 99));
    max.push(Math.max(...timings));
  }
  return {
    relation,
    probes: students.length,
    passes,
    p50Ms: round2(median(p50)),
    p99Ms: round2(median(p99)),
    maxMs: round2(median(max)),
    meanRows: round1(rows / Math.max(1, students.length * passes)),
  };
}

const WARM_UP = 10;

export async function measureSection3(admin: pg.Client, o: Section3Options): Promise<Section3Figures> {
  const students = await sampleStudents(admin, Math.max(o.mvProbes, o.viewProbes));
  if (students.length === 0) throw new Error('attempt_mv has no student to probe: is it populated?');
  // Untimed first queries: the index's upper pages and this process's query path get warm, as
  // they are in an application that has been serving for a while.
  for (const student of students.slice(0, WARM_UP)) await admin.query(section3QuerySql(qualified('public', 'attempt_mv')), [student]);
  const mv = await probe(admin, 'attempt_mv', students.slice(0, o.mvProbes), o.mvPasses);
  const view = await probe(admin, 'attempt', students.slice(0, o.viewProbes), 1);
  return { view, mv, speedup: ratio(view.p50Ms, mv.p50Ms) };
}

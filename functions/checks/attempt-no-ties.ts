import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import { scopePhrase, sourceRowsSql } from './source-sql.ts';
import type { HealthCheck } from './types.ts';
import { MAX_FOUND_STUDENTS } from '../sql/findings.ts';

/** How many tie groups the details show. */
const SAMPLE_SIZE = 10;

export interface TieSample {
  /** exam_results.student_id as stored: the view partitions by the raw text (NULL is one partition). */
  student_id: string | null;
  item_id: number;
  /** UTC, to the microsecond: the tie is exact equality of completed_at. */
  completed_at: string;
  exam_result_ids: string[];
}

/**
 * Runbook section 5, a root cause it does not name: the view numbers attempts with
 * `ROW_NUMBER() OVER (PARTITION BY student_id, q.item_id ORDER BY er.completed_at)`, where
 * student_id is the raw exam_results column. Rows of one (raw student, item) that share a
 * completed_at (two questions of one item answered in one exam) get their attempt_no in no fixed
 * order, so it can swap between evaluations and the ETL sees duplicate
 * (student_id, item_id, attempt_no) tuples across runs. The value is the number of such pairs.
 */
export const attemptNoTies: HealthCheck = {
  spec: CHECK_SPECS.attempt_no_ties,
  async measure({ db, schema, since, changes, alsoStudents, scopeFallback, facts }) {
    const src = sourceRowsSql({ schema, since, changes, alsoStudents, serverVersion: facts.serverVersion });
    const { rows } = await db.query<{ pairs: string; tie_groups: string; tied_rows: string; sample: TieSample[] | null; found: [string | null, number][] | null }>(
      `WITH s AS (${src.sql}),
       ties AS (
         SELECT s.student_id, q.item_id, s.completed_at, count(*) AS n,
                array_agg(s.id::text ORDER BY s.id) AS exam_result_ids
           FROM s JOIN ${qualified(schema, 'questions')} q ON q.id = s.safe_qid
          GROUP BY s.student_id, q.item_id, s.completed_at HAVING count(*) > 1),
       sample AS (
         SELECT student_id, item_id, completed_at, exam_result_ids FROM ties
          ORDER BY completed_at DESC, item_id, student_id NULLS FIRST LIMIT ${SAMPLE_SIZE})
       SELECT (SELECT count(*) FROM (SELECT 1 FROM ties GROUP BY student_id, item_id) p) AS pairs,
              (SELECT count(*) FROM ties) AS tie_groups,
              (SELECT coalesce(sum(n), 0) FROM ties) AS tied_rows,
              (SELECT json_agg(json_build_object(
                        'student_id', student_id, 'item_id', item_id,
                        'completed_at', to_char(completed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                        'exam_result_ids', exam_result_ids)
                      ORDER BY completed_at DESC, item_id, student_id NULLS FIRST)
                 FROM sample) AS sample,
              (SELECT json_agg(json_build_array(f.student_id, f.n)) FROM (
                 SELECT student_id, count(DISTINCT item_id) AS n FROM ties GROUP BY student_id LIMIT ${MAX_FOUND_STUDENTS}) f) AS found`,
      src.params,
    );
    const r = rows[0];
    const value = Number(r?.pairs ?? 0);
    const found = r?.found ?? [];
    const tieGroups = Number(r?.tie_groups ?? 0);
    const tiedRows = Number(r?.tied_rows ?? 0);
    const where = scopePhrase(since, changes, scopeFallback);
    const details: unknown[] = [{ kind: 'attempt_no_ties', pairs: value, tieGroups, tiedRows }];
    if (value === 0) return { value, message: `attempt_no is determined by completed_at ${where}`, details, found };
    details.push({ sample: r?.sample ?? [] });
    return {
      value,
      message: `${value} (student, item) pair(s) ${where} have rows sharing a completed_at (${tiedRows} tied row(s) in ${tieGroups} group(s)): their attempt_no is in no fixed order`,
      details,
      found,
    };
  },
};

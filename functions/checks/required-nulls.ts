import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import { scopePhrase, sourceRowsSql } from './source-sql.ts';
import type { HealthCheck } from './types.ts';
import { MAX_FOUND_STUDENTS } from '../sql/findings.ts';

/**
 * Runbook section 4: NULLs in id, student_id, item_id, question_id or is_correct break the IRT
 * calibration. Computed from the view's own expressions on the joined base tables.
 */
export const requiredNulls: HealthCheck = {
  spec: CHECK_SPECS.required_nulls,
  async measure({ db, schema, since, changes, alsoStudents, scopeFallback, facts }) {
    const src = sourceRowsSql({ schema, since, changes, alsoStudents, serverVersion: facts.serverVersion });
    const { rows } = await db.query<Record<string, string | string[] | null>>(
      `WITH v AS (
         SELECT s.id AS exam_result_id, s.student_id AS raw_student, (s.id IS NULL OR q.item_id IS NULL) AS null_id, s.student_id IS NULL AS null_student_id,
                q.item_id IS NULL AS null_item_id, q.id IS NULL AS null_question_id
           FROM (${src.sql}) s JOIN ${qualified(schema, 'questions')} q ON q.id = s.safe_qid)
       SELECT count(*) FILTER (WHERE null_id) AS id, count(*) FILTER (WHERE null_student_id) AS student_id,
              count(*) FILTER (WHERE null_item_id) AS item_id, count(*) FILTER (WHERE null_question_id) AS question_id,
              count(*) FILTER (WHERE null_id OR null_student_id OR null_item_id OR null_question_id) AS any_null,
              (array_agg(exam_result_id ORDER BY exam_result_id)
                 FILTER (WHERE null_id OR null_student_id OR null_item_id OR null_question_id))[1:10]::text[] AS sample,
              (SELECT json_agg(json_build_array(f.raw_student, f.n)) FROM (
                 SELECT raw_student, count(*) AS n FROM v WHERE null_id OR null_student_id OR null_item_id OR null_question_id
                  GROUP BY raw_student LIMIT ${MAX_FOUND_STUDENTS}) f) AS found
         FROM v`,
      src.params,
    );
    const r = rows[0] ?? {};
    const found = (r.found as unknown as [string | null, number][] | null) ?? [];
    const columns = ['id', 'student_id', 'item_id', 'question_id'] as const;
    // is_correct is a CASE with an ELSE branch in the V1 view: it cannot be NULL.
    const details: unknown[] = [...columns.map((c) => ({ column: c, rows: Number(r[c] ?? 0) })), { column: 'is_correct', rows: 0 }];
    const value = Number(r.any_null ?? 0);
    const where = scopePhrase(since, changes, scopeFallback);
    if (value === 0) return { value, message: `no NULL required fields ${where}`, details, found };
    details.push({ sampleExamResultIds: r.sample ?? [] });
    const which = columns.filter((c) => Number(r[c] ?? 0) > 0).map((c) => `${c}: ${r[c]}`).join(', ');
    return { value, message: `${value} row(s) ${where} with a NULL required field (${which})`, details, found };
  },
};

import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import { attemptIdSql, scopePhrase, sourceRowsSql } from './source-sql.ts';
import type { HealthCheck } from './types.ts';
import { MAX_FOUND_STUDENTS } from '../sql/findings.ts';

/**
 * Runbook section 5: exam_results.id is not unique in production, so the view's deterministic id
 * can repeat and the ETL's upsert fails. The value is the surplus: rows beyond the first of each id.
 */
export const duplicateIds: HealthCheck = {
  spec: CHECK_SPECS.duplicate_ids,
  async measure({ db, schema, since, changes, alsoStudents, scopeFallback, facts }) {
    const src = sourceRowsSql({ schema, since, changes, alsoStudents, serverVersion: facts.serverVersion });
    const { rows } = await db.query<{ surplus: string; id_groups: string; pair_groups: string; sample: string[] | null; found: [string | null, number][] | null }>(
      `WITH s AS (${src.sql}),
       ids AS (
         SELECT ${attemptIdSql('s', 'q')} AS attempt_id, count(*) AS n, min(s.id) AS exam_result_id,
                -- A group's surplus is remembered under one of its students (all NULL: the NULL student).
                min(s.student_id) AS student_id
           FROM s JOIN ${qualified(schema, 'questions')} q ON q.id = s.safe_qid
          GROUP BY 1 HAVING count(*) > 1),
       pairs AS (SELECT 1 FROM s WHERE s.safe_qid IS NOT NULL GROUP BY s.id, s.safe_qid HAVING count(*) > 1)
       SELECT (SELECT coalesce(sum(n - 1), 0) FROM ids) AS surplus,
              (SELECT count(*) FROM ids) AS id_groups,
              (SELECT count(*) FROM pairs) AS pair_groups,
              (SELECT (array_agg(exam_result_id ORDER BY exam_result_id))[1:10]::text[] FROM ids) AS sample,
              (SELECT json_agg(json_build_array(f.student_id, f.n)) FROM (
                 SELECT student_id, sum(n - 1) AS n FROM ids GROUP BY student_id LIMIT ${MAX_FOUND_STUDENTS}) f) AS found`,
      src.params,
    );
    const r = rows[0];
    const value = Number(r?.surplus ?? 0);
    const found = r?.found ?? [];
    const idGroups = Number(r?.id_groups ?? 0);
    const pairGroups = Number(r?.pair_groups ?? 0);
    const where = scopePhrase(since, changes, scopeFallback);
    const details: unknown[] = [
      { kind: 'duplicate_attempt_id', groups: idGroups, surplusRows: value },
      { kind: 'duplicate_exam_result_question', groups: pairGroups },
    ];
    if (value === 0) return { value, message: `attempt ids are unique ${where}`, details, found };
    details.push({ sampleExamResultIds: r?.sample ?? [] });
    return {
      value,
      message: `${value} surplus row(s) ${where} share an attempt id (${idGroups} id(s), ${pairGroups} duplicated exam_result_id/questionId pair(s))`,
      details,
      found,
    };
  },
};

import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import { scopePhrase, sourceRowsSql } from './source-sql.ts';
import type { HealthCheck } from './types.ts';
import { MAX_FOUND_STUDENTS } from '../sql/findings.ts';

/** Runbook section 4: a questionId with no questions row silently drops the result from the view. */
export const orphanResults: HealthCheck = {
  spec: CHECK_SPECS.orphan_results,
  async measure({ db, schema, since, changes, alsoStudents, scopeFallback, facts }) {
    const src = sourceRowsSql({ schema, since, changes, alsoStudents, serverVersion: facts.serverVersion });
    const { rows } = await db.query<{ orphans: string; question_ids: number[] | null; sample: string[] | null; found: [string | null, number][] | null }>(
      `WITH o AS (
         SELECT s.id, s.safe_qid, s.student_id FROM (${src.sql}) s
          WHERE s.safe_qid IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${qualified(schema, 'questions')} q WHERE q.id = s.safe_qid))
       SELECT count(*) AS orphans, (array_agg(DISTINCT safe_qid))[1:10] AS question_ids,
              (array_agg(id ORDER BY id))[1:10]::text[] AS sample,
              (SELECT json_agg(json_build_array(f.student_id, f.n)) FROM (
                 SELECT student_id, count(*) AS n FROM o GROUP BY student_id LIMIT ${MAX_FOUND_STUDENTS}) f) AS found
         FROM o`,
      src.params,
    );
    const value = Number(rows[0]?.orphans ?? 0);
    const found = rows[0]?.found ?? [];
    const where = scopePhrase(since, changes, scopeFallback);
    if (value === 0) return { value, message: `every questionId ${where} has a question`, found };
    return {
      value,
      message: `${value} result(s) ${where} reference a missing question (questionId ${(rows[0]?.question_ids ?? []).join(', ')})`,
      details: [{ missingQuestionIds: rows[0]?.question_ids ?? [], sampleExamResultIds: rows[0]?.sample ?? [] }],
      found,
    };
  },
};

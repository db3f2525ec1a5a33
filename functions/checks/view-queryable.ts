import { CHECK_SPECS } from '../contract/index.ts';
import { classifyDbError } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import { RAW, scopePhrase, validIntSql, validResponseTimeSql, windowFilter } from './source-sql.ts';
import type { HealthCheck } from './types.ts';
import { MAX_FOUND_STUDENTS } from '../sql/findings.ts';

/**
 * Rows that make every query of the view fail: one questionId that is not an integer aborts the
 * join for everybody, a responseTime that is not a number aborts any query that reads it. Counted
 * on the base tables, so the count itself cannot fail on them.
 */
export const viewQueryable: HealthCheck = {
  spec: CHECK_SPECS.view_queryable,
  async measure({ db, schema, since, changes, alsoStudents, scopeFallback, facts }) {
    const v = facts.serverVersion;
    const f = windowFilter({ schema, since, changes, alsoStudents, serverVersion: v });
    const validQid = validIntSql(RAW.questionId, v);
    const { rows } = await db.query<{ bad_qid: string; bad_rt: string; sample: string[] | null; found: [string | null, number][] | null }>(
      `WITH src AS (
         SELECT er.id, er.student_id, ${validQid} AS qid_ok, ${validResponseTimeSql(RAW.responseTime, v)} AS rt_ok,
                CASE WHEN ${validQid} THEN ${RAW.questionId}::int END AS qid
           FROM ${qualified(schema, 'exam_results')} er
          WHERE ${RAW.questionId} IS NOT NULL AND ${f.sql}),
       bad AS (
         SELECT src.id, src.student_id, NOT src.qid_ok AS bad_qid,
                src.qid_ok AND NOT src.rt_ok AND EXISTS (SELECT 1 FROM ${qualified(schema, 'questions')} q WHERE q.id = src.qid) AS bad_rt
           FROM src WHERE NOT src.qid_ok OR NOT src.rt_ok)
       SELECT count(*) FILTER (WHERE bad_qid) AS bad_qid, count(*) FILTER (WHERE bad_rt) AS bad_rt,
              (array_agg(id ORDER BY id) FILTER (WHERE bad_qid OR bad_rt))[1:10]::text[] AS sample,
              (SELECT json_agg(json_build_array(f.student_id, f.n)) FROM (
                 SELECT student_id, count(*) AS n FROM bad WHERE bad_qid OR bad_rt GROUP BY student_id LIMIT ${MAX_FOUND_STUDENTS}) f) AS found
         FROM bad`,
      f.params,
    );
    const badQid = Number(rows[0]?.bad_qid ?? 0);
    const badRt = Number(rows[0]?.bad_rt ?? 0);
    const poison = badQid + badRt;
    const found = rows[0]?.found ?? [];
    const details: unknown[] = [
      { kind: 'non_integer_question_id', rows: badQid },
      { kind: 'non_numeric_response_time', rows: badRt },
    ];
    if (poison > 0) details.push({ sampleExamResultIds: rows[0]?.sample ?? [] });

    let planError: string | undefined;
    if (facts.attemptKind !== null) {
      // Planning the view (not running it) proves it still resolves: columns, casts, grants.
      try {
        await db.query('SAVEPOINT plan_probe');
        await db.query(`EXPLAIN SELECT * FROM ${qualified(schema, 'attempt')}`);
        await db.query('RELEASE SAVEPOINT plan_probe');
      } catch (err) {
        await db.query('ROLLBACK TO SAVEPOINT plan_probe');
        const e = classifyDbError(err, 'the view');
        // Our own role lacking SELECT says nothing about the view; the permissions check covers the app role.
        if (e.kind === 'permission') return { value: null, status: 'unknown', message: `cannot plan the view as the monitoring role: ${e.message}`, details };
        planError = e.message;
        details.push({ kind: 'view_error', error: planError });
      }
    }
    const where = scopePhrase(since, changes, scopeFallback);
    if (planError) return { value: poison, status: 'critical', message: `${planError}`, details, found };
    if (poison > 0) {
      return {
        value: poison,
        message: `${poison} poison row(s) ${where} make queries of the view fail (${badQid} non-integer questionId, ${badRt} non-numeric responseTime)`,
        details,
        found,
      };
    }
    return { value: 0, message: `no poison rows ${where}`, details, found };
  },
};

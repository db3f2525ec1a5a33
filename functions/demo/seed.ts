/**
 * A realistic reference dataset, generated set-based in the database (no row crosses the wire):
 * exams of ten answers each, thousands of students (uuid and legacy ids), months of completed_at,
 * two questions per item. Deterministic for a given size, so runs compare.
 */
import type pg from 'pg';
import { DEFAULT_APP_ROLE } from '../contract/index.ts';
import { quoteIdent } from '../db/identifiers.ts';
import { referenceTablesSql, v1ViewSql } from '../sql/reference.ts';

export interface SeedOptions {
  rows: number;
  questions?: number;
  days?: number;
  chunk?: number;
  onProgress?: (done: number, total: number) => void;
}

export const ANSWERS_PER_EXAM = 10;

export async function createReferenceSchema(client: pg.Client | pg.PoolClient, appRole = DEFAULT_APP_ROLE): Promise<void> {
  await client.query(referenceTablesSql('public'));
  await client.query(v1ViewSql('public'));
  await client.query(`DO $$ BEGIN CREATE ROLE ${quoteIdent(appRole)} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
  await client.query(`GRANT SELECT ON exam_results, questions, attempt TO ${quoteIdent(appRole)}`);
}

/**
 * The generated columns of answer `k` of exam `e` by student `s`, as SQL over those names:
 * the seed and the benchmark's hourly deltas write rows of one shape. An exam's questions share a
 * parity, so no two are one item and the view's id (exam id + item id) stays unique.
 */
export function generatedStudentSql(s = 's'): string {
  return `CASE WHEN ${s} % 10 = 0 THEN 'legacy-' || ${s} ELSE md5('student-' || ${s})::uuid::text END`;
}

export function generatedResultJsonSql(questions: string, e = 'e', k = 'k'): string {
  return `jsonb_build_object(
                'questionId', ((${e} * 7 + ${k} * 2) % ${questions}) + 1,
                'studentAnswer', chr((65 + ((${e} + ${k}) % 4))::int),
                'isCorrect', ((${e} * 13 + ${k} * 7) % 3) <> 0,
                'responseTime', 500 + ((${e} * 7919 + ${k} * 104729) % 60000))`;
}

export async function seedReferenceData(client: pg.Client | pg.PoolClient, o: SeedOptions): Promise<void> {
  const questions = o.questions ?? 500;
  const days = o.days ?? 180;
  const chunk = o.chunk ?? 20_000;
  const students = Math.max(50, Math.floor(o.rows / 30));
  await client.query(
    `INSERT INTO questions (id, item_id, question_text, correct_answer, tags)
     SELECT q, 1000 + (q - 1) / 2, 'Question ' || q, chr(65 + q % 4),
            CASE WHEN q % 5 = 0 THEN NULL ELSE ARRAY['unit-' || (q % 12), CASE WHEN q % 2 = 0 THEN 'algebra' ELSE 'geometry' END] END
       FROM generate_series(1, $1::int) q`,
    [questions],
  );
  for (let start = 0; start < o.rows; start += chunk) {
    const end = Math.min(o.rows, start + chunk) - 1;
    // Row g is answer k of exam e.
    await client.query(
      `INSERT INTO exam_results (id, student_id, result_json, completed_at)
       SELECT e, ${generatedStudentSql()},
              ${generatedResultJsonSql('$3')},
              now() - make_interval(mins => ((e * 7919) % ($4 * 1440))::int) - make_interval(secs => k * 20)
         FROM (SELECT g / ${ANSWERS_PER_EXAM} AS e, g % ${ANSWERS_PER_EXAM} AS k FROM generate_series($1::bigint, $2::bigint) g) r,
              LATERAL (SELECT (e * 31) % $5 AS s) st`,
      [start, end, questions, days, students],
    );
    o.onProgress?.(end + 1, o.rows);
  }
}

/**
 * The demo's injected incidents, one per runbook class the checks cover. Each returns what it did.
 */
export async function injectIncidents(client: pg.Client | pg.PoolClient, appRole = DEFAULT_APP_ROLE): Promise<string[]> {
  const done: string[] = [];
  await client.query(`INSERT INTO exam_results VALUES (900000001, NULL, '{"questionId": 3, "isCorrect": true, "responseTime": 1200}', now() - interval '5 minutes')`);
  done.push('a result with a NULL student_id (runbook 4)');
  await client.query(`INSERT INTO exam_results VALUES (900000002, md5('orphan')::uuid::text, '{"questionId": 99999, "isCorrect": false, "responseTime": 900}', now() - interval '4 minutes')`);
  done.push('a result whose questionId 99999 has no question (runbook 4)');
  await client.query(`INSERT INTO exam_results SELECT * FROM exam_results WHERE id = (SELECT max(id) FROM exam_results WHERE id < 900000000) LIMIT 1`);
  done.push('a duplicated exam result (runbook 5)');
  await client.query(`REVOKE SELECT ON exam_results FROM ${quoteIdent(appRole)}`);
  done.push(`SELECT on exam_results revoked from ${appRole} (runbook 2)`);
  await client.query(`INSERT INTO exam_results VALUES (900000003, md5('poison')::uuid::text, '{"questionId": "12.5", "isCorrect": true, "responseTime": 700}', now() - interval '3 minutes')`);
  done.push('a poison questionId "12.5" that breaks every query of the view (runbook 4)');
  return done;
}

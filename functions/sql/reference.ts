/**
 * The reference base schema and the V1 view (CONTRACT.md section 1), the one source used by the
 * demo, the tests, `remediate recreate-view` and `bootstrap`. Every statement is schema-qualified
 * with a validated, quoted schema name.
 */
import { qualified, quoteIdent } from '../db/identifiers.ts';

export function referenceTablesSql(schema: string): string {
  const s = quoteIdent(schema);
  return `
CREATE SCHEMA IF NOT EXISTS ${s};
CREATE TABLE IF NOT EXISTS ${s}.questions (
  id             integer PRIMARY KEY,
  item_id        integer NOT NULL,
  question_text  text,
  correct_answer text,
  tags           text[]
);
CREATE TABLE IF NOT EXISTS ${s}.exam_results (
  id           bigint NOT NULL,
  student_id   text,
  result_json  jsonb NOT NULL,
  completed_at timestamptz NOT NULL
);`;
}

/**
 * The body of the V1 view, exactly as runbook section 1 defines it (the schema lock). Only the
 * relation names are qualified.
 */
export function v1SelectSql(schema: string): string {
  return `SELECT 
  (('x' || LEFT(MD5(er.id::text || '-' || q.item_id::text), 16))::bit(64)::bigint) AS id,
  er.id AS exam_result_id,
  CASE 
    WHEN er.student_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' 
    THEN er.student_id::uuid
    ELSE ('00000000-0000-0000-0000-' || LPAD(LEFT(MD5(er.student_id), 12), 12, '0'))::uuid
  END AS student_id,
  q.item_id::int AS item_id,
  q.id::int AS question_id,
  q.question_text::text AS question_text,
  q.correct_answer::text AS correct_answer,
  NULLIF(er.result_json->>'studentAnswer', '')::text AS student_answer,
  CASE 
    WHEN (er.result_json->>'isCorrect')::text = 'true' THEN 1 
    ELSE 0 
  END AS is_correct,
  ROUND(COALESCE(NULLIF(er.result_json->>'responseTime', '')::numeric, 0))::int AS response_time_ms,
  er.completed_at AS completed_at,
  ROW_NUMBER() OVER (PARTITION BY student_id, q.item_id ORDER BY er.completed_at) AS attempt_no,
  q.tags
FROM ${qualified(schema, 'exam_results')} er
JOIN ${qualified(schema, 'questions')} q ON q.id = (er.result_json->>'questionId')::int
WHERE (er.result_json->>'questionId') IS NOT NULL`;
}

/** CREATE OR REPLACE keeps grants and fails (rather than dropping anything) on an incompatible view. */
export function v1ViewSql(schema: string): string {
  return `CREATE OR REPLACE VIEW ${qualified(schema, 'attempt')} AS\n${v1SelectSql(schema)};`;
}

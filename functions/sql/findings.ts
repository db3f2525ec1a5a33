/**
 * Open findings (issue 11, item 2): a data-quality defect found by any run is remembered per raw
 * student, and every later incremental run re-reads those students' rows, so the defect stays
 * counted until a run that re-reads them finds it fixed. A page then opens once and resolves
 * once; the daily full run, which re-reads every row, replaces a check's findings whole.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { quoteIdent } from '../db/identifiers.ts';

const OPS = quoteIdent(OPS_SCHEMA);
export const OPEN_FINDINGS = `${OPS}.open_findings`;

/** How many students' findings one check run remembers; the count itself is never cut. */
export const MAX_FOUND_STUDENTS = 10_000;

export function findingsSql(): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${OPEN_FINDINGS} (
  source_schema text NOT NULL,
  check_name    text NOT NULL,
  -- 'S' || student, or 'N' for the NULL student (a student too, as the view partitions)
  student_key   text NOT NULL,
  student       text,
  rows          bigint NOT NULL,
  found_at      timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (source_schema, check_name, student_key)
)`,
    // p_full: the run re-read every row. Otherwise it re-read the rows of p_students (and of the
    // NULL student when p_null). Returns the rows still open outside what was re-read (carried).
    `CREATE OR REPLACE FUNCTION ${OPS}.findings_merge(p_schema text, p_check text, p_full boolean, p_students text[], p_null boolean, p_found jsonb)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  carried bigint;
BEGIN
  IF NOT ${OPS}.capture_may_consume('health-check') THEN
    RAISE EXCEPTION 'role % may not record findings', session_user USING ERRCODE = '42501';
  END IF;
  DELETE FROM ${OPEN_FINDINGS} o
   WHERE o.source_schema = p_schema AND o.check_name = p_check
     AND (p_full OR o.student = ANY (p_students) OR (p_null AND o.student IS NULL));
  -- What is left is what this run did not re-read by student; a student it found again anyway
  -- (through a changed question) is counted in its value, not twice.
  SELECT coalesce(sum(o.rows), 0) INTO carried FROM ${OPEN_FINDINGS} o
   WHERE o.source_schema = p_schema AND o.check_name = p_check
     AND NOT EXISTS (SELECT 1 FROM jsonb_array_elements(p_found) f
                      WHERE o.student_key = CASE WHEN f->>0 IS NULL THEN 'N' ELSE 'S' || (f->>0) END);
  INSERT INTO ${OPEN_FINDINGS} (source_schema, check_name, student_key, student, rows)
  SELECT p_schema, p_check, CASE WHEN f->>0 IS NULL THEN 'N' ELSE 'S' || (f->>0) END, f->>0, (f->>1)::bigint
    FROM jsonb_array_elements(p_found) f
  ON CONFLICT (source_schema, check_name, student_key) DO UPDATE SET rows = EXCLUDED.rows, last_seen_at = now();
  RETURN carried;
END
$f$`,
    `REVOKE ALL ON FUNCTION ${OPS}.findings_merge(text, text, boolean, text[], boolean, jsonb) FROM PUBLIC`,
  ];
}

/** The students of every open finding of a schema: the incremental run re-reads their rows. */
export const OPEN_FINDING_STUDENTS_SQL = `SELECT coalesce(array_agg(DISTINCT student) FILTER (WHERE student IS NOT NULL), '{}') AS students,
       bool_or(student IS NULL) AS null_student
  FROM ${OPEN_FINDINGS} WHERE source_schema = $1`;

export const FINDINGS_MERGE_SQL = `SELECT ${OPS}.findings_merge($1, $2, $3, $4, $5, $6) AS carried`;

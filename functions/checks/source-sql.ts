/**
 * SQL fragments that reproduce, on the base tables, what the V1 view computes, without its window
 * function and without its casts' failure modes. The data-quality checks read through these:
 * a poison row must be counted, not abort the query that looks for it.
 */
import { qualified } from '../db/identifiers.ts';
import type { ChangeScope } from './types.ts';

const QID = "(er.result_json->>'questionId')";
const RT = "(er.result_json->>'responseTime')";

/**
 * The whitespace PostgreSQL 15's int4in and numeric_in skip around a number: C's isspace() on a
 * byte, i.e. ASCII space, \t, \n, \r, \v and \f. Not the regex class \s, which under a UTF-8
 * locale also matches Unicode spaces (U+2003, U+00A0...) that the casts reject.
 */
const PG15_SPACE = '[ \\t\\n\\r\\v\\f]';

/** Is the text a valid int4 literal, as the view's ::int cast will judge it on this server? */
export function validIntSql(expr: string, serverVersion: number): string {
  if (serverVersion >= 160000) return `pg_input_is_valid(${expr}, 'integer')`;
  // PostgreSQL 15 accepts surrounding whitespace, a sign and decimal digits only.
  const w = PG15_SPACE;
  return `(CASE WHEN ${expr} ~ '^${w}*[+-]?[0-9]+${w}*$' AND length(substring(${expr} from '^${w}*[+-]?0*([0-9]*)${w}*$')) <= 10
    THEN substring(${expr} from '^${w}*([+-]?[0-9]+)${w}*$')::numeric BETWEEN -2147483648 AND 2147483647 ELSE false END)`;
}

/** Would ROUND(COALESCE(NULLIF(x, '')::numeric, 0))::int succeed? */
export function validResponseTimeSql(expr: string, serverVersion: number): string {
  const w = PG15_SPACE;
  const numericOk =
    serverVersion >= 160000
      ? `pg_input_is_valid(${expr}, 'numeric')`
      : // Exponents of four or more digits are counted as poison: the cast itself could overflow.
        `${expr} ~ '^${w}*[+-]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][+-]?[0-9]{1,3})?${w}*$'`;
  return `(${expr} IS NULL OR ${expr} = '' OR (CASE WHEN ${numericOk}
    THEN round(${expr}::numeric) BETWEEN -2147483648 AND 2147483647 ELSE false END))`;
}

/** The questionId as the view casts it, or NULL where that cast would fail. */
export function safeQuestionIdSql(serverVersion: number): string {
  return `(CASE WHEN ${validIntSql(QID, serverVersion)} THEN ${QID}::int END)`;
}

export interface SourceWindow {
  schema: string;
  since: Date | null;
  serverVersion: number;
  /** The changed rows, when the change capture says which: replaces `since`. */
  changes?: ChangeScope | null;
  /** With `since`: these students' rows too (the open findings). */
  alsoStudents?: { students: string[]; nullStudent: boolean } | null;
}

/**
 * WHERE clause and its parameters ($1 onwards): the changed students' rows and the results of
 * changed questions when the capture says which, else completed_at >= since, else every row.
 * `= ANY` on the raw student_id reads through the (student_id, completed_at) index.
 */
export function windowFilter(w: SourceWindow, alias = 'er'): { sql: string; params: unknown[] } {
  if (w.changes) {
    const qid = alias === 'er' ? safeQuestionIdSql(w.serverVersion) : safeQuestionIdSql(w.serverVersion).replaceAll('er.', `${alias}.`);
    return {
      sql: `(${alias}.student_id = ANY ($1::text[]) OR ($2::boolean AND ${alias}.student_id IS NULL)
             OR (cardinality($3::int[]) > 0 AND ${qid} = ANY ($3::int[])))`,
      params: [w.changes.students, w.changes.nullStudent, w.changes.questionIds],
    };
  }
  if (w.since && w.alsoStudents && (w.alsoStudents.students.length > 0 || w.alsoStudents.nullStudent)) {
    return {
      sql: `(${alias}.completed_at >= $1 OR ${alias}.student_id = ANY ($2::text[]) OR ($3::boolean AND ${alias}.student_id IS NULL))`,
      params: [w.since, w.alsoStudents.students, w.alsoStudents.nullStudent],
    };
  }
  return w.since ? { sql: `${alias}.completed_at >= $1`, params: [w.since] } : { sql: 'true', params: [] };
}

/** exam_results rows the view reads (questionId present), with the safe questionId. */
export function sourceRowsSql(w: SourceWindow): { sql: string; params: unknown[] } {
  const f = windowFilter(w);
  return {
    sql: `SELECT er.*, ${safeQuestionIdSql(w.serverVersion)} AS safe_qid, ${QID} AS raw_qid
      FROM ${qualified(w.schema, 'exam_results')} er
      WHERE ${QID} IS NOT NULL AND ${f.sql}`,
    params: f.params,
  };
}

export const RAW = { questionId: QID, responseTime: RT };

/** The view's id expression, over an exam_results alias and a questions alias. */
export function attemptIdSql(er = 'er', q = 'q'): string {
  return `(('x' || LEFT(MD5(${er}.id::text || '-' || ${q}.item_id::text), 16))::bit(64)::bigint)`;
}

/** The view's student_id expression. */
export const STUDENT_UUID_SQL = `(CASE WHEN er.student_id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
  THEN er.student_id::uuid ELSE ('00000000-0000-0000-0000-' || LPAD(LEFT(MD5(er.student_id), 12), 12, '0'))::uuid END)`;

/** A scope phrase for messages: "since 2026-11-24T03:00:00.000Z", "among all rows", or the changed rows. */
export function scopePhrase(since: Date | null, changes?: ChangeScope | null, fallback?: string | null): string {
  if (changes) {
    const parts = [`${changes.students.length + (changes.nullStudent ? 1 : 0)} student(s)`, ...(changes.questionIds.length ? [`${changes.questionIds.length} question(s)`] : [])];
    return `among the rows changed since the last run (${parts.join(', ')})`;
  }
  if (since) return fallback ? `since ${since.toISOString()} (recent rows: ${fallback})` : `since ${since.toISOString()}`;
  return 'among all rows';
}

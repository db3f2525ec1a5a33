/**
 * The SQL of the table-backed attempt_mv and its change capture (docs/INCREMENTAL_REFRESH.md).
 *
 * The copy is a plain table with the view's columns, kept equal to the view by recomputing only
 * the students a change touched: attempt_no numbers the attempts of one raw exam_results.student_id
 * and item, so every row of a student, recomputed together, is exact. The keys come from
 * statement-level triggers with transition tables, which copy keys and nothing else: they never
 * cast, so no row an application writes can make its write fail.
 *
 * Every statement is schema-qualified with validated, quoted names; the watched schema is also a
 * column of our tables, so two watched schemas in one database keep apart.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';
import { safeQuestionIdSql } from '../checks/source-sql.ts';
import { ATTEMPT_MV_ID_INDEX, ATTEMPT_MV_STUDENT_INDEX } from './ops-schema.ts';
import { v1SelectSql } from './reference.ts';

const OPS = quoteIdent(OPS_SCHEMA);
/** One row per application statement that touched the view's sources, until a refresh consumes it. */
export const CHANGES = `${OPS}.attempt_changes`;
/**
 * Legacy student ids and the uuid the view gives them. Two legacy ids can share a uuid (48 bits of
 * md5), and a uuid-shaped id can equal a legacy id's uuid: the copy cannot tell their rows apart,
 * so a refresh that deletes one student's uuid must recompute every raw id behind it.
 */
export const LEGACY_STUDENTS = `${OPS}.attempt_mv_legacy_students`;
/** The copy's row count, kept in step with each refresh so an hourly run need not count 2M rows. */
export const MV_STATE = `${OPS}.attempt_mv_state`;
export const CAPTURE_FUNCTION = `${OPS}.attempt_capture`;
/** Each consumer's position in the change log (a snapshot): refresh-mv now, the health check next. */
export const CURSORS = `${OPS}.capture_cursors`;
/** DDL on the watched tables and the view, recorded by the capture's event trigger. */
export const DDL_EVENTS = `${OPS}.ddl_events`;
/** Per watched schema: whether the capture is wanted (bootstrap's choice), and the columns it reads. */
export const CAPTURE_SETTINGS = `${OPS}.capture_settings`;

/**
 * What the least-privilege roles need of the capture's objects (functions/sql/roles.ts grants
 * them where they exist). Nobody but their owner may write the log or the cursors directly: the
 * consumers advance through these SECURITY DEFINER functions, which check who calls them.
 */
export const CAPTURE_PRIVILEGES = {
  /** SELECT for the monitor, maintainer and operator roles. */
  readable: [CHANGES, CURSORS, DDL_EVENTS, CAPTURE_SETTINGS, LEGACY_STUDENTS, MV_STATE],
  /** SELECT, INSERT, UPDATE, DELETE for the maintainer: refresh-mv's own bookkeeping, not audit. */
  maintainerWritable: [LEGACY_STUDENTS, MV_STATE],
  /** EXECUTE for the maintainer (signatures as to_regprocedure reads them). */
  maintainerFunctions: [`${OPS}.capture_consume(text, text)`, `${OPS}.capture_prune(text)`],
  /** EXECUTE for the monitor. */
  monitorFunctions: [`${OPS}.capture_prune(text)`],
} as const;

/** The marker that tells our table-backed copy from any other table called attempt_mv. */
export const TABLE_COPY_COMMENT = 'attempt-ops: table-backed copy of attempt, maintained by refresh-mv (incremental)';
export const CAPTURED_TABLES = ['exam_results', 'questions'] as const;
export const CAPTURE_EVENTS = ['insert', 'update', 'delete', 'truncate'] as const;
export const CAPTURE_TRIGGERS = CAPTURE_EVENTS.map((e) => `attempt_ops_capture_${e}`);

/**
 * Runbook section 3's medium-term index, the one `remediate create-indexes` makes too: the
 * incremental refresh reads each touched student's results through it. Without it every run scans
 * exam_results, and costs what the table costs again.
 */
export const STUDENT_INDEX = 'idx_exam_results_student_completed';

/** CONCURRENTLY: writers keep writing while it builds; an INVALID leftover of a failed build is dropped first. */
export function studentIndexSql(schema: string, invalidLeftover: boolean): string[] {
  return [
    ...(invalidLeftover ? [`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(schema, STUDENT_INDEX)}`] : []),
    `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(STUDENT_INDEX)} ON ${qualified(schema, 'exam_results')} (student_id, completed_at) WHERE (result_json->>'questionId') IS NOT NULL`,
  ];
}

/** The name the copy is built under before it takes attempt_mv's place. */
export const COPY_BUILD_NAME = 'attempt_mv_build';

const UUID_RE = "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'";

/** The view's student_id expression over any text expression. It cannot fail: the cast only meets the regex's matches. */
export function studentUuidSql(raw: string): string {
  return `(CASE WHEN ${raw} ~ ${UUID_RE} THEN ${raw}::uuid
    ELSE ('00000000-0000-0000-0000-' || LPAD(LEFT(MD5(${raw}), 12), 12, '0'))::uuid END)`;
}

export function captureTablesSql(): string {
  return `
CREATE TABLE IF NOT EXISTS ${CHANGES} (
  id            bigserial PRIMARY KEY,
  source_schema text NOT NULL,
  source_table  text NOT NULL,
  students      text[],
  question_ids  integer[],
  full_rebuild  boolean NOT NULL DEFAULT false,
  captured_at   timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS ${LEGACY_STUDENTS} (
  source_schema text NOT NULL,
  raw_student   text NOT NULL,
  student_id    uuid NOT NULL,
  PRIMARY KEY (source_schema, raw_student)
);
CREATE INDEX IF NOT EXISTS attempt_mv_legacy_students_uuid_idx ON ${LEGACY_STUDENTS} (source_schema, student_id);
CREATE TABLE IF NOT EXISTS ${MV_STATE} (
  source_schema text PRIMARY KEY,
  row_count     bigint NOT NULL,
  rebuilt_at    timestamptz NOT NULL,
  refreshed_at  timestamptz NOT NULL
)`;
}

/**
 * One function for every capture trigger. SECURITY DEFINER with a fixed search_path: the
 * application's roles write exam_results but need no privilege on attempt_ops. It copies keys only
 * (no cast, no lookup), so an odd row costs one array element, never a failed write. A questions
 * update that leaves every column the view reads unchanged records nothing.
 */
export function captureFunctionSql(): string {
  const ins = (cols: string, select: string) => `INSERT INTO ${CHANGES} (source_schema, source_table, ${cols}) ${select};`;
  const students = (from: string) =>
    `SELECT TG_TABLE_SCHEMA, TG_TABLE_NAME, array_agg(DISTINCT k.s) FROM (${from}) k HAVING count(*) > 0`;
  const er = (rel: string) => `SELECT r.student_id::text AS s FROM ${rel} r WHERE (r.result_json->>'questionId') IS NOT NULL`;
  const questions = (from: string) =>
    `SELECT TG_TABLE_SCHEMA, TG_TABLE_NAME, array_agg(DISTINCT k.id) FROM (${from}) k HAVING count(*) > 0`;
  const qcols = 'r.id, r.item_id, r.question_text, r.correct_answer, r.tags';
  return `CREATE OR REPLACE FUNCTION ${CAPTURE_FUNCTION}() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $capture$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    INSERT INTO ${CHANGES} (source_schema, source_table, full_rebuild) VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, true);
  ELSIF TG_TABLE_NAME = 'questions' THEN
    IF TG_OP = 'INSERT' THEN
      ${ins('question_ids', questions('SELECT r.id FROM new_rows r'))}
    ELSIF TG_OP = 'DELETE' THEN
      ${ins('question_ids', questions('SELECT r.id FROM old_rows r'))}
    ELSE
      ${ins('question_ids', questions(`(SELECT ${qcols} FROM old_rows r EXCEPT SELECT ${qcols} FROM new_rows r)
         UNION ALL (SELECT ${qcols} FROM new_rows r EXCEPT SELECT ${qcols} FROM old_rows r)`))}
    END IF;
  ELSE
    IF TG_OP = 'INSERT' THEN
      ${ins('students', students(er('new_rows')))}
    ELSIF TG_OP = 'DELETE' THEN
      ${ins('students', students(er('old_rows')))}
    ELSE
      ${ins('students', students(`${er('old_rows')} UNION ALL ${er('new_rows')}`))}
    END IF;
  END IF;
  RETURN NULL;
END
$capture$`;
}

/**
 * Statement-level AFTER triggers: one per event, since a trigger with transition tables may only
 * have one. CREATE OR REPLACE TRIGGER (PostgreSQL 14+) makes a second install a no-op.
 */
export function captureTriggersSql(schema: string): string[] {
  const out: string[] = [];
  for (const table of CAPTURED_TABLES) {
    const rel = qualified(schema, table);
    out.push(
      `CREATE OR REPLACE TRIGGER attempt_ops_capture_insert AFTER INSERT ON ${rel} REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${CAPTURE_FUNCTION}()`,
      `CREATE OR REPLACE TRIGGER attempt_ops_capture_update AFTER UPDATE ON ${rel} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ${CAPTURE_FUNCTION}()`,
      `CREATE OR REPLACE TRIGGER attempt_ops_capture_delete AFTER DELETE ON ${rel} REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION ${CAPTURE_FUNCTION}()`,
      `CREATE OR REPLACE TRIGGER attempt_ops_capture_truncate AFTER TRUNCATE ON ${rel} FOR EACH STATEMENT EXECUTE FUNCTION ${CAPTURE_FUNCTION}()`,
    );
  }
  return out;
}

export function dropCaptureTriggersSql(schema: string): string[] {
  return CAPTURED_TABLES.flatMap((t) => CAPTURE_TRIGGERS.map((name) => `DROP TRIGGER IF EXISTS ${quoteIdent(name)} ON ${qualified(schema, t)}`));
}

/** Everything the capture needs, in the order it must be made. */
export function captureInstallSql(schema: string): string[] {
  return [`CREATE SCHEMA IF NOT EXISTS ${OPS}`, captureTablesSql(), captureFunctionSql(), ...captureTriggersSql(schema)];
}

/**
 * The view's SELECT with one more condition in its WHERE clause, that is before the window
 * function: restricted to whole students, the window sorts only their rows and numbers them as
 * the view does. Checked against v1SelectSql's text so a change there cannot silently misplace it.
 */
export function v1RestrictedSql(schema: string, condition: string): string {
  const base = v1SelectSql(schema);
  const where = "WHERE (er.result_json->>'questionId') IS NOT NULL";
  if (!base.trimEnd().endsWith(where)) throw new Error('v1SelectSql no longer ends with its WHERE clause: update v1RestrictedSql');
  return `${base.trimEnd()}\n  AND (${condition})`;
}

export const KEYS = 'pg_temp.attempt_refresh_keys';
export const CONSUMED = 'pg_temp.attempt_refresh_consumed';

export interface IncrementalSql {
  /** Takes every change row this snapshot sees; rows committed later stay for the next run. */
  consume: string[];
  summary: string;
  /** Raw student ids of the consumed changes, of the changed questions' results, and of the same uuids. */
  keys: string[];
  sizing: string;
  deleteStudents: string;
  deleteNullStudent: string;
  insertStudents: string;
  insertNullStudent: string;
  legacy: string[];
  state: string;
}

/** $1 is always the watched schema's name. */
export function incrementalSql(schema: string, copy: string, serverVersion: number): IncrementalSql {
  const er = qualified(schema, 'exam_results');
  const keyUuid = studentUuidSql('k.student_id');
  return {
    consume: [
      `CREATE TEMP TABLE attempt_refresh_consumed (students text[], question_ids integer[], full_rebuild boolean) ON COMMIT DROP`,
      `WITH c AS (DELETE FROM ${CHANGES} WHERE source_schema = $1 RETURNING students, question_ids, full_rebuild)
       INSERT INTO ${CONSUMED} SELECT students, question_ids, full_rebuild FROM c`,
    ],
    summary: `SELECT count(*)::int AS batches, coalesce(bool_or(full_rebuild), false) AS full_rebuild,
                     count(*) FILTER (WHERE question_ids IS NOT NULL)::int AS question_batches,
                     (SELECT row_count FROM ${MV_STATE} WHERE source_schema = $1) AS row_count
                FROM ${CONSUMED}`,
    keys: [
      `CREATE TEMP TABLE attempt_refresh_keys (student_id text) ON COMMIT DROP`,
      // UNION, not UNION ALL: one key per student, and NULL (a student too) once.
      `INSERT INTO ${KEYS}
       SELECT s FROM ${CONSUMED} c, unnest(c.students) s
       UNION
       SELECT er.student_id FROM ${er} er
        WHERE $1::boolean AND (er.result_json->>'questionId') IS NOT NULL
          AND ${safeQuestionIdSql(serverVersion)} IN (SELECT unnest(c.question_ids) FROM ${CONSUMED} c)`,
      `INSERT INTO ${KEYS}
       SELECT e.x FROM (
         SELECT (${keyUuid})::text AS x FROM ${KEYS} k WHERE k.student_id IS NOT NULL
         UNION
         SELECT m.raw_student FROM ${LEGACY_STUDENTS} m
          WHERE m.source_schema = $1 AND m.student_id IN (SELECT ${keyUuid} FROM ${KEYS} k WHERE k.student_id IS NOT NULL)
       ) e
       WHERE NOT EXISTS (SELECT 1 FROM ${KEYS} k WHERE k.student_id = e.x)`,
      // Temporary tables are never auto-analyzed: without this the planner guesses their size.
      `ANALYZE ${KEYS}`,
    ],
    sizing: `SELECT (SELECT count(*) FROM ${KEYS})::bigint AS keys,
                    (SELECT count(*) FROM ${copy} t WHERE t.student_id IN (SELECT ${keyUuid} FROM ${KEYS} k WHERE k.student_id IS NOT NULL))
                  + (CASE WHEN EXISTS (SELECT 1 FROM ${KEYS} k WHERE k.student_id IS NULL)
                          THEN (SELECT count(*) FROM ${copy} t WHERE t.student_id IS NULL) ELSE 0 END) AS old_rows,
                    EXISTS (SELECT 1 FROM ${KEYS} k WHERE k.student_id IS NULL) AS null_student`,
    deleteStudents: `DELETE FROM ${copy} t WHERE t.student_id IN (SELECT ${keyUuid} FROM ${KEYS} k WHERE k.student_id IS NOT NULL)`,
    deleteNullStudent: `DELETE FROM ${copy} t WHERE t.student_id IS NULL`,
    insertStudents: `INSERT INTO ${copy}\n${v1RestrictedSql(schema, `er.student_id IN (SELECT k.student_id FROM ${KEYS} k)`)}`,
    insertNullStudent: `INSERT INTO ${copy}\n${v1RestrictedSql(schema, 'er.student_id IS NULL')}`,
    legacy: [
      `DELETE FROM ${LEGACY_STUDENTS} m WHERE m.source_schema = $1 AND m.raw_student IN (SELECT k.student_id FROM ${KEYS} k)`,
      `INSERT INTO ${LEGACY_STUDENTS} (source_schema, raw_student, student_id)
       SELECT DISTINCT $1, er.student_id, ${studentUuidSql('er.student_id')} FROM ${er} er
        WHERE er.student_id IN (SELECT k.student_id FROM ${KEYS} k) AND er.student_id !~ ${UUID_RE}
          AND (er.result_json->>'questionId') IS NOT NULL`,
    ],
    state: `UPDATE ${MV_STATE} SET row_count = row_count + $2::bigint, refreshed_at = now() WHERE source_schema = $1`,
  };
}

/**
 * A full rebuild of the copy that never blocks its readers: DELETE and INSERT in one transaction,
 * so a reader sees the old rows until it commits (the price is a table's worth of dead tuples for
 * autovacuum). The change log is consumed first, in the same snapshot the rows are read in.
 */
export function fullRebuildSql(schema: string, copy: string): { consume: string; delete: string; insert: string; legacy: string[]; state: string } {
  const er = qualified(schema, 'exam_results');
  return {
    consume: `DELETE FROM ${CHANGES} WHERE source_schema = $1`,
    delete: `DELETE FROM ${copy}`,
    insert: `INSERT INTO ${copy}\n${v1SelectSql(schema)}`,
    legacy: [
      `DELETE FROM ${LEGACY_STUDENTS} WHERE source_schema = $1`,
      `INSERT INTO ${LEGACY_STUDENTS} (source_schema, raw_student, student_id)
       SELECT DISTINCT $1, er.student_id, ${studentUuidSql('er.student_id')} FROM ${er} er
        WHERE er.student_id !~ ${UUID_RE} AND (er.result_json->>'questionId') IS NOT NULL`,
    ],
    state: `INSERT INTO ${MV_STATE} (source_schema, row_count, rebuilt_at, refreshed_at) VALUES ($1, $2, now(), now())
            ON CONFLICT (source_schema) DO UPDATE SET row_count = EXCLUDED.row_count, rebuilt_at = now(), refreshed_at = now()`,
  };
}

/** The empty copy, with exactly the view's columns, names and types (CONTRACT.md section 1). */
export function createCopySql(schema: string, name: string): string {
  return `CREATE TABLE ${qualified(schema, name)} AS\n${v1SelectSql(schema)}\nWITH NO DATA`;
}

/** Built after the rows are in (faster than maintaining them row by row), under names renamed at the swap. */
export function copyIndexesSql(schema: string, name: string): string[] {
  const rel = qualified(schema, name);
  return [
    `CREATE UNIQUE INDEX ${quoteIdent(`${name}_id_idx`)} ON ${rel} (id)`,
    `CREATE INDEX ${quoteIdent(`${name}_student_completed_idx`)} ON ${rel} (student_id, completed_at)`,
  ];
}

/** The swap: the only statements that take an ACCESS EXCLUSIVE lock, on the old materialized view, at the very end. */
export function swapSql(schema: string, name: string): string[] {
  return [
    `DROP MATERIALIZED VIEW ${qualified(schema, 'attempt_mv')}`,
    `ALTER TABLE ${qualified(schema, name)} RENAME TO ${quoteIdent('attempt_mv')}`,
    `ALTER INDEX ${qualified(schema, `${name}_id_idx`)} RENAME TO ${quoteIdent(ATTEMPT_MV_ID_INDEX)}`,
    `ALTER INDEX ${qualified(schema, `${name}_student_completed_idx`)} RENAME TO ${quoteIdent(ATTEMPT_MV_STUDENT_INDEX)}`,
  ];
}

export function markCopySql(schema: string, name: string): string {
  return `COMMENT ON TABLE ${qualified(schema, name)} IS '${TABLE_COPY_COMMENT}'`;
}

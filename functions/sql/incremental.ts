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
import { CHANGES, CURSORS, DDL_EVENTS, CAPTURE_SETTINGS, captureObjectsSql } from './capture.ts';
import { V1_COLUMNS } from '../contract/checks.ts';

const OPS = quoteIdent(OPS_SCHEMA);
export { CHANGES, CURSORS, DDL_EVENTS, CAPTURE_SETTINGS, CAPTURE_TRIGGERS, CAPTURE_EVENTS } from './capture.ts';
/**
 * Legacy student ids and the uuid the view gives them. Two legacy ids can share a uuid (48 bits of
 * md5), and a uuid-shaped id can equal a legacy id's uuid: the copy cannot tell their rows apart,
 * so a refresh that deletes one student's uuid must recompute every raw id behind it.
 */
export const LEGACY_STUDENTS = `${OPS}.attempt_mv_legacy_students`;
/**
 * The copy's row count, kept in step with each refresh so an hourly run need not count 2M rows;
 * the view definition it was last verified against; and where the rotating fidelity sample is.
 */
export const MV_STATE = `${OPS}.attempt_mv_state`;

/** The marker that tells our table-backed copy from any other table called attempt_mv. */
export const TABLE_COPY_COMMENT = 'attempt-ops: table-backed copy of attempt, maintained by refresh-mv (incremental)';
export const CAPTURED_TABLES = ['exam_results', 'questions'] as const;
/** The refresh's name in the change log's cursors. */
export const REFRESH_CONSUMER = 'refresh-mv';

/**
 * What the least-privilege roles need of the capture's objects (functions/sql/roles.ts grants
 * them where they exist). Nobody but their owner may write the log or the cursors directly: the
 * consumers advance through these SECURITY DEFINER functions, which check who calls them.
 */
export const CAPTURE_PRIVILEGES = {
  /** SELECT for the monitor, maintainer and operator roles. */
  readable: [CHANGES, CURSORS, DDL_EVENTS, CAPTURE_SETTINGS, LEGACY_STUDENTS, MV_STATE, `${OPS}.attempt_changes_pending`, `${OPS}.open_findings`],
  /** SELECT, INSERT, UPDATE, DELETE for the maintainer: refresh-mv's own bookkeeping, not audit. */
  maintainerWritable: [LEGACY_STUDENTS, MV_STATE],
  /** EXECUTE for the maintainer (signatures as to_regprocedure reads them). */
  maintainerFunctions: [
    `${OPS}.capture_consume(text, text)`, `${OPS}.capture_prune(text)`, `${OPS}.capture_register(text, text)`,
    `${OPS}.capture_unregister(text, text)`, `${OPS}.capture_mark_rebuild(text, text)`, `${OPS}.capture_status(text)`,
  ],
  /** EXECUTE for the monitor. */
  monitorFunctions: [
    `${OPS}.capture_prune(text)`, `${OPS}.capture_status(text)`, `${OPS}.capture_consume(text, text)`, `${OPS}.capture_register(text, text)`,
    `${OPS}.capture_peek(text, text)`, `${OPS}.capture_advance(text, text, text)`,
    `${OPS}.findings_merge(text, text, boolean, text[], boolean, jsonb)`,
  ],
} as const;

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

/** refresh-mv's own tables beside the capture's log. */
export function copyStateTablesSql(): string {
  return `
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
);
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS view_md5 text;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS incremental_ready boolean NOT NULL DEFAULT true;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS verify_position uuid;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS verify_lap_started_at timestamptz;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS full_verified_at timestamptz;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS verified_at timestamptz;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS verified_students integer;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS divergent_rows bigint NOT NULL DEFAULT 0;
ALTER TABLE ${MV_STATE} ADD COLUMN IF NOT EXISTS verify_details jsonb NOT NULL DEFAULT '{}'::jsonb`;
}

/** Everything the capture and the copy's bookkeeping need, in order (the event triggers apart: superuser). */
export function captureInstallSql(): string[] {
  return [...captureObjectsSql(), copyStateTablesSql()];
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
      `CREATE TEMP TABLE attempt_refresh_consumed (students text[], question_ids integer[], full_rebuild boolean, reason text) ON COMMIT DROP`,
      `INSERT INTO ${CONSUMED} SELECT students, question_ids, full_rebuild, reason FROM ${OPS}.capture_consume('${REFRESH_CONSUMER}', $1)`,
    ],
    summary: `SELECT count(*)::int AS batches, coalesce(bool_or(full_rebuild), false) AS full_rebuild,
                     (SELECT string_agg(DISTINCT reason, '; ') FROM ${CONSUMED} WHERE full_rebuild) AS rebuild_reason,
                     (SELECT incremental_ready FROM ${MV_STATE} WHERE source_schema = $1) AS incremental_ready,
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
 * autovacuum). The change log is consumed first, in the same snapshot the rows are read in. The
 * rows come from the view itself, by column name, so the copy follows whatever the view now says
 * (a CREATE OR REPLACE VIEW, a renamed base column); the legacy map, which only the incremental
 * path needs and which reads the base tables by the V1 names, is rebuilt only when the view is the
 * V1 text.
 */
export function fullRebuildSql(schema: string, copy: string): { consume: string; delete: string; insert: string; legacy: string[]; clearLegacy: string; state: string } {
  const er = qualified(schema, 'exam_results');
  const cols = V1_COLUMNS.map((c) => quoteIdent(c.name)).join(', ');
  return {
    consume: `SELECT count(*)::int AS n FROM ${OPS}.capture_consume('${REFRESH_CONSUMER}', $1)`,
    delete: `DELETE FROM ${copy}`,
    insert: `INSERT INTO ${copy} (${cols})\nSELECT ${cols} FROM ${qualified(schema, 'attempt')}`,
    legacy: [
      `DELETE FROM ${LEGACY_STUDENTS} WHERE source_schema = $1`,
      `INSERT INTO ${LEGACY_STUDENTS} (source_schema, raw_student, student_id)
       SELECT DISTINCT $1, er.student_id, ${studentUuidSql('er.student_id')} FROM ${er} er
        WHERE er.student_id !~ ${UUID_RE} AND (er.result_json->>'questionId') IS NOT NULL`,
    ],
    clearLegacy: `DELETE FROM ${LEGACY_STUDENTS} WHERE source_schema = $1`,
    // A rebuild is verified by construction: the copy is the view, in this snapshot.
    state: `INSERT INTO ${MV_STATE} (source_schema, row_count, rebuilt_at, refreshed_at, view_md5, incremental_ready, divergent_rows, verified_at, verify_details)
            VALUES ($1, $2, now(), now(), $3, $4, 0, now(), '{"by": "rebuild"}'::jsonb)
            ON CONFLICT (source_schema) DO UPDATE SET row_count = EXCLUDED.row_count, rebuilt_at = now(), refreshed_at = now(),
              view_md5 = EXCLUDED.view_md5, incremental_ready = EXCLUDED.incremental_ready, divergent_rows = 0, verified_at = now(),
              verify_details = EXCLUDED.verify_details`,
  };
}

/** The registered cursor of refresh-mv for the schema, or none. */
export const CURSOR_EXISTS_SQL = `SELECT EXISTS (SELECT 1 FROM ${CURSORS} WHERE consumer = '${REFRESH_CONSUMER}' AND source_schema = $1) AS registered`;
export const REGISTER_SQL = `SELECT ${OPS}.capture_register('${REFRESH_CONSUMER}', $1)`;
export const UNREGISTER_SQL = `SELECT ${OPS}.capture_unregister('${REFRESH_CONSUMER}', $1)`;
export const PRUNE_SQL = `SELECT ${OPS}.capture_prune($1) AS pruned`;
export const MARK_REBUILD_SQL = `SELECT ${OPS}.capture_mark_rebuild($1, $2)`;
export const CAPTURE_STATUS_SQL = `SELECT problem, detail FROM ${OPS}.capture_status($1)`;

/**
 * Is the view still the V1 text? Compared as PostgreSQL deparses both (pg_get_viewdef), so
 * whitespace and qualification do not matter. The reference is a temporary view of v1SelectSql,
 * made inside a savepoint: if the base tables no longer have the V1 columns it cannot even be
 * created, and the view is not V1 either.
 */
export function viewCheckSql(schema: string): { md5: string; savepoint: string; reference: string; compare: string; release: string; rollback: string } {
  const view = `'${qualified(schema, 'attempt').replace(/'/g, "''")}'`;
  return {
    md5: `SELECT md5(pg_get_viewdef(to_regclass(${view}))) AS md5`,
    savepoint: 'SAVEPOINT attempt_v1_check',
    reference: `CREATE TEMP VIEW attempt_v1_reference AS\n${v1SelectSql(schema)}`,
    compare: `SELECT pg_get_viewdef('pg_temp.attempt_v1_reference'::regclass) = pg_get_viewdef(to_regclass(${view})) AS v1`,
    release: 'ROLLBACK TO SAVEPOINT attempt_v1_check',
    rollback: 'ROLLBACK TO SAVEPOINT attempt_v1_check',
  };
}

/**
 * Columns of the copy except attempt_no, and the tie-group key: rows of one raw student and item
 * that share a completed_at get their attempt_no in no fixed order, in the view as in the copy.
 * So two row sets are equal, ties as multisets, when the rows without attempt_no are equal as
 * multisets and so are the (student_id, item_id, completed_at, attempt_no) tuples.
 */
const PLAIN_COLS = V1_COLUMNS.filter((c) => c.name !== 'attempt_no').map((c) => quoteIdent(c.name)).join(', ');
const TIE_COLS = ['student_id', 'item_id', 'completed_at', 'attempt_no'].map(quoteIdent).join(', ');

/** Rows that differ between two row sets (as SQL relations), ties compared as multisets. */
export function divergenceSql(a: string, b: string): string {
  return `WITH a AS (${a}), b AS (${b}),
  plain_a AS (SELECT ${PLAIN_COLS} FROM a EXCEPT ALL SELECT ${PLAIN_COLS} FROM b),
  plain_b AS (SELECT ${PLAIN_COLS} FROM b EXCEPT ALL SELECT ${PLAIN_COLS} FROM a),
  tie_a AS (SELECT ${TIE_COLS} FROM a EXCEPT ALL SELECT ${TIE_COLS} FROM b),
  tie_b AS (SELECT ${TIE_COLS} FROM b EXCEPT ALL SELECT ${TIE_COLS} FROM a)
  SELECT greatest((SELECT count(*) FROM plain_a) + (SELECT count(*) FROM tie_a), (SELECT count(*) FROM plain_b) + (SELECT count(*) FROM tie_b))::bigint AS divergent,
         (SELECT (array_agg(DISTINCT x.student_id::text))[1:10] FROM (SELECT student_id FROM plain_a UNION ALL SELECT student_id FROM plain_b
                 UNION ALL SELECT student_id FROM tie_a UNION ALL SELECT student_id FROM tie_b) x) AS students`;
}

export const VERIFY = 'pg_temp.attempt_verify_students';
export const VERIFY_KEYS = 'pg_temp.attempt_verify_keys';

/**
 * The rotating fidelity sample: the next students (by uuid) after the last position, the raw ids
 * behind them, and the comparison of their copy rows with the view's rows for those raw ids. The
 * sample takes the last position ($1, null: from the start) and the sample size ($2); the keys, the schema ($1).
 */
export function verifySql(schema: string, copy: string): { sample: string[]; keys: string[]; compare: string; state: string } {
  return {
    sample: [
      `CREATE TEMP TABLE attempt_verify_students (student_id uuid PRIMARY KEY) ON COMMIT DROP`,
      `INSERT INTO ${VERIFY} SELECT DISTINCT t.student_id FROM ${copy} t
        WHERE t.student_id IS NOT NULL AND ($1::uuid IS NULL OR t.student_id > $1::uuid) ORDER BY t.student_id LIMIT $2`,
      `ANALYZE ${VERIFY}`,
    ],
    keys: [
      `CREATE TEMP TABLE attempt_verify_keys (student_id text) ON COMMIT DROP`,
      `INSERT INTO ${VERIFY_KEYS} SELECT v.student_id::text FROM ${VERIFY} v
       UNION SELECT m.raw_student FROM ${LEGACY_STUDENTS} m WHERE m.source_schema = $1 AND m.student_id IN (SELECT student_id FROM ${VERIFY})`,
      `ANALYZE ${VERIFY_KEYS}`,
    ],
    compare: divergenceSql(
      `SELECT * FROM ${copy} t WHERE t.student_id IN (SELECT student_id FROM ${VERIFY})`,
      // Only the rows of those uuids: a raw id in the keys can belong to another uuid's student only
      // by the widening, and those rows are in the copy under that other uuid.
      `SELECT * FROM (${v1RestrictedSql(schema, `er.student_id IN (SELECT k.student_id FROM ${VERIFY_KEYS} k)`)}) v WHERE v.student_id IN (SELECT student_id FROM ${VERIFY})`,
    ) + `, (SELECT count(*) FROM ${VERIFY})::int AS sampled, (SELECT max(student_id::text) FROM ${VERIFY}) AS last_student`,
    state: `UPDATE ${MV_STATE} SET verified_at = now(), verified_students = $2, divergent_rows = $3, verify_position = $4,
              verify_lap_started_at = CASE WHEN $5 THEN now() ELSE coalesce(verify_lap_started_at, now()) END,
              full_verified_at = CASE WHEN $5 THEN coalesce(verify_lap_started_at, now()) ELSE full_verified_at END,
              verify_details = $6
            WHERE source_schema = $1`,
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

/**
 * A view over the view, in attempt_ops: the dependency the materialized view used to give, so that
 * `DROP VIEW attempt` fails without CASCADE while the table-backed copy exists.
 */
export function viewGuardSql(schema: string): string {
  const name = schema.length <= 45 ? `attempt_mv_source_${schema}` : `attempt_mv_source_${schema.slice(0, 20)}`;
  return `CREATE OR REPLACE VIEW ${OPS}.${quoteIdent(name)} AS SELECT * FROM ${qualified(schema, 'attempt')} WHERE false`;
}

export function markCopySql(schema: string, name: string): string {
  return `COMMENT ON TABLE ${qualified(schema, name)} IS '${TABLE_COPY_COMMENT}'`;
}

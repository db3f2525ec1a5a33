/**
 * The change capture (docs/INCREMENTAL_REFRESH.md, "Change capture"): the log of what each
 * application statement touched, the consumers' cursors into it, and the DDL watcher.
 *
 * Everything that must keep working while the tables change under it lives in the database as
 * PL/pgSQL, not in TypeScript: an event trigger that regenerates the capture function after a
 * column rename, or puts the triggers on a partition attached at 3 a.m., cannot call back into
 * Node. TypeScript only calls attempt_ops.capture_install(), capture_status(), capture_consume()
 * and capture_prune().
 *
 * Guarantees, and how each is kept:
 * - A write never fails because of the capture: the generated trigger function reads the columns
 *   it needs by the names they have now (regenerated from their attnums after a rename), tells
 *   exam_results from questions by a trigger argument (not by a table name a rename changes), and
 *   catches every error, turning it into a "full rebuild due" row, or into nothing when even that
 *   row cannot be written (the capture check then reports why).
 * - A write is never missed silently: the triggers are ENABLE ALWAYS (they fire under
 *   session_replication_role = replica), sit on every partition and inheritance child (new ones
 *   get them from the event trigger), and any DDL on the watched tables, their children or the
 *   view marks a rebuild, since ATTACH/DETACH/DISABLE TRIGGER change what the view returns
 *   without any DML firing a trigger.
 * - Only the owner may lock or drop the log: nobody else has more than SELECT on it, and a view
 *   over it makes DROP TABLE fail without CASCADE.
 * - No consumer ever skips a change: a change row carries the id of the transaction that wrote it,
 *   and a cursor is a snapshot (pg_snapshot). A consumer reads the rows its transaction sees that
 *   its previous snapshot did not, so a transaction that took a lower sequence value but commits
 *   later is read by the next run, not skipped. Rows every cursor has passed are pruned.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { quoteIdent } from '../db/identifiers.ts';
import { findingsSql } from './findings.ts';

const OPS = quoteIdent(OPS_SCHEMA);
export const CHANGES = `${OPS}.attempt_changes`;
export const CURSORS = `${OPS}.capture_cursors`;
export const DDL_EVENTS = `${OPS}.ddl_events`;
export const CAPTURE_SETTINGS = `${OPS}.capture_settings`;
/** A view over the log: it also makes `DROP TABLE attempt_changes` fail without CASCADE. */
export const CHANGES_PENDING = `${OPS}.attempt_changes_pending`;
export const EVENT_TRIGGER_END = 'attempt_ops_capture_ddl_end';
export const EVENT_TRIGGER_DROP = 'attempt_ops_capture_sql_drop';
export const CAPTURE_TRIGGER_PREFIX = 'attempt_ops_capture_';
export const CAPTURE_EVENTS = ['insert', 'update', 'delete', 'truncate'] as const;
export const CAPTURE_TRIGGERS = CAPTURE_EVENTS.map((e) => `${CAPTURE_TRIGGER_PREFIX}${e}`);
/** Consumers of the log; each keeps its own cursor per watched schema. */
export const CONSUMERS = ['refresh-mv', 'health-check'] as const;
export type Consumer = (typeof CONSUMERS)[number];

/** The SQLSTATE our functions raise for a caller that may not act as that consumer. */
const DENIED = '42501';

export function captureTablesSql(): string {
  return `
CREATE TABLE IF NOT EXISTS ${CHANGES} (
  xid           xid8 NOT NULL DEFAULT pg_current_xact_id(),
  source_schema text NOT NULL,
  source_table  text NOT NULL,
  students      text[],
  question_ids  integer[],
  full_rebuild  boolean NOT NULL DEFAULT false,
  reason        text,
  captured_at   timestamptz NOT NULL DEFAULT now()
);
-- A log made by an earlier version has a bigserial id and no xid: its rows get the xid of this
-- statement, so the next consumer reads them once more (recomputing a student twice is harmless).
ALTER TABLE ${CHANGES} ADD COLUMN IF NOT EXISTS xid xid8 NOT NULL DEFAULT pg_current_xact_id();
ALTER TABLE ${CHANGES} ADD COLUMN IF NOT EXISTS reason text;
-- No index: every application statement would pay for its upkeep, and the log only ever holds
-- what its consumers have not passed yet (pruned after each refresh), which they read whole.
DROP INDEX IF EXISTS ${OPS}.attempt_changes_schema_xid_idx;
-- Every column of the log appears here, so that no column of it can be dropped or retyped without
-- CASCADE, which drops this view: the capture function writes only while the view exists.
CREATE OR REPLACE VIEW ${CHANGES_PENDING} AS
  SELECT source_schema, count(*) AS changes, min(captured_at) AS oldest, bool_or(full_rebuild) AS full_rebuild_due,
         count(DISTINCT source_table) AS tables, count(students) AS student_batches, count(question_ids) AS question_batches,
         count(reason) AS with_reason, count(xid) AS with_xid
    FROM ${CHANGES} GROUP BY source_schema;
CREATE TABLE IF NOT EXISTS ${CURSORS} (
  consumer      text NOT NULL,
  source_schema text NOT NULL,
  snapshot      pg_snapshot NOT NULL,
  advanced_at   timestamptz NOT NULL DEFAULT now(),
  advanced_by   text NOT NULL DEFAULT session_user,
  PRIMARY KEY (consumer, source_schema)
);
CREATE TABLE IF NOT EXISTS ${CAPTURE_SETTINGS} (
  source_schema text PRIMARY KEY,
  enabled       boolean NOT NULL,
  -- The watched tables by oid, and the columns the capture reads by attnum: both survive renames.
  tables        jsonb NOT NULL DEFAULT '{}'::jsonb,
  columns       jsonb NOT NULL DEFAULT '{}'::jsonb,
  -- The column names the current capture function was generated with.
  generated     jsonb NOT NULL DEFAULT '{}'::jsonb,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  updated_by    text NOT NULL DEFAULT session_user
);
CREATE TABLE IF NOT EXISTS ${DDL_EVENTS} (
  id               bigserial PRIMARY KEY,
  at               timestamptz NOT NULL DEFAULT now(),
  source_schema    text NOT NULL,
  who              text NOT NULL DEFAULT session_user,
  role             text NOT NULL DEFAULT current_user,
  application_name text DEFAULT current_setting('application_name', true),
  client_addr      inet DEFAULT inet_client_addr(),
  command_tag      text NOT NULL,
  object_type      text,
  object_identity  text,
  rebuild_marked   boolean NOT NULL DEFAULT false,
  note             text
);
CREATE INDEX IF NOT EXISTS ddl_events_schema_at_idx ON ${DDL_EVENTS} (source_schema, at)`;
}

/**
 * Who may act as a consumer: refresh-mv's cursor belongs to the maintainer role, the health
 * check's to the monitor role; the owner of attempt_ops (and superusers) may act as any. A role
 * that does not exist counts as "not a member" (pg_has_role would raise).
 */
function mayConsumeSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_may_consume(p_consumer text) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
  SELECT pg_has_role(session_user, (SELECT nspowner FROM pg_namespace WHERE nspname = '${OPS_SCHEMA}'), 'MEMBER')
      OR EXISTS (SELECT 1 FROM pg_roles r
                  WHERE r.rolname = CASE WHEN p_consumer = 'refresh-mv' THEN 'attempt_ops_maintainer'
                                         WHEN p_consumer = 'health-check' THEN 'attempt_ops_monitor' END
                    AND pg_has_role(session_user, r.oid, 'MEMBER'))
$f$`;
}

/**
 * Registers a consumer at "now", in a transaction of its own that commits before the consumer's
 * first read: a prune that runs meanwhile then either sees the cursor, or deletes only rows of
 * transactions that ended before the consumer's first snapshot (which therefore sees them).
 */
function registerSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_register(p_consumer text, p_schema text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF NOT ${OPS}.capture_may_consume(p_consumer) THEN
    RAISE EXCEPTION 'role % may not register the % cursor of the change log', session_user, p_consumer USING ERRCODE = '${DENIED}';
  END IF;
  INSERT INTO ${CURSORS} (consumer, source_schema, snapshot) VALUES (p_consumer, p_schema, pg_current_snapshot())
  ON CONFLICT (consumer, source_schema) DO UPDATE SET snapshot = EXCLUDED.snapshot, advanced_at = now(), advanced_by = session_user;
END
$f$;
CREATE OR REPLACE FUNCTION ${OPS}.capture_unregister(p_consumer text, p_schema text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF NOT ${OPS}.capture_may_consume(p_consumer) THEN
    RAISE EXCEPTION 'role % may not drop the % cursor of the change log', session_user, p_consumer USING ERRCODE = '${DENIED}';
  END IF;
  DELETE FROM ${CURSORS} WHERE consumer = p_consumer AND source_schema = p_schema;
END
$f$`;
}

/** The start of a reader of the log: who may read as that consumer, and its previous snapshot. */
function readCursorSql(): string {
  return `DECLARE
  previous pg_snapshot;
BEGIN
  IF NOT ${OPS}.capture_may_consume(p_consumer) THEN
    RAISE EXCEPTION 'role % may not read the change log as %', session_user, p_consumer USING ERRCODE = '${DENIED}';
  END IF;
  SELECT c.snapshot INTO previous FROM ${CURSORS} c WHERE c.consumer = p_consumer AND c.source_schema = p_schema;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'the % cursor of the change log for schema % is not registered', p_consumer, p_schema USING ERRCODE = '55000';
  END IF;`;
}

/**
 * The changes this transaction sees and the consumer's previous snapshot did not, and the cursor
 * moved to this transaction's snapshot. Run it in a REPEATABLE READ transaction, so that what the
 * consumer computes and what it consumed are one snapshot; a change that commits later stays for
 * the next run, whatever its position in the table.
 */
function consumeSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_consume(p_consumer text, p_schema text)
RETURNS TABLE (students text[], question_ids integer[], full_rebuild boolean, reason text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
${readCursorSql()}
  RETURN QUERY
    SELECT l.students, l.question_ids, l.full_rebuild, l.reason FROM ${CHANGES} l
     WHERE l.source_schema = p_schema AND l.xid >= pg_snapshot_xmin(previous)
       AND NOT pg_visible_in_snapshot(l.xid, previous);
  UPDATE ${CURSORS} c SET snapshot = pg_current_snapshot(), advanced_at = now(), advanced_by = session_user
   WHERE c.consumer = p_consumer AND c.source_schema = p_schema;
END
$f$`;
}

/**
 * For a consumer that reads in one transaction and moves on in another (the health check: its
 * checks run in transactions of their own, and it moves its cursor only when they all measured):
 * what changed between the cursor and this statement's snapshot, summed up in one row, and that
 * snapshot, to hand back to capture_advance. STABLE: one snapshot for the whole function.
 */
function peekSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_peek(p_consumer text, p_schema text)
RETURNS TABLE (snapshot text, students text[], null_student boolean, question_ids integer[], full_rebuild boolean, reasons text, batches integer)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
${readCursorSql()}
  RETURN QUERY
    WITH l AS (SELECT * FROM ${CHANGES} x WHERE x.source_schema = p_schema AND x.xid >= pg_snapshot_xmin(previous)
                 AND NOT pg_visible_in_snapshot(x.xid, previous))
    SELECT pg_current_snapshot()::text,
           coalesce((SELECT array_agg(DISTINCT u.s) FROM l, unnest(l.students) u(s) WHERE u.s IS NOT NULL), '{}'),
           EXISTS (SELECT 1 FROM l, unnest(l.students) u(s) WHERE u.s IS NULL),
           coalesce((SELECT array_agg(DISTINCT u.q) FROM l, unnest(l.question_ids) u(q)), '{}'),
           coalesce((SELECT bool_or(l.full_rebuild) FROM l), false),
           (SELECT string_agg(DISTINCT l.reason, '; ') FROM l WHERE l.full_rebuild),
           (SELECT count(*)::int FROM l);
END
$f$;
CREATE OR REPLACE FUNCTION ${OPS}.capture_advance(p_consumer text, p_schema text, p_snapshot text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF NOT ${OPS}.capture_may_consume(p_consumer) THEN
    RAISE EXCEPTION 'role % may not move the % cursor of the change log', session_user, p_consumer USING ERRCODE = '${DENIED}';
  END IF;
  -- Forward only: a cursor never goes back to re-read, nor is set past what was read.
  UPDATE ${CURSORS} c SET snapshot = p_snapshot::pg_snapshot, advanced_at = now(), advanced_by = session_user
   WHERE c.consumer = p_consumer AND c.source_schema = p_schema
     AND pg_snapshot_xmin(p_snapshot::pg_snapshot) >= pg_snapshot_xmin(c.snapshot)
     AND pg_snapshot_xmax(p_snapshot::pg_snapshot) <= pg_snapshot_xmax(pg_current_snapshot());
END
$f$`;
}

/**
 * Deletes the rows every cursor of the schema has passed, or, with no cursor, every row of a
 * finished transaction. Autocommit only (a REPEATABLE READ caller could fail on a row another
 * prune deleted). Returns the number of rows deleted.
 */
function pruneSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_prune(p_schema text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  horizon xid8;
  n bigint;
BEGIN
  SELECT coalesce(min(pg_snapshot_xmin(c.snapshot)), pg_snapshot_xmin(pg_current_snapshot())) INTO horizon
    FROM ${CURSORS} c WHERE c.source_schema = p_schema;
  DELETE FROM ${CHANGES} l WHERE l.source_schema = p_schema AND l.xid < horizon;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$f$`;
}

/** Marks a full rebuild due for the schema's consumers (mv_fidelity found a divergence, say). */
function markRebuildSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_mark_rebuild(p_schema text, p_reason text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
BEGIN
  IF NOT ${OPS}.capture_may_consume('refresh-mv') THEN
    RAISE EXCEPTION 'role % may not mark a rebuild', session_user USING ERRCODE = '${DENIED}';
  END IF;
  INSERT INTO ${CHANGES} (source_schema, source_table, full_rebuild, reason) VALUES (p_schema, 'attempt_mv', true, left(p_reason, 500));
END
$f$`;
}

/**
 * The watched tables of a schema and every partition and inheritance child below them, with the
 * role each plays ('exam_results' or 'questions'). From the oids recorded at install, so a renamed
 * table is still itself; by name for a schema never installed.
 */
function watchedRelationsSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_relations(p_schema text)
RETURNS TABLE (rel oid, role text, depth int)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
  WITH RECURSIVE roots AS (
    -- A recorded oid that no longer exists (the table was dropped and made again) gives way to the name.
    SELECT coalesce((SELECT c.oid FROM pg_class c WHERE c.oid = (s.tables->>'exam_results')::oid), to_regclass(format('%I.exam_results', p_schema))::oid) AS rel, 'exam_results' AS role
      FROM (SELECT (SELECT tables FROM ${CAPTURE_SETTINGS} WHERE source_schema = p_schema) AS tables) s
    UNION ALL
    SELECT coalesce((SELECT c.oid FROM pg_class c WHERE c.oid = (s.tables->>'questions')::oid), to_regclass(format('%I.questions', p_schema))::oid), 'questions'
      FROM (SELECT (SELECT tables FROM ${CAPTURE_SETTINGS} WHERE source_schema = p_schema) AS tables) s
  ), tree AS (
    SELECT r.rel, r.role, 0 AS depth FROM roots r JOIN pg_class c ON c.oid = r.rel
    UNION
    SELECT i.inhrelid, t.role, t.depth + 1 FROM tree t JOIN pg_inherits i ON i.inhparent = t.rel
  )
  SELECT rel, role, depth FROM tree
$f$`;
}

/**
 * Generates the schema's capture function from the columns' current names, and puts the four
 * triggers on every watched relation that lacks them (ENABLE ALWAYS). p_repair: also re-create
 * dropped triggers and re-enable disabled ones (bootstrap, an owner's refresh); without it (the
 * event trigger) only relations with none of our triggers get them, so a DBA's deliberate DISABLE
 * is recorded and reported, not undone behind their back. Returns what it did, one line each.
 */
function installSql(): string {
  const events = CAPTURE_EVENTS.map((e) => `'${e}'`).join(', ');
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_function_name(p_schema text) RETURNS text
LANGUAGE sql IMMUTABLE AS $f$
  SELECT CASE WHEN length(p_schema) <= 50 THEN 'capture_' || p_schema ELSE 'capture_' || left(md5(p_schema), 16) END
$f$;
CREATE OR REPLACE FUNCTION ${OPS}.capture_install(p_schema text, p_repair boolean) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET attempt_ops.capture_ddl = 'on' AS $f$
DECLARE
  er oid;
  qs oid;
  cols jsonb;
  names jsonb;
  fname text := ${OPS}.capture_function_name(p_schema);
  lit text := quote_literal(p_schema);
  done text[] := '{}';
  body text;
  er_branch text;
  q_branch text;
  r record;
  ev text;
  t record;
  missing text[];
BEGIN
  SELECT coalesce((SELECT c.oid FROM pg_class c WHERE c.oid = (s.tables->>'exam_results')::oid), to_regclass(format('%I.exam_results', p_schema))::oid),
         coalesce((SELECT c.oid FROM pg_class c WHERE c.oid = (s.tables->>'questions')::oid), to_regclass(format('%I.questions', p_schema))::oid),
         CASE WHEN EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = (s.tables->>'exam_results')::oid) THEN s.columns END
    INTO er, qs, cols
    FROM (SELECT (SELECT tables FROM ${CAPTURE_SETTINGS} WHERE source_schema = p_schema) AS tables,
                 (SELECT columns FROM ${CAPTURE_SETTINGS} WHERE source_schema = p_schema) AS columns) s;
  IF er IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = er) THEN
    RAISE EXCEPTION '%.exam_results does not exist', p_schema USING ERRCODE = '42P01';
  END IF;
  IF qs IS NULL OR NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = qs) THEN
    RAISE EXCEPTION '%.questions does not exist', p_schema USING ERRCODE = '42P01';
  END IF;
  IF cols IS NULL OR cols = '{}'::jsonb THEN
    SELECT jsonb_object_agg(k.key, (SELECT a.attnum FROM pg_attribute a WHERE a.attrelid = k.rel AND a.attname = k.name AND NOT a.attisdropped))
      INTO cols
      FROM (VALUES ('student_id', er, 'student_id'), ('result_json', er, 'result_json'), ('q_id', qs, 'id'),
                   ('q_item_id', qs, 'item_id'), ('q_question_text', qs, 'question_text'),
                   ('q_correct_answer', qs, 'correct_answer'), ('q_tags', qs, 'tags')) k(key, rel, name);
  END IF;
  SELECT jsonb_object_agg(k.key, (SELECT a.attname FROM pg_attribute a
                                   WHERE a.attrelid = CASE WHEN k.key LIKE 'q\\_%' THEN qs ELSE er END
                                     AND a.attnum = (k.value #>> '{}')::smallint AND NOT a.attisdropped))
    INTO names FROM jsonb_each(cols) k;

  IF EXISTS (SELECT 1 FROM jsonb_each(names) n WHERE n.value = 'null'::jsonb) THEN
    -- A column the capture reads is gone: every statement then asks for a full rebuild, which is
    -- exact whatever the columns are; the capture check reports the missing column.
    er_branch := $b$rebuild := true; why := 'capture: a column it reads is gone';$b$;
    q_branch := er_branch;
  ELSE
    er_branch := format($b$
      IF TG_OP = 'INSERT' THEN
        keys := (SELECT array_agg(DISTINCT r.%1$I::text) FROM new_rows r WHERE (r.%2$I->>'questionId') IS NOT NULL);
      ELSIF TG_OP = 'DELETE' THEN
        keys := (SELECT array_agg(DISTINCT r.%1$I::text) FROM old_rows r WHERE (r.%2$I->>'questionId') IS NOT NULL);
      ELSE
        keys := (SELECT array_agg(DISTINCT k.s) FROM (
          SELECT r.%1$I::text AS s FROM old_rows r WHERE (r.%2$I->>'questionId') IS NOT NULL
          UNION ALL SELECT r.%1$I::text FROM new_rows r WHERE (r.%2$I->>'questionId') IS NOT NULL) k);
      END IF;$b$, names->>'student_id', names->>'result_json');
    q_branch := format($b$
      IF TG_OP = 'INSERT' THEN
        qids := (SELECT array_agg(DISTINCT r.%1$I::int) FROM new_rows r);
      ELSIF TG_OP = 'DELETE' THEN
        qids := (SELECT array_agg(DISTINCT r.%1$I::int) FROM old_rows r);
      ELSE
        qids := (SELECT array_agg(DISTINCT k.id::int) FROM (
          (SELECT r.%1$I AS id, r.%2$I, r.%3$I, r.%4$I, r.%5$I FROM old_rows r EXCEPT SELECT r.%1$I, r.%2$I, r.%3$I, r.%4$I, r.%5$I FROM new_rows r)
          UNION ALL
          (SELECT r.%1$I, r.%2$I, r.%3$I, r.%4$I, r.%5$I FROM new_rows r EXCEPT SELECT r.%1$I, r.%2$I, r.%3$I, r.%4$I, r.%5$I FROM old_rows r)) k);
      END IF;$b$, names->>'q_id', names->>'q_item_id', names->>'q_question_text', names->>'q_correct_answer', names->>'q_tags');
  END IF;

  -- Two phases. Reading the transition tables can fail after a schema change the DDL watcher did
  -- not see: that phase runs in a subtransaction, and a failure becomes "full rebuild due". The
  -- write then runs outside it, so a statement pays for no second transaction id, and it cannot
  -- fail on the log's shape: the log's columns can change only with CASCADE, which drops the
  -- guard view checked here (then nothing is written, and the capture check says why).
  body := format($b$CREATE OR REPLACE FUNCTION ${OPS}.%1$I() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $capture$
DECLARE
  keys text[];
  qids integer[];
  rebuild boolean := false;
  why text;
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    rebuild := true;
    why := 'TRUNCATE ' || TG_TABLE_NAME;
  ELSE
    BEGIN
      IF TG_ARGV[0] = 'questions' THEN
        %3$s
      ELSE
        %4$s
      END IF;
    EXCEPTION WHEN OTHERS THEN
      rebuild := true;
      why := left('capture failed (' || SQLSTATE || '): ' || SQLERRM, 500);
    END;
  END IF;
  IF (keys IS NOT NULL OR qids IS NOT NULL OR rebuild) AND to_regclass('${OPS_SCHEMA}.attempt_changes_pending') IS NOT NULL THEN
    INSERT INTO ${CHANGES} (source_schema, source_table, students, question_ids, full_rebuild, reason)
    VALUES (%2$s, coalesce(TG_ARGV[0], TG_TABLE_NAME), keys, qids, rebuild, why);
  END IF;
  RETURN NULL;
END
$capture$$b$, fname, lit, q_branch, er_branch);
  EXECUTE body;
  EXECUTE format('REVOKE ALL ON FUNCTION ${OPS}.%I() FROM PUBLIC', fname);

  FOR r IN SELECT w.rel, w.role, c.relkind FROM ${OPS}.capture_relations(p_schema) w JOIN pg_class c ON c.oid = w.rel
            WHERE c.relkind IN ('r', 'p') ORDER BY w.role DESC, w.depth, w.rel LOOP
    SELECT array_agg(e) INTO missing FROM unnest(ARRAY[${events}]) e
     WHERE NOT EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = r.rel AND tg.tgname = '${CAPTURE_TRIGGER_PREFIX}' || e
                         AND tg.tgfoid = to_regprocedure(format('${OPS_SCHEMA}.%I()', fname)));
    IF missing IS NOT NULL AND (p_repair OR cardinality(missing) = ${CAPTURE_EVENTS.length}) THEN
      FOREACH ev IN ARRAY missing LOOP
        EXECUTE format('CREATE OR REPLACE TRIGGER %I AFTER %s ON %s %s FOR EACH STATEMENT EXECUTE FUNCTION ${OPS}.%I(%L)',
          '${CAPTURE_TRIGGER_PREFIX}' || ev, upper(ev), r.rel::regclass,
          CASE ev WHEN 'insert' THEN 'REFERENCING NEW TABLE AS new_rows' WHEN 'delete' THEN 'REFERENCING OLD TABLE AS old_rows'
                  WHEN 'update' THEN 'REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows' ELSE '' END,
          fname, r.role);
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', r.rel::regclass, '${CAPTURE_TRIGGER_PREFIX}' || ev);
      END LOOP;
      done := done || format('capture triggers (%s) on %s', array_to_string(missing, ', '), r.rel::regclass);
    END IF;
    IF p_repair THEN
      FOR t IN SELECT tg.tgname FROM pg_trigger tg WHERE tg.tgrelid = r.rel AND tg.tgname LIKE '${CAPTURE_TRIGGER_PREFIX}%' AND tg.tgenabled <> 'A' LOOP
        EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', r.rel::regclass, t.tgname);
        done := done || format('%s on %s enabled always', t.tgname, r.rel::regclass);
      END LOOP;
    END IF;
  END LOOP;

  INSERT INTO ${CAPTURE_SETTINGS} (source_schema, enabled, tables, columns, generated)
  VALUES (p_schema, true, jsonb_build_object('exam_results', er, 'questions', qs), cols, names)
  ON CONFLICT (source_schema) DO UPDATE
     SET enabled = true, tables = EXCLUDED.tables, columns = EXCLUDED.columns, generated = EXCLUDED.generated,
         updated_at = now(), updated_by = session_user;
  RETURN done;
END
$f$;
REVOKE ALL ON FUNCTION ${OPS}.capture_install(text, boolean) FROM PUBLIC`;
}

/** Turns the capture off for a schema: its triggers dropped, its cursors gone, its log emptied. */
function uninstallSql(): string {
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_uninstall(p_schema text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET attempt_ops.capture_ddl = 'on' AS $f$
DECLARE
  r record;
  done text[] := '{}';
BEGIN
  FOR r IN SELECT tg.tgrelid::regclass AS rel, tg.tgname FROM ${OPS}.capture_relations(p_schema) w
             JOIN pg_trigger tg ON tg.tgrelid = w.rel AND tg.tgname LIKE '${CAPTURE_TRIGGER_PREFIX}%' LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', r.tgname, r.rel);
    done := done || format('%s on %s dropped', r.tgname, r.rel);
  END LOOP;
  DELETE FROM ${CURSORS} WHERE source_schema = p_schema;
  DELETE FROM ${CHANGES} WHERE source_schema = p_schema;
  INSERT INTO ${CAPTURE_SETTINGS} (source_schema, enabled) VALUES (p_schema, false)
  ON CONFLICT (source_schema) DO UPDATE SET enabled = false, updated_at = now(), updated_by = session_user;
  RETURN done;
END
$f$;
REVOKE ALL ON FUNCTION ${OPS}.capture_uninstall(text) FROM PUBLIC`;
}

/**
 * The DDL watcher. It records every DDL command on a watched table, one of its partitions or
 * children, the view or attempt_mv (who, when, the command tag), marks a rebuild, regenerates the
 * capture function (a rename) and puts the triggers on a new partition or child. It never raises:
 * a DBA's DDL must not fail because of us.
 */
function eventTriggerFunctionsSql(): string {
  const record = (tag: string, type: string, identity: string) =>
    `INSERT INTO ${DDL_EVENTS} (source_schema, command_tag, object_type, object_identity, rebuild_marked) VALUES (s.source_schema, ${tag}, ${type}, ${identity}, true);`;
  const after = `
      INSERT INTO ${CHANGES} (source_schema, source_table, full_rebuild, reason)
      VALUES (s.source_schema, 'ddl', true, left('DDL: ' || array_to_string(tags, ', '), 500));
      BEGIN
        PERFORM ${OPS}.capture_install(s.source_schema, false);
      EXCEPTION WHEN OTHERS THEN
        INSERT INTO ${DDL_EVENTS} (source_schema, command_tag, note)
        VALUES (s.source_schema, 'attempt-ops capture install', left('could not update the capture after this DDL: ' || SQLERRM, 500));
      END;`;
  // Both watchers: never our own DDL, and once per schema whose capture is on. Any session may set
  // a custom setting, so "our own" also needs the session to be a role that runs our DDL (the
  // owner of attempt_ops or the maintainer): anyone else setting it still has their DDL recorded.
  const watcherHead = `LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  s record;
  c record;
  tags text[];
BEGIN
  IF current_setting('attempt_ops.capture_ddl', true) = 'on' AND ${OPS}.capture_may_consume('refresh-mv') THEN RETURN; END IF;
  FOR s IN SELECT cs.source_schema FROM ${CAPTURE_SETTINGS} cs WHERE cs.enabled LOOP
    tags := '{}';`;
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_ddl_end() RETURNS event_trigger
${watcherHead}
    FOR c IN SELECT d.command_tag, d.object_type, d.object_identity FROM pg_event_trigger_ddl_commands() d
              -- A refresh changes no definition and no source row: nothing the capture could miss.
              WHERE d.command_tag <> 'REFRESH MATERIALIZED VIEW'
                AND ((d.classid = 'pg_class'::regclass
                      AND (d.objid IN (SELECT w.rel FROM ${OPS}.capture_relations(s.source_schema) w)
                           OR d.objid = to_regclass(format('%I.attempt', s.source_schema))
                           OR d.objid = to_regclass(format('%I.attempt_mv', s.source_schema))))
                  OR (d.classid = 'pg_trigger'::regclass
                      AND (SELECT tg.tgrelid FROM pg_trigger tg WHERE tg.oid = d.objid) IN (SELECT w.rel FROM ${OPS}.capture_relations(s.source_schema) w)))
    LOOP
      ${record('c.command_tag', 'c.object_type', 'c.object_identity')}
      tags := tags || c.command_tag;
    END LOOP;
    IF cardinality(tags) > 0 THEN${after}
    END IF;
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'attempt-ops: the DDL watcher failed (%): the capture check will report what it missed', SQLERRM;
END
$f$;
CREATE OR REPLACE FUNCTION ${OPS}.capture_sql_drop() RETURNS event_trigger
${watcherHead}
    FOR c IN SELECT d.object_type, d.object_identity FROM pg_event_trigger_dropped_objects() d
              WHERE d.original
                AND ((d.object_type IN ('table', 'view', 'materialized view') AND d.address_names[1] = s.source_schema
                       AND d.address_names[2] IN ('exam_results', 'questions', 'attempt', 'attempt_mv'))
                  OR (d.object_type = 'trigger' AND d.address_names[1] = s.source_schema AND d.address_names[3] LIKE '${CAPTURE_TRIGGER_PREFIX}%')
                  OR (d.object_type = 'table' AND d.address_names[1] = s.source_schema
                       AND EXISTS (SELECT 1 FROM pg_event_trigger_dropped_objects() t
                                    WHERE t.object_type = 'trigger' AND t.address_names[2] = d.address_names[2]
                                      AND t.address_names[3] LIKE '${CAPTURE_TRIGGER_PREFIX}%'))
                  OR (d.object_type IN ('table', 'view', 'function') AND d.address_names[1] = '${OPS_SCHEMA}'))
    LOOP
      ${record("tg_tag", 'c.object_type', 'c.object_identity')}
      tags := tags || (tg_tag || ' ' || c.object_identity);
    END LOOP;
    IF cardinality(tags) > 0 THEN${after}
    END IF;
  END LOOP;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'attempt-ops: the DDL watcher failed (%): the capture check will report what it missed', SQLERRM;
END
$f$`;
}

/**
 * Event triggers need a superuser to create. ENABLE ALWAYS: DDL under session_replication_role =
 * replica is recorded too. Recreated only when missing, so a second bootstrap is a no-op.
 */
export function eventTriggersSql(): string {
  return `DO $do$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = '${EVENT_TRIGGER_END}') THEN
    CREATE EVENT TRIGGER ${EVENT_TRIGGER_END} ON ddl_command_end EXECUTE FUNCTION ${OPS}.capture_ddl_end();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = '${EVENT_TRIGGER_DROP}') THEN
    CREATE EVENT TRIGGER ${EVENT_TRIGGER_DROP} ON sql_drop EXECUTE FUNCTION ${OPS}.capture_sql_drop();
  END IF;
  ALTER EVENT TRIGGER ${EVENT_TRIGGER_END} ENABLE ALWAYS;
  ALTER EVENT TRIGGER ${EVENT_TRIGGER_DROP} ENABLE ALWAYS;
END $do$`;
}

/**
 * What is wrong with a schema's capture, one row per problem (none: it can be trusted). Read by
 * the capture check and by refresh-mv before it trusts the log. "DDL since the last rebuild"
 * counts only where attempt_mv is the table-backed copy, the one consumer that rebuilds.
 */
function statusSql(): string {
  const events = CAPTURE_EVENTS.map((e) => `'${e}'`).join(', ');
  return `CREATE OR REPLACE FUNCTION ${OPS}.capture_status(p_schema text)
RETURNS TABLE (problem text, detail text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $f$
DECLARE
  st record;
  fn regprocedure;
  r record;
  rebuilt timestamptz;
BEGIN
  SELECT * INTO st FROM ${CAPTURE_SETTINGS} WHERE source_schema = p_schema;
  IF NOT FOUND THEN
    problem := 'not_installed'; detail := format('the change capture is not installed on schema %s: run attempt-ops bootstrap --apply', p_schema); RETURN NEXT;
    RETURN;
  END IF;
  IF NOT st.enabled THEN
    problem := 'turned_off'; detail := 'the change capture is turned off (bootstrap --no-capture)'; RETURN NEXT;
    RETURN;
  END IF;
  fn := to_regprocedure(format('${OPS_SCHEMA}.%I()', ${OPS}.capture_function_name(p_schema)));
  IF fn IS NULL THEN
    problem := 'function_missing'; detail := 'the capture function is gone: run attempt-ops bootstrap --apply'; RETURN NEXT;
  END IF;
  FOR r IN SELECT k.key, k.value AS attnum, st.generated->>k.key AS used,
                  (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = (st.tables->>CASE WHEN k.key LIKE 'q\\_%' THEN 'questions' ELSE 'exam_results' END)::oid
                      AND a.attnum = (k.value #>> '{}')::smallint AND NOT a.attisdropped) AS now_named
             FROM jsonb_each(st.columns) k LOOP
    IF r.now_named IS NULL THEN
      problem := 'column_missing'; detail := format('the column the capture reads as %s is gone: every write now asks for a full rebuild', r.key); RETURN NEXT;
    ELSIF r.used IS DISTINCT FROM r.now_named THEN
      problem := 'function_stale'; detail := format('the capture function reads %s, which is now named %s: run attempt-ops bootstrap --apply', r.used, r.now_named); RETURN NEXT;
    END IF;
  END LOOP;
  FOR r IN SELECT w.role, w.depth, w.rel::regclass::text AS rel, c.relkind, c.relname,
                  (SELECT array_agg(e ORDER BY e) FROM unnest(ARRAY[${events}]) e
                    WHERE NOT EXISTS (SELECT 1 FROM pg_trigger tg WHERE tg.tgrelid = w.rel AND tg.tgname = '${CAPTURE_TRIGGER_PREFIX}' || e AND tg.tgfoid = fn)) AS missing,
                  (SELECT array_agg(tg.tgname || '=' || tg.tgenabled::text ORDER BY tg.tgname) FROM pg_trigger tg
                    WHERE tg.tgrelid = w.rel AND tg.tgname LIKE '${CAPTURE_TRIGGER_PREFIX}%' AND tg.tgenabled <> 'A') AS not_always
             FROM ${OPS}.capture_relations(p_schema) w JOIN pg_class c ON c.oid = w.rel LOOP
    IF r.relkind NOT IN ('r', 'p') THEN
      problem := 'not_covered'; detail := format('%s (relkind %s) is part of %s but cannot carry the capture triggers', r.rel, r.relkind, r.role); RETURN NEXT;
    ELSIF r.missing IS NOT NULL THEN
      problem := 'trigger_missing'; detail := format('%s has no capture trigger for %s', r.rel, array_to_string(r.missing, ', ')); RETURN NEXT;
    END IF;
    IF r.not_always IS NOT NULL THEN
      problem := 'trigger_not_always';
      detail := format('%s: %s (D disabled, O not in replica mode, R only in replica mode): writes are missed', r.rel, array_to_string(r.not_always, ', '));
      RETURN NEXT;
    END IF;
    IF r.depth = 0 AND r.relname <> r.role THEN
      problem := 'renamed'; detail := format('%s is the table attempt-ops reads as %s.%s: rename it back', r.rel, p_schema, r.role); RETURN NEXT;
    END IF;
  END LOOP;
  IF NOT EXISTS (SELECT 1 FROM ${OPS}.capture_relations(p_schema) w WHERE w.role = 'exam_results')
     OR NOT EXISTS (SELECT 1 FROM ${OPS}.capture_relations(p_schema) w WHERE w.role = 'questions') THEN
    problem := 'table_missing'; detail := 'exam_results or questions, as installed, no longer exists'; RETURN NEXT;
  END IF;
  IF (SELECT count(*) FROM pg_event_trigger WHERE evtname IN ('${EVENT_TRIGGER_END}', '${EVENT_TRIGGER_DROP}') AND evtenabled = 'A') < 2 THEN
    problem := 'ddl_watcher';
    detail := 'the DDL event triggers are missing or not enabled always (a superuser runs bootstrap --apply to create them): renames, new partitions and disabled triggers go unnoticed';
    RETURN NEXT;
  END IF;
  IF to_regclass('${OPS_SCHEMA}.attempt_changes') IS NULL THEN
    problem := 'log_missing'; detail := 'attempt_ops.attempt_changes is gone: run attempt-ops bootstrap --apply'; RETURN NEXT;
  ELSIF to_regclass('${OPS_SCHEMA}.attempt_changes_pending') IS NULL THEN
    problem := 'log_unguarded'; detail := 'attempt_ops.attempt_changes_pending is gone, and the capture writes nothing without it: run attempt-ops bootstrap --apply'; RETURN NEXT;
  END IF;
  IF (SELECT c.relkind = 'r' AND obj_description(c.oid, 'pg_class') LIKE 'attempt-ops: table-backed copy%'
        FROM pg_class c WHERE c.oid = to_regclass(format('%I.attempt_mv', p_schema))) THEN
    SELECT m.rebuilt_at INTO rebuilt FROM ${OPS}.attempt_mv_state m WHERE m.source_schema = p_schema;
    FOR r IN SELECT e.at, e.who, e.command_tag, e.object_identity FROM ${DDL_EVENTS} e
              WHERE e.source_schema = p_schema AND e.rebuild_marked AND e.at > coalesce(rebuilt, '-infinity') ORDER BY e.at LIMIT 5 LOOP
      problem := 'ddl_since_rebuild';
      detail := format('%s by %s at %s on %s: attempt_mv is rebuilt by the next refresh', r.command_tag, r.who, r.at, coalesce(r.object_identity, 'a watched object'));
      RETURN NEXT;
    END LOOP;
  END IF;
  FOR r IN SELECT c.consumer, c.advanced_at FROM ${CURSORS} c WHERE c.source_schema = p_schema AND c.advanced_at < now() - interval '2 days' LOOP
    problem := 'consumer_stale'; detail := format('the %s cursor has not moved since %s: the log grows until it does', r.consumer, r.advanced_at); RETURN NEXT;
  END LOOP;
END
$f$`;
}

/** Everything above, in the order it must be made. The event triggers come apart: they need a superuser. */
export function captureObjectsSql(): string[] {
  return [
    `CREATE SCHEMA IF NOT EXISTS ${OPS}`,
    captureTablesSql(),
    mayConsumeSql(),
    registerSql(),
    consumeSql(),
    peekSql(),
    pruneSql(),
    markRebuildSql(),
    watchedRelationsSql(),
    installSql(),
    uninstallSql(),
    eventTriggerFunctionsSql(),
    statusSql(),
    ...findingsSql(),
    `REVOKE ALL ON FUNCTION ${OPS}.capture_register(text, text), ${OPS}.capture_unregister(text, text), ${OPS}.capture_consume(text, text),
       ${OPS}.capture_peek(text, text), ${OPS}.capture_advance(text, text, text),
       ${OPS}.capture_prune(text), ${OPS}.capture_mark_rebuild(text, text), ${OPS}.capture_ddl_end(), ${OPS}.capture_sql_drop() FROM PUBLIC`,
  ];
}

/** The statements that (re)install a schema's capture once its objects exist; run under the install's locks. */
export function captureInstallCallSql(repair: boolean): string {
  return `SELECT ${OPS}.capture_install($1, ${repair ? 'true' : 'false'}) AS done`;
}

/** Locks taken in one order (questions, then exam_results and its children), before the install's DDL needs them. */
export function captureLockSql(schema: string): string {
  return `LOCK TABLE ${quoteIdent(schema)}.questions, ${quoteIdent(schema)}.exam_results IN SHARE ROW EXCLUSIVE MODE`;
}

/**
 * Creates what the other jobs need, idempotently: the attempt_ops schema with job_runs (the run
 * audit) and metric_state (publish-metrics' previous sample), attempt_mv with its unique index on
 * id and its (student_id, completed_at) index, SELECT on attempt_mv for the app role, and the
 * exam_results(completed_at) index the incremental health check reads through.
 *
 * Without `apply` it reads the catalog and reports, per object, whether it exists and the exact
 * SQL it would run; it changes nothing. With `apply` it runs exactly those statements, so a second
 * apply finds everything in place and runs nothing.
 *
 * attempt_mv is created WITH NO DATA (instant, whatever the table size) and then populated by
 * refresh-mv's own code path with a plain refresh: the same advisory lock, timeouts capped by the
 * time left, and a job_runs row that mv_staleness reads, so the new view is neither unreadable
 * nor reported stale until the next scheduled refresh.
 *
 * Once an incremental refresh has converted attempt_mv into its table-backed copy, that table is
 * attempt_mv as far as bootstrap goes: it exists and is populated, its indexes and grant are
 * checked as before, and nothing converts it back. Its change capture is refresh-mv's own to
 * install, since a capture reinstalled without a rebuild would hide the changes it missed.
 *
 * The exam_results index is built CONCURRENTLY (writers keep writing), which cannot run inside a
 * transaction block, so it runs alone, on its own session. A failed concurrent build leaves an
 * INVALID index behind under the same name, which IF NOT EXISTS would then take for done: such an
 * index is dropped (concurrently too) and built again.
 */
import { OPS_SCHEMA, REPORT_VERSION, overallStatus, type ActionReport, type BootstrapReport, type Status } from '../contract/index.ts';
import { AttemptOpsError, classifyDbError, oneLine } from '../db/errors.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';
import { inTransaction } from '../db/pool.ts';
import { TABLE_COPY_COMMENT } from '../sql/incremental.ts';
import {
  ATTEMPT_MV_ID_INDEX, ATTEMPT_MV_STUDENT_INDEX, COMPLETED_AT_INDEX, JOB_RUNS, METRIC_STATE,
  attemptMvCreateSql, attemptMvIdIndexSql, attemptMvStudentIndexSql, completedAtIndexSql,
  jobRunsIndexSql, jobRunsTableSql, metricStateTableSql, opsSchemaCreateSql,
} from '../sql/ops-schema.ts';
import { ROLES, attemptMvOwnerSql, opsGrantsReadySql, rolesSql } from '../sql/roles.ts';
import { ownSessionsSql } from '../sql/own-sessions.ts';
import { auditFunctionsPresentSql, auditFunctionsSql } from '../sql/audit.ts';
import { applyTimeouts, longStatement } from './analyze.ts';
import type { JobDeps } from './deps.ts';
import { REFRESH_STATEMENT_TIMEOUT_MS, inspectMv, runAlone, runRefresh } from './refresh-mv.ts';
import { buildIndexConcurrently, installCapture } from './incremental/capture-install.ts';
import { CAPTURE_STATUS_SQL, STUDENT_INDEX, studentIndexSql } from '../sql/incremental.ts';

/** Problems a bootstrap does not mend: DDL since the last rebuild is refresh-mv's, a stale cursor its consumer's. */
const NOT_BOOTSTRAPS = new Set(['ddl_since_rebuild', 'consumer_stale']);

/**
 * The change capture, as a foundation of every schema bootstrap sets up (functions/sql/capture.ts),
 * and the student index its consumers read exam_results through. Both are owner work on the base
 * tables; the capture is installed with locks taken in one order, a short lock timeout and retries.
 */
async function captureSteps(deps: JobDeps, wanted: boolean): Promise<Step[]> {
  const { rows } = await deps.pool.query<{ has_status: boolean; exam_results: boolean; questions: boolean; superuser: boolean }>(
    `SELECT to_regprocedure('attempt_ops.capture_status(text)') IS NOT NULL AS has_status,
            to_regclass($1) IS NOT NULL AS exam_results, to_regclass($2) IS NOT NULL AS questions,
            (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser`,
    [qualified(deps.schema, 'exam_results'), qualified(deps.schema, 'questions')],
  ).catch((err) => {
    throw classifyDbError(err, 'reading the change capture');
  });
  const r = rows[0]!;
  const object = `${deps.schema}.exam_results, ${deps.schema}.questions`;
  if (!r.exam_results || !r.questions) {
    return [{ object, action: wanted ? 'install change capture' : 'turn off change capture', runner: 'capture', state: 'blocked', message: `${deps.schema}.exam_results or ${deps.schema}.questions does not exist`, sql: [] }];
  }
  const problems = r.has_status ? (await deps.pool.query<{ problem: string; detail: string }>(CAPTURE_STATUS_SQL, [deps.schema])).rows : [{ problem: 'not_installed', detail: 'not installed' }];
  // Without a superuser the DDL watcher cannot be made: reported by the capture check, not redone on every deploy.
  const open = problems.filter((p) => !NOT_BOOTSTRAPS.has(p.problem) && !(p.problem === 'ddl_watcher' && !r.superuser));
  if (!wanted) {
    const installed = !problems.some((p) => p.problem === 'not_installed' || p.problem === 'turned_off');
    return [{
      object, action: 'turn off change capture', runner: 'capture-off', state: installed ? 'missing' : 'exists',
      message: installed ? 'drops the capture triggers, its cursors and its log (asked for with --no-capture)' : 'the change capture is off',
      sql: [`SELECT attempt_ops.capture_uninstall('${deps.schema}')`],
    }];
  }
  const steps: Step[] = [{
    object, action: 'install change capture', runner: 'capture', state: open.length === 0 ? 'exists' : 'missing',
    message: open.length === 0
      ? 'in place: every write to the watched tables and their partitions is logged'
      : `${open.map((p) => p.detail).join('; ')}: statement-level triggers (ENABLE ALWAYS) log the students and questions each write touches into attempt_ops.attempt_changes`,
    sql: ['SELECT attempt_ops.capture_install($1, true)'],
  }];
  const index = (await inspectMv(deps)).studentIndex;
  const { rows: kind } = await deps.pool.query<{ partitioned: boolean }>(`SELECT relkind = 'p' AS partitioned FROM pg_class WHERE oid = to_regclass($1)`, [qualified(deps.schema, 'exam_results')]);
  if (kind[0]?.partitioned && index !== 'valid') {
    steps.push({
      object: `${deps.schema}.${STUDENT_INDEX}`, action: 'create index', runner: 'index', state: 'exists',
      message: 'exam_results is partitioned, and CREATE INDEX CONCURRENTLY cannot build on a partitioned table: create (student_id, completed_at) on each partition CONCURRENTLY, or the incremental refresh scans exam_results',
      sql: [],
    });
    return steps;
  }
  steps.push({
    object: `${deps.schema}.${STUDENT_INDEX}`, action: index === 'invalid' ? 'recreate index' : 'create index', runner: 'index',
    state: index === 'valid' ? 'exists' : 'missing',
    message: index === 'valid' ? 'index exists' : "runbook section 3's (student_id, completed_at) index: the incremental refresh reads the touched students through it (built CONCURRENTLY)",
    sql: studentIndexSql(deps.schema, index === 'invalid'),
  });
  return steps;
}

export interface BootstrapOptions {
  /** Run the statements; without it, only report. */
  apply?: boolean;
  /** statement_timeout of each statement (ms), capped by the time the run has left; default: the session's. */
  statementTimeoutMs?: number;
  /** How long a statement may wait for a lock (ms); default: the session's. */
  lockTimeoutMs?: number;
  /** Also create the least-privilege group roles and their grants (functions/sql/roles.ts). */
  roles?: boolean;
  /**
   * Install the change capture (default true): the triggers that log what each write touches, and
   * runbook section 3's student index that the incremental paths read through. false turns it off
   * (and uninstalls it): data-quality scope then falls back to recent rows, and there is no
   * incremental refresh.
   */
  capture?: boolean;
}

/** What the catalog says, read in one query that takes no lock on any table. */
export interface CatalogState {
  opsSchema: boolean;
  jobRuns: boolean;
  jobRunsIndex: boolean;
  metricState: boolean;
  /** The SECURITY DEFINER functions every audit row is written through (functions/sql/audit.ts). */
  auditFunctions: boolean;
  attemptKind: string | null;
  mvKind: string | null;
  /** attempt_mv is the table-backed copy that incremental refreshes keep (always populated). */
  mvTableCopy: boolean;
  mvPopulated: boolean;
  mvIdIndex: string | null;
  mvStudentIndex: string | null;
  examResults: boolean;
  /** The index named exam_results_completed_at_idx: null when absent. */
  completedAtNamed: { valid: boolean } | null;
  /** Any other valid, non-partial index that leads with completed_at: it serves just as well. */
  completedAtOther: string | null;
  roleExists: boolean;
  mvGranted: boolean;
}

type CatalogRow = {
  ops_schema: boolean; job_runs: boolean; job_runs_index: boolean; metric_state: boolean; audit_functions: boolean;
  attempt_kind: string | null; mv_kind: string | null; mv_table_copy: boolean | null; mv_populated: boolean | null;
  mv_id_index: string | null; mv_student_index: string | null; exam_results: boolean;
  completed_named_valid: boolean | null; completed_other: string | null; role_exists: boolean; mv_granted: boolean | null;
};

/** An index on rel whose leading key columns are exactly cols (by name), valid and without a predicate. */
function indexOnSql(rel: string, cols: string, unique: boolean, exactKeys: boolean): string {
  return `(SELECT i.indexrelid::regclass::text FROM pg_index i
            WHERE i.indrelid = to_regclass(${rel}) AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL
              ${unique ? 'AND i.indisunique' : ''} ${exactKeys ? `AND i.indnkeyatts = cardinality(${cols}::text[])` : ''}
              AND (SELECT array_agg(a.attname::text ORDER BY k.ord) FROM unnest(i.indkey[0:cardinality(${cols}::text[]) - 1]) WITH ORDINALITY k(attnum, ord)
                     JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum) = ${cols}::text[]
            ORDER BY i.indexrelid LIMIT 1)`;
}

export async function readCatalog(deps: JobDeps): Promise<CatalogState> {
  const mv = qualified(deps.schema, 'attempt_mv');
  try {
    const { rows } = await deps.pool.query<CatalogRow>(
      `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AS ops_schema,
              to_regclass($2) IS NOT NULL AS job_runs,
              to_regclass($3) IS NOT NULL AS job_runs_index,
              to_regclass($4) IS NOT NULL AS metric_state,
              ${auditFunctionsPresentSql()} AND to_regprocedure('attempt_ops.own_session_register(text, timestamptz)') IS NOT NULL AS audit_functions,
              (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($5)) AS attempt_kind,
              (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($6)) AS mv_kind,
              (SELECT relispopulated FROM pg_class WHERE oid = to_regclass($6)) AS mv_populated,
              (SELECT relkind = 'r' AND obj_description(oid, 'pg_class') = $10 FROM pg_class WHERE oid = to_regclass($6)) AS mv_table_copy,
              ${indexOnSql('$6', "ARRAY['id']", true, true)} AS mv_id_index,
              ${indexOnSql('$6', "ARRAY['student_id', 'completed_at']", false, false)} AS mv_student_index,
              to_regclass($7) IS NOT NULL AS exam_results,
              (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass($8)) AS completed_named_valid,
              ${indexOnSql('$7', "ARRAY['completed_at']", false, false)} AS completed_other,
              EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $9) AS role_exists,
              (SELECT has_table_privilege(r.oid, to_regclass($6), 'SELECT') FROM pg_roles r
                WHERE r.rolname = $9 AND to_regclass($6) IS NOT NULL) AS mv_granted`,
      [
        OPS_SCHEMA, JOB_RUNS, `${quoteIdent(OPS_SCHEMA)}.job_runs_job_started_idx`, METRIC_STATE,
        qualified(deps.schema, 'attempt'), mv, qualified(deps.schema, 'exam_results'),
        qualified(deps.schema, COMPLETED_AT_INDEX), deps.appRole, TABLE_COPY_COMMENT,
      ],
    );
    const r = rows[0]!;
    return {
      opsSchema: r.ops_schema,
      jobRuns: r.job_runs,
      jobRunsIndex: r.job_runs_index,
      metricState: r.metric_state,
      auditFunctions: r.audit_functions,
      attemptKind: r.attempt_kind,
      mvKind: r.mv_kind,
      mvTableCopy: r.mv_table_copy === true,
      mvPopulated: r.mv_populated === true || r.mv_table_copy === true,
      mvIdIndex: r.mv_id_index,
      mvStudentIndex: r.mv_student_index,
      examResults: r.exam_results,
      completedAtNamed: r.completed_named_valid === null ? null : { valid: r.completed_named_valid },
      completedAtOther: r.completed_other,
      roleExists: r.role_exists,
      mvGranted: r.mv_granted === true,
    };
  } catch (err) {
    throw classifyDbError(err, 'reading the catalog');
  }
}

/** How a step runs: with the others in one transaction, alone on its own session, or as a refresh. */
type Runner = 'transaction' | 'alone' | 'refresh' | 'capture' | 'capture-off' | 'index' | 'roles';

interface Step {
  object: string;
  action: string;
  /** exists: nothing to do; missing: sql would make it; blocked: cannot run, message says why. */
  state: 'exists' | 'missing' | 'blocked';
  message: string;
  sql: string[];
  runner: Runner;
}

/** The plan, in the order it runs: each step only ever depends on the ones before it. */
export function planBootstrap(c: CatalogState, schema: string, appRole: string): Step[] {
  const steps: Step[] = [];
  const add = (s: Omit<Step, 'runner'> & { runner?: Runner }) => steps.push({ runner: 'transaction', ...s });
  const ops = OPS_SCHEMA;
  add({ object: ops, action: 'create schema', state: c.opsSchema ? 'exists' : 'missing', message: c.opsSchema ? 'schema exists' : 'schema for our own tables', sql: [opsSchemaCreateSql()] });
  add({ object: `${ops}.job_runs`, action: 'create table', state: c.jobRuns ? 'exists' : 'missing', message: c.jobRuns ? 'table exists' : 'run audit: every refresh, read by mv_staleness', sql: [jobRunsTableSql()] });
  add({ object: `${ops}.job_runs_job_started_idx`, action: 'create index', state: c.jobRunsIndex ? 'exists' : 'missing', message: c.jobRunsIndex ? 'index exists' : 'latest run per job', sql: [jobRunsIndexSql()] });
  add({ object: `${ops}.metric_state`, action: 'create table', state: c.metricState ? 'exists' : 'missing', message: c.metricState ? 'table exists' : "publish-metrics' previous pg_stat_statements sample", sql: [metricStateTableSql()] });
  add({
    object: `${ops} audit functions`, action: 'create functions',
    state: c.auditFunctions ? 'exists' : 'missing',
    message: c.auditFunctions
      ? 'job_run_start, job_run_finish, job_run_record, metric_state_put, remediation_prepare, remediation_record, own_session_register exist'
      : 'job_run_start, job_run_finish, job_run_record, metric_state_put, remediation_prepare, remediation_record: the only way the job roles write the audit (SECURITY DEFINER, the writer taken from session_user); own_session_register and its registry, which tell our own sessions from look-alikes',
    sql: [...auditFunctionsSql(), ...ownSessionsSql()],
  });

  const mv = `${schema}.attempt_mv`;
  let mvBlocked: string | null = null;
  if (c.mvKind !== null && c.mvKind !== 'm' && !c.mvTableCopy) mvBlocked = `${mv} exists but is not a materialized view (relkind ${c.mvKind}): drop or rename it first`;
  else if (c.mvKind === null && c.attemptKind === null) mvBlocked = `${schema}.attempt does not exist: restore the view first (attempt-ops remediate recreate-view --apply)`;
  const mvExists = c.mvKind === 'm' || c.mvTableCopy;
  add({
    object: mv, action: 'create materialized view', state: mvBlocked ? 'blocked' : mvExists ? 'exists' : 'missing',
    message: mvBlocked ?? (c.mvTableCopy ? 'table-backed copy exists (kept by incremental refresh)' : mvExists ? 'materialized view exists' : `copy of ${schema}.attempt, created empty and populated below`),
    sql: [attemptMvCreateSql(schema)],
  });
  const onMv = (present: string | null, action: string, name: string, sql: string, why: string) =>
    add({
      object: `${schema}.${name}`, action, state: mvBlocked ? 'blocked' : present ? 'exists' : 'missing',
      message: mvBlocked ? `needs ${mv}` : present ? `exists as ${present}` : why, sql: [sql],
    });
  onMv(c.mvIdIndex, 'create unique index', ATTEMPT_MV_ID_INDEX, attemptMvIdIndexSql(schema), 'unique index on id: concurrent refresh needs it');
  onMv(c.mvStudentIndex, 'create index', ATTEMPT_MV_STUDENT_INDEX, attemptMvStudentIndexSql(schema), "runbook section 3's per-student query");

  const grantSql = `GRANT SELECT ON ${qualified(schema, 'attempt_mv')} TO ${quoteIdent(appRole)}`;
  const grantBlocked = mvBlocked ? `needs ${mv}` : !c.roleExists ? `role ${appRole} does not exist: create it, or pass the app role's name (--app-role)` : null;
  add({
    object: `${mv} to ${appRole}`, action: 'grant select', state: grantBlocked ? 'blocked' : c.mvGranted ? 'exists' : 'missing',
    message: grantBlocked ?? (c.mvGranted ? `${appRole} may select` : `the app role reads attempt_mv`), sql: [grantSql],
  });

  add({
    object: mv, action: 'populate', runner: 'refresh', state: mvBlocked ? 'blocked' : mvExists && c.mvPopulated ? 'exists' : 'missing',
    message: mvBlocked ? `needs ${mv}` : mvExists && c.mvPopulated ? 'populated' : 'first plain refresh, recorded in job_runs',
    sql: [`REFRESH MATERIALIZED VIEW ${qualified(schema, 'attempt_mv')}`],
  });

  const er = `${schema}.exam_results`;
  const idx = `${schema}.${COMPLETED_AT_INDEX}`;
  if (!c.examResults) {
    add({ object: idx, action: 'create index', runner: 'alone', state: 'blocked', message: `${er} does not exist`, sql: [completedAtIndexSql(schema)] });
  } else if (c.completedAtNamed?.valid || (c.completedAtNamed === null && c.completedAtOther)) {
    add({ object: idx, action: 'create index', runner: 'alone', state: 'exists', message: `exists as ${c.completedAtOther ?? idx}`, sql: [completedAtIndexSql(schema)] });
  } else if (c.completedAtNamed && !c.completedAtNamed.valid) {
    add({
      object: idx, action: 'recreate index', runner: 'alone', state: 'missing',
      message: 'INVALID, left by an interrupted concurrent build: dropped and built again',
      sql: [`DROP INDEX CONCURRENTLY IF EXISTS ${qualified(schema, COMPLETED_AT_INDEX)}`, completedAtIndexSql(schema)],
    });
  } else {
    add({ object: idx, action: 'create index', runner: 'alone', state: 'missing', message: 'rows since the last health check, without a scan (built CONCURRENTLY)', sql: [completedAtIndexSql(schema)] });
  }
  return steps;
}


/**
 * Whether the least-privilege roles are in place as rolesSql would leave them: the three roles,
 * the monitor in pg_monitor and able to read the view's tables, the maintainer owning attempt_mv,
 * and attempt_ops' grants exactly as rolesSql makes them (opsGrantsReadySql): a role set made by
 * an earlier version, whose monitor could UPDATE job_runs, reads as missing and is repaired.
 *
 * It runs after the change capture is installed (runner 'alone', the first of those), so the
 * grants on the capture's tables and functions made in the same run are included; in one
 * transaction of its own, so the revokes and the grants that follow them land together. Our own
 * DDL (attempt_mv's new owner) is no event for the capture's DDL watcher.
 */
async function rolesStep(deps: JobDeps): Promise<Step> {
  const { rows } = await deps.pool.query<{ version: number; ready: boolean; mv: boolean }>(
    `SELECT current_setting('server_version_num')::int AS version,
            to_regclass($5) IS NOT NULL AS mv,
            CASE WHEN (SELECT count(*) = 3 FROM pg_roles WHERE rolname IN ($1, $2, $3))
                 THEN pg_has_role($1, 'pg_monitor', 'MEMBER')
                      AND has_table_privilege($1, to_regclass($4), 'SELECT')
                      AND (to_regclass($5) IS NULL OR (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = to_regclass($5)) = $2)
                      AND ${opsGrantsReadySql()}
                 ELSE false END AS ready`,
    [ROLES.monitor, ROLES.maintainer, ROLES.operator, qualified(deps.schema, 'exam_results'), qualified(deps.schema, 'attempt_mv')],
  ).catch((err) => {
    throw classifyDbError(err, 'reading the roles');
  });
  const r = rows[0]!;
  return {
    object: `${ROLES.monitor}, ${ROLES.maintainer}, ${ROLES.operator}`, action: 'create roles', runner: 'roles',
    state: r.ready ? 'exists' : 'missing',
    message: r.ready ? 'roles and grants in place' : 'least-privilege group roles for the jobs (grant them to the login users); grants made by earlier versions are revoked first',
    sql: [...rolesSql(deps.schema, r.version), ...attemptMvOwnerSql(deps.schema)],
  };
}

export async function runBootstrap(deps: JobDeps, options: BootstrapOptions = {}): Promise<BootstrapReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const apply = options.apply === true;

  const steps = planBootstrap(await readCatalog(deps), deps.schema, deps.appRole);
  steps.push(...(await captureSteps(deps, options.capture !== false)));
  // Last: the grants cover what every step before made (the capture's tables and functions among them).
  if (options.roles) steps.push(await rolesStep(deps));
  const actions: ActionReport[] = steps.map((s) => ({
    object: s.object,
    action: s.action,
    outcome: s.state === 'exists' ? 'exists' : s.state === 'blocked' ? 'blocked' : apply ? 'done' : 'planned',
    message: s.message,
    ...(s.state === 'missing' ? { sql: s.sql } : {}),
  }));
  const notes: string[] = [];

  if (apply) {
    const pending = (runner: Runner) => steps.map((s, i) => ({ s, a: actions[i]! })).filter(({ s }) => s.state === 'missing' && s.runner === runner);

    // The catalog objects go in together, all or none, so a half-made attempt_mv is never left behind.
    const txSteps = pending('transaction');
    if (txSteps.length > 0) {
      const started = performance.now();
      try {
        await inTransaction(deps.pool, {}, async (client) => {
          const t = await applyTimeouts(client, 'LOCAL', options, REFRESH_STATEMENT_TIMEOUT_MS, deps.remainingMs);
          // Our own DDL is no event for the capture's DDL watcher to report.
          await client.query(`SET LOCAL attempt_ops.capture_ddl = 'on'`);
          for (const { s } of txSteps) for (const sql of s.sql) await client.query(longStatement(sql, t.statementTimeoutMs));
        });
      } catch (err) {
        throw classifyDbError(err, 'bootstrap');
      }
      const ms = Math.round(performance.now() - started);
      for (const { a } of txSteps) a.durationMs = ms;
      deps.log?.info('bootstrap created objects', { objects: txSteps.map(({ s }) => s.object) });
    }

    for (const { a } of pending('refresh')) {
      const started = performance.now();
      let refreshed: Awaited<ReturnType<typeof runRefresh>>;
      try {
        refreshed = await runRefresh(deps, { mode: 'full', statementTimeoutMs: options.statementTimeoutMs, lockTimeoutMs: options.lockTimeoutMs });
      } catch (err) {
        const e = classifyDbError(err, 'bootstrap: populate attempt_mv');
        if (e.kind === 'connection' || e.kind === 'authentication') throw e;
        // The structure is in place; what the view's data does is refresh-mv's job, which keeps
        // failing loudly (and alarming) until the source is fixed. A deploy must not fail on a row.
        a.outcome = 'failed';
        a.durationMs = Math.round(performance.now() - started);
        a.message = `attempt_mv stays unpopulated until refresh-mv succeeds: ${oneLine(e)}`;
        continue;
      }
      const r = refreshed.actions[0];
      a.durationMs = Math.round(performance.now() - started);
      if (r?.outcome === 'skipped') {
        a.outcome = 'skipped';
        a.message = 'another refresh of attempt_mv is running: it populates the view';
      } else {
        a.message = `populated by a ${r?.message ?? 'refresh'}`;
        a.after = r?.after;
      }
    }

    for (const { a } of pending('capture')) {
      const started = performance.now();
      const done = await installCapture(deps, { repair: true });
      a.message = done.length ? done.join('; ') : 'in place';
      a.durationMs = Math.round(performance.now() - started);
    }
    for (const { a } of pending('capture-off')) {
      const started = performance.now();
      const { rows } = await deps.pool.query<{ done: string[] }>(`SELECT ${quoteIdent(OPS_SCHEMA)}.capture_uninstall($1) AS done`, [deps.schema]).catch((err) => {
        throw classifyDbError(err, 'bootstrap: turning the change capture off');
      });
      a.message = (rows[0]?.done ?? []).join('; ') || 'turned off';
      a.durationMs = Math.round(performance.now() - started);
    }
    for (const { s, a } of pending('index')) {
      const started = performance.now();
      await buildIndexConcurrently(deps, qualified(deps.schema, 'exam_results'), qualified(deps.schema, STUDENT_INDEX), s.sql);
      a.durationMs = Math.round(performance.now() - started);
    }

    for (const { s, a } of pending('alone')) {
      const started = performance.now();
      try {
        await runAlone(deps, s.sql, options);
      } catch (err) {
        const e = classifyDbError(err, `bootstrap: ${s.action} ${s.object}`);
        // An interrupted concurrent build leaves an INVALID index; the next run replaces it.
        throw new AttemptOpsError(e.kind, `${oneLine(e)} (run bootstrap again: an invalid index left behind is rebuilt)`, { cause: e });
      }
      a.durationMs = Math.round(performance.now() - started);
    }

    // The revokes of grants made by earlier versions and the new grants land together, or not at all.
    for (const { s, a } of pending('roles')) {
      const started = performance.now();
      try {
        await inTransaction(deps.pool, {}, async (client) => {
          await client.query(`SET LOCAL attempt_ops.capture_ddl = 'on'`);
          for (const sql of s.sql) await client.query(sql);
        });
      } catch (err) {
        throw classifyDbError(err, 'bootstrap: create roles and grants');
      }
      a.durationMs = Math.round(performance.now() - started);
    }
  }

  if (options.capture === false) notes.push('the change capture is off: the data-quality checks fall back to rows completed recently, and refresh has no incremental mode');
  if (actions.every((a) => a.outcome === 'exists')) notes.push('everything exists: nothing to do');
  else if (!apply && actions.some((a) => a.outcome === 'planned')) notes.push('dry run: nothing was changed (run with --apply, or {"apply": true})');
  const statuses: Status[] = actions.map((a) => (a.outcome === 'blocked' ? 'critical' : a.outcome === 'failed' ? 'warning' : 'ok'));
  return {
    version: REPORT_VERSION,
    job: 'bootstrap',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    status: overallStatus(statuses),
    dryRun: !apply,
    apply,
    actions,
    notes,
    metrics: [],
  };
}

/**
 * The jobs need no superuser: the health check passes its checks connected as a login that is
 * only a member of attempt_ops_monitor, and it still sees what it must (other sessions' queries,
 * locks). And the roles hold: the audit is written only through attempt_ops' SECURITY DEFINER
 * functions, so a monitor login can neither forge a refresh, rewrite a row nor lock an
 * attempt_ops table; the maintainer records refreshes and nothing else; roles made by an earlier
 * version, with their broad grants, are repaired by bootstrap --roles.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES } from '../../functions/contract/index.ts';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool, type Pool } from '../../functions/db/pool.ts';
import { runAnalyze } from '../../functions/jobs/analyze.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runPublishMetrics } from '../../functions/jobs/publish-metrics.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { attemptMvSql, metricStateTableSql, opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { ROLES, attemptMvOwnerSql, rolesSql } from '../../functions/sql/roles.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

/** A login in the given group roles (none: a login in no role), its pool, and its removal. */
interface Login {
  name: string;
  pool: Pool;
  /** One session of its own, for transactions. */
  client(): Promise<pg.Client>;
  drop(): Promise<void>;
}

async function createLogin(db: TestDatabase, prefix: string, roles: string[], job: string): Promise<Login> {
  const name = `${prefix}_${Math.random().toString(36).slice(2, 8)}`;
  const password = 'Least-Privilege-Pw-1';
  await db.admin.query(`CREATE ROLE ${name} LOGIN PASSWORD '${password}'${roles.length ? ` IN ROLE ${roles.join(', ')}` : ''}`);
  const u = new URL(db.url);
  u.username = name;
  u.password = password;
  const url = u.toString();
  const pool = createPool(fromUrl(url, `${prefix} url`), { job });
  const clients: pg.Client[] = [];
  return {
    name,
    pool,
    async client() {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      clients.push(c);
      return c;
    },
    async drop() {
      await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
      await pool.end().catch(() => undefined);
      await db.admin.query(`DROP OWNED BY ${name}; DROP ROLE IF EXISTS ${name}`).catch(() => undefined);
    },
  };
}

const deps = (pool: Pool, target = 'least-privilege') => ({ pool, target, schema: 'public', appRole: 'seedtest_user', log: silentLogger });

/** What a LOCK above ACCESS SHARE needs (UPDATE, DELETE or TRUNCATE), refused: in a transaction, as LOCK must be. */
async function expectLockRefused(client: pg.Client, table: string, mode: string): Promise<void> {
  await client.query('BEGIN');
  try {
    await expect(client.query(`LOCK ${table} IN ${mode} MODE NOWAIT`)).rejects.toThrow(/permission denied/);
  } finally {
    await client.query('ROLLBACK');
  }
}

/** The statements roles.ts made before the audit went through functions (git show of that version), verbatim for schema public. */
function oldRolesSql(version: number): string[] {
  const createRole = (n: string) => `DO $$ BEGIN CREATE ROLE "${n}" NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`;
  const [m, mt, op] = [ROLES.monitor, ROLES.maintainer, ROLES.operator].map((r) => `"${r}"`);
  const ops = '"attempt_ops"';
  const statements = [
    createRole(ROLES.monitor), createRole(ROLES.maintainer), createRole(ROLES.operator),
    `GRANT pg_monitor TO ${m}`,
    `GRANT USAGE ON SCHEMA "public" TO ${m}, ${mt}, ${op}`,
    `GRANT SELECT ON "public"."exam_results", "public"."questions", "public"."attempt" TO ${m}, ${mt}, ${op}`,
    `GRANT USAGE ON SCHEMA ${ops} TO ${m}, ${mt}, ${op}`,
    `GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ${ops} TO ${m}, ${mt}`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${ops} TO ${m}, ${mt}, ${op}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${ops} TO ${op}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${ops} GRANT SELECT, INSERT, UPDATE ON TABLES TO ${m}, ${mt}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${ops} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${op}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${ops} GRANT USAGE ON SEQUENCES TO ${m}, ${mt}, ${op}`,
    `GRANT CREATE ON SCHEMA ${ops} TO ${op}`,
    `GRANT INSERT, DELETE ON "public"."exam_results" TO ${op}`,
    `GRANT ${mt} TO ${op}`,
    `GRANT pg_signal_backend TO ${op}`,
  ];
  if (version >= 170000) statements.push(`GRANT MAINTAIN ON "public"."exam_results", "public"."questions" TO ${mt}`);
  return statements;
}

async function serverVersion(db: TestDatabase): Promise<number> {
  return Number((await db.admin.query(`SELECT current_setting('server_version_num') AS v`)).rows[0].v);
}

describe('health check as the monitor role', () => {
  let db: TestDatabase;
  let pool: Pool;
  const login = `monitor_${Math.random().toString(36).slice(2, 8)}`;
  const password = 'Monitor-Login-Pw-1';

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await db.admin.query(opsSchemaSql());
    await db.admin.query(metricStateTableSql());
    await db.admin.query(attemptMvSql('public'));
    await db.admin.query('REFRESH MATERIALIZED VIEW attempt_mv');
    const version = Number((await db.admin.query(`SELECT current_setting('server_version_num') AS v`)).rows[0].v);
    for (const sql of [...rolesSql('public', version), ...attemptMvOwnerSql('public')]) await db.admin.query(sql);
    // What bootstrap grants the application: its copy of the view.
    await db.admin.query('GRANT SELECT ON attempt_mv TO seedtest_user');
    await db.admin.query(`INSERT INTO attempt_ops.job_runs (job, started_at, finished_at, outcome) VALUES ('refresh-mv', now(), now(), 'success')`);
    await db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD '${password}' IN ROLE ${ROLES.monitor}`);
    const u = new URL(db.url);
    u.username = login;
    u.password = password;
    pool = createPool(fromUrl(u.toString(), 'monitor url'), { job: 'health-check' });
  });
  afterAll(async () => {
    await pool?.end();
    await db?.admin.query(`DROP OWNED BY ${login}; DROP ROLE IF EXISTS ${login}`).catch(() => undefined);
    await db?.drop();
  });

  it('is not a superuser and cannot write the watched tables', async () => {
    const r = await pool.query(`SELECT rolsuper FROM pg_roles WHERE rolname = current_user`);
    expect(r.rows[0].rolsuper).toBe(false);
    await expect(pool.query(`INSERT INTO exam_results VALUES (1, 'x', '{}', now())`)).rejects.toThrow(/permission denied/);
  });

  it('passes every check on a clean database and records its run', async () => {
    const report = await runHealthCheck({ pool, target: 'monitor', schema: 'public', appRole: 'seedtest_user' });
    const statuses = Object.fromEntries(report.checks.map((c) => [c.name, `${c.status}: ${c.message}`]));
    // capture is skipped without bootstrap's capture; mv_fidelity for a materialized attempt_mv.
    for (const name of CHECK_NAMES) expect(statuses[name], name).toMatch(name === 'capture' || name === 'mv_fidelity' ? /^(ok|skipped):/ : /^ok:/);
    const runs = await db.admin.query(`SELECT invoked_by FROM attempt_ops.job_runs WHERE job = 'health-check'`);
    expect(runs.rows).toEqual([{ invoked_by: login }]);
  });

  it('cannot write attempt_ops.job_runs or metric_state directly: INSERT, UPDATE, DELETE are denied', async () => {
    for (const sql of [
      `INSERT INTO attempt_ops.job_runs (job, started_at, finished_at, outcome) VALUES ('refresh-mv', now(), now(), 'success')`,
      `UPDATE attempt_ops.job_runs SET finished_at = now() WHERE job = 'refresh-mv'`,
      `DELETE FROM attempt_ops.job_runs`,
      `INSERT INTO attempt_ops.metric_state (name, sampled_at, calls, total_exec_ms) VALUES ('x', now(), 0, 0)`,
      `TRUNCATE attempt_ops.job_runs`,
    ]) {
      await expect(pool.query(sql), sql).rejects.toThrow(/permission denied/);
    }
    // It still reads what it reads.
    await expect(pool.query('SELECT count(*) FROM attempt_ops.job_runs')).resolves.toBeDefined();
  });

  it('cannot LOCK an attempt_ops table in any mode that blocks writers', async () => {
    const u = new URL(db.url);
    u.username = login;
    u.password = password;
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    try {
      for (const mode of ['ROW EXCLUSIVE', 'SHARE', 'ACCESS EXCLUSIVE']) await expectLockRefused(c, 'attempt_ops.job_runs', mode);
      await expectLockRefused(c, 'attempt_ops.metric_state', 'ACCESS EXCLUSIVE');
    } finally {
      await c.end();
    }
  });

  it('cannot forge a refresh through the audit functions: 42501, and mv_staleness is unmoved', async () => {
    const before = (await db.admin.query(`SELECT count(*)::int AS n FROM attempt_ops.job_runs WHERE job = 'refresh-mv'`)).rows[0].n;
    const start = pool.query(`SELECT attempt_ops.job_run_start('refresh-mv', 'monitor', now(), 'full', '{}')`);
    await expect(start).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/may not start a refresh-mv run.*attempt_ops_maintainer/) });
    await expect(pool.query(`SELECT attempt_ops.job_run_record('refresh-mv', 'monitor', now(), 'success', 'full', '{}')`)).rejects.toMatchObject({ code: '42501' });
    await expect(pool.query(`SELECT attempt_ops.job_run_record('analyze', 'monitor', now(), 'success', null, '{}')`)).rejects.toMatchObject({ code: '42501' });
    // Nor finish the running refresh of another user, nor rewrite a finished row.
    const { rows } = await db.admin.query(`INSERT INTO attempt_ops.job_runs (job, started_at, outcome) VALUES ('refresh-mv', now(), 'running') RETURNING id`);
    await expect(pool.query(`SELECT attempt_ops.job_run_finish($1, 'success', 1, null, null, '{}')`, [rows[0].id])).rejects.toMatchObject({ code: '42501' });
    const hc = (await db.admin.query(`SELECT attempt_ops.job_run_start('health-check', 'admin', now(), 'incremental', '{}') AS id`)).rows[0].id;
    await expect(pool.query(`SELECT attempt_ops.job_run_finish($1, 'success', 1, null, null, '{}')`, [hc])).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/same user started/) });
    await db.admin.query('DELETE FROM attempt_ops.job_runs WHERE id IN ($1, $2)', [rows[0].id, hc]);
    const after = (await db.admin.query(`SELECT count(*)::int AS n FROM attempt_ops.job_runs WHERE job = 'refresh-mv'`)).rows[0].n;
    expect(after).toBe(before);
  });

  it('writes its own rows through the functions, as itself, and finishes only what it started', async () => {
    const id = (await pool.query(`SELECT attempt_ops.job_run_start('health-check', 'monitor', now(), 'incremental', '{"a": 1}') AS id`)).rows[0].id;
    await pool.query(`SELECT attempt_ops.job_run_finish($1, 'success', 3, null, 'full', '{"b": 2}')`, [id]);
    const row = (await db.admin.query(`SELECT outcome, rows, mode, invoked_by, details, finished_at IS NOT NULL AS finished FROM attempt_ops.job_runs WHERE id = $1`, [id])).rows[0];
    expect(row).toEqual({ outcome: 'success', rows: '3', mode: 'full', invoked_by: login, details: { a: 1, b: 2 }, finished: true });
    // Finished once: it is no longer running.
    await expect(pool.query(`SELECT attempt_ops.job_run_finish($1, 'failure', 0, 'x', null, '{}')`, [id])).rejects.toMatchObject({ code: '42501' });
    await db.admin.query('DELETE FROM attempt_ops.job_runs WHERE id = $1', [id]);
  });

  it('still sees other sessions: a long query on attempt by another user', async () => {
    const other = new pg.Client({ connectionString: db.url });
    await other.connect();
    try {
      const pid = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      const running = other.query('SELECT pg_sleep(30), count(*) FROM attempt').catch(() => undefined);
      await new Promise((r) => setTimeout(r, 1200));
      try {
        const report = await runHealthCheck({ pool, target: 'monitor', schema: 'public', appRole: 'seedtest_user' }, { checks: ['long_running'], settings: { longRunningSeconds: 1 } });
        expect(report.checks[0]).toMatchObject({ status: 'warning', value: 1 });
      } finally {
        await db.admin.query('SELECT pg_cancel_backend($1)', [pid]);
        await running;
      }
    } finally {
      await other.end();
    }
  });

  it('reports a seeded fault the same as a superuser would', async () => {
    await insertResult(db.admin, { id: 5555, student: null, json: { questionId: 1 } });
    const report = await runHealthCheck({ pool, target: 'monitor', schema: 'public', appRole: 'seedtest_user' }, { checks: ['required_nulls'], scope: 'full' });
    expect(report.checks[0]).toMatchObject({ status: 'critical', value: 1 });
    await db.admin.query('DELETE FROM exam_results WHERE id = 5555');
  });

  it('publish-metrics keeps its pg_stat_statements sample through metric_state_put and publishes deltas', async () => {
    await db.admin.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    const first = await runPublishMetrics(deps(pool, 'monitor'));
    expect(first.notes.join('\n')).toMatch(/first sample of pg_stat_statements kept/);
    const kept = await db.admin.query(`SELECT sampled_at FROM attempt_ops.metric_state WHERE name = 'pg_stat_statements:attempt'`);
    expect(kept.rows).toHaveLength(1);
    await db.admin.query('SET ROLE seedtest_user');
    await db.admin.query('SELECT count(*) FROM attempt');
    await db.admin.query('RESET ROLE');
    const second = await runPublishMetrics(deps(pool, 'monitor'));
    expect(second.status).not.toBe('unknown');
    expect(second.metrics.map((m) => m.name)).toContain('attempt_query_count');
    const again = await db.admin.query(`SELECT sampled_at FROM attempt_ops.metric_state WHERE name = 'pg_stat_statements:attempt'`);
    expect(again.rows[0].sampled_at.getTime()).toBeGreaterThanOrEqual(kept.rows[0].sampled_at.getTime());
  });
});

describe('bootstrap --roles', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
  });
  afterAll(async () => db?.drop());

  it('creates the roles with their grants and hands attempt_mv to the maintainer; a second apply finds them', async () => {
    const deps = { pool: db.pool('bootstrap'), target: 'roles', schema: 'public', appRole: 'seedtest_user' };
    const dry = await runBootstrap(deps, { roles: true });
    const planned = dry.actions.find((a) => a.action === 'create roles')!;
    expect(planned.sql!.join('\n')).toContain(`GRANT pg_monitor TO "${ROLES.monitor}"`);
    const first = await runBootstrap(deps, { apply: true, roles: true });
    expect(first.actions.find((a) => a.action === 'create roles')).toMatchObject({ outcome: expect.stringMatching(/^(done|exists)$/) });
    const owner = await db.admin.query(`SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE oid = 'attempt_mv'::regclass`);
    expect(owner.rows[0].owner).toBe(ROLES.maintainer);
    const monitorReads = await db.admin.query(`SELECT has_table_privilege($1, 'attempt_mv', 'SELECT') AND has_table_privilege($1, 'exam_results', 'SELECT') AS ok`, [ROLES.monitor]);
    expect(monitorReads.rows[0].ok).toBe(true);
    const second = await runBootstrap(deps, { apply: true, roles: true });
    expect(second.actions.every((a) => a.outcome === 'exists')).toBe(true);
  });
});

describe('refresh and analyze as the maintainer role', () => {
  let db: TestDatabase;
  let maintainer: Login;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    // Bootstrap as the owner: the schema, the audit functions, attempt_mv, the capture, the roles.
    await runBootstrap(deps(db.pool('bootstrap')), { apply: true, roles: true });
    maintainer = await createLogin(db, 'maintainer', [ROLES.maintainer], 'refresh-mv');
  });
  afterAll(async () => {
    await maintainer?.drop();
    await db?.drop();
  });

  it('runs a full and a concurrent refresh of the materialized view and records both, as itself', async () => {
    for (const mode of ['full', 'concurrent'] as const) {
      const report = await runRefresh(deps(maintainer.pool), { mode });
      expect(report.status, mode).toBe('ok');
      expect(report.actions.find((a) => a.action === 'refresh'), mode).toMatchObject({ outcome: 'done' });
    }
    const runs = await db.admin.query(`SELECT mode, outcome, invoked_by, finished_at IS NOT NULL AS finished FROM attempt_ops.job_runs WHERE job = 'refresh-mv' AND invoked_by = $1 ORDER BY id`, [maintainer.name]);
    expect(runs.rows).toEqual([
      { mode: 'full', outcome: 'success', invoked_by: maintainer.name, finished: true },
      { mode: 'concurrent', outcome: 'success', invoked_by: maintainer.name, finished: true },
    ]);
  });

  it('analyzes (MAINTAIN from PostgreSQL 17) and may record analyze runs', async () => {
    if ((await serverVersion(db)) >= 170000) {
      const report = await runAnalyze(deps(maintainer.pool), { force: true });
      expect(report.status).toBe('ok');
    } else {
      // Before 17 only the owner may ANALYZE the base tables: the job says so (docs/RELIABILITY.md).
      await expect(runAnalyze(deps(maintainer.pool), { force: true })).rejects.toMatchObject({ kind: 'permission' });
    }
    const id = (await maintainer.pool.query(`SELECT attempt_ops.job_run_start('analyze', 'test', now(), null, '{}') AS id`)).rows[0].id;
    await maintainer.pool.query(`SELECT attempt_ops.job_run_finish($1, 'success', 2, null, null, '{}')`, [id]);
    const row = await db.admin.query(`SELECT outcome, invoked_by FROM attempt_ops.job_runs WHERE id = $1`, [id]);
    expect(row.rows[0]).toEqual({ outcome: 'success', invoked_by: maintainer.name });
  });

  it('cannot write health-check or publish-metrics rows, nor write or lock the audit and the change log', async () => {
    await expect(maintainer.pool.query(`SELECT attempt_ops.job_run_record('health-check', 'test', now(), 'success', 'incremental', '{}')`))
      .rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/may not record a health-check run.*attempt_ops_monitor/) });
    await expect(maintainer.pool.query(`SELECT attempt_ops.job_run_start('publish-metrics', 'test', now(), null, '{}')`)).rejects.toMatchObject({ code: '42501' });
    await expect(maintainer.pool.query(`SELECT attempt_ops.metric_state_put('x', 1, 1, null, '{}')`)).rejects.toMatchObject({ code: '42501' });
    await expect(maintainer.pool.query(`INSERT INTO attempt_ops.job_runs (job, started_at, outcome) VALUES ('health-check', now(), 'success')`)).rejects.toThrow(/permission denied/);
    await expect(maintainer.pool.query(`UPDATE attempt_ops.job_runs SET outcome = 'success'`)).rejects.toThrow(/permission denied/);
    const c = await maintainer.client();
    await expectLockRefused(c, 'attempt_ops.job_runs', 'ROW EXCLUSIVE');
    await expectLockRefused(c, 'attempt_ops.attempt_changes', 'ROW EXCLUSIVE');
  });
});

describe('bootstrap --roles repairs roles made by an earlier version', () => {
  let db: TestDatabase;
  let monitor: Login;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await runBootstrap(deps(db.pool('bootstrap')), { apply: true });
    // The grants an earlier bootstrap --roles made, by hand.
    for (const sql of [...oldRolesSql(await serverVersion(db)), ...attemptMvOwnerSql('public')]) await db.admin.query(sql);
    monitor = await createLogin(db, 'oldmonitor', [ROLES.monitor], 'health-check');
  });
  afterAll(async () => {
    await monitor?.drop();
    await db?.drop();
  });

  it('revokes the broad grants and default privileges, grants what each role needs, and a second apply finds it done', async () => {
    const d = deps(db.pool('bootstrap'));
    // The old grants: the monitor could rewrite the audit and lock the change log.
    await expect(monitor.pool.query(`UPDATE attempt_ops.job_runs SET outcome = outcome WHERE false`)).resolves.toBeDefined();
    const c = await monitor.client();
    await c.query('BEGIN');
    await c.query('LOCK attempt_ops.attempt_changes IN ROW EXCLUSIVE MODE NOWAIT');
    await c.query('ROLLBACK');

    const dry = await runBootstrap(d, { roles: true });
    expect(dry.actions.find((a) => a.action === 'create roles')).toMatchObject({ outcome: 'planned' });
    const fixed = await runBootstrap(d, { apply: true, roles: true });
    expect(fixed.actions.find((a) => a.action === 'create roles')).toMatchObject({ outcome: 'done' });

    await expect(monitor.pool.query(`UPDATE attempt_ops.job_runs SET outcome = outcome WHERE false`)).rejects.toThrow(/permission denied/);
    await expect(monitor.pool.query(`INSERT INTO attempt_ops.job_runs (job, started_at, outcome) VALUES ('refresh-mv', now(), 'success')`)).rejects.toThrow(/permission denied/);
    for (const table of ['attempt_ops.job_runs', 'attempt_ops.attempt_changes', 'attempt_ops.capture_cursors']) await expectLockRefused(c, table, 'ROW EXCLUSIVE');
    const grants = await db.admin.query(
      `SELECT count(*)::int AS n FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
        WHERE n.nspname = 'attempt_ops' AND a.grantee IN (SELECT oid FROM pg_roles WHERE rolname IN ($1, $2, $3))`,
      [ROLES.monitor, ROLES.maintainer, ROLES.operator],
    );
    expect(grants.rows[0].n).toBe(0);

    // The monitor still does its job, recorded through the functions.
    const report = await runHealthCheck(deps(monitor.pool, 'repaired'));
    expect(report.status).not.toBe('unknown');
    const runs = await db.admin.query(`SELECT invoked_by FROM attempt_ops.job_runs WHERE job = 'health-check' AND target = 'repaired'`);
    expect(runs.rows).toEqual([{ invoked_by: monitor.name }]);

    const second = await runBootstrap(d, { apply: true, roles: true });
    expect(second.actions.filter((a) => a.outcome !== 'exists')).toEqual([]);
  });
});

describe('a login in none of the roles, and the operator', () => {
  let db: TestDatabase;
  let nobody: Login;
  let operator: Login;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.admin.query(opsSchemaSql());
    await db.admin.query(metricStateTableSql());
    for (const sql of rolesSql('public', await serverVersion(db))) await db.admin.query(sql);
    nobody = await createLogin(db, 'nobody', [], 'test');
    operator = await createLogin(db, 'operator', [ROLES.operator], 'ops');
  });
  afterAll(async () => {
    await nobody?.drop();
    await operator?.drop();
    await db?.drop();
  });

  const calls = [
    [`SELECT attempt_ops.job_run_start('health-check', 't', now(), null, '{}')`, /may not start a health-check run.*attempt_ops_monitor/],
    [`SELECT attempt_ops.job_run_start('refresh-mv', 't', now(), 'full', '{}')`, /may not start a refresh-mv run.*attempt_ops_maintainer/],
    [`SELECT attempt_ops.job_run_record('publish-metrics', 't', now(), 'success', null, '{}')`, /may not record a publish-metrics run.*attempt_ops_monitor/],
    [`SELECT attempt_ops.job_run_start('made-up', 't', now(), null, '{}')`, /no job role \(unknown job made-up\)/],
    [`SELECT attempt_ops.metric_state_put('x', 1, 1, null, '{}')`, /may not keep publish-metrics' sample.*attempt_ops_monitor/],
    [`SELECT attempt_ops.remediation_prepare()`, /may not write the remediation audit.*attempt_ops_operator/],
    [`SELECT attempt_ops.remediation_record('analyze', 't', now(), 'me', 'success', '{}', '{}')`, /may not write the remediation audit.*attempt_ops_operator/],
  ] as const;

  it('may not execute the audit functions at all (EXECUTE is revoked from PUBLIC)', async () => {
    for (const [sql] of calls) await expect(nobody.pool.query(sql), sql).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/permission denied for schema attempt_ops/) });
    await db.admin.query(`GRANT USAGE ON SCHEMA attempt_ops TO ${nobody.name}`);
    for (const [sql] of calls) await expect(nobody.pool.query(sql), sql).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(/permission denied for function/) });
  });

  it('granted EXECUTE anyway, still gets a clear 42501 from the functions themselves', async () => {
    await db.admin.query(`GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA attempt_ops TO ${nobody.name}`);
    for (const [sql, message] of calls) {
      await expect(nobody.pool.query(sql), sql).rejects.toMatchObject({ code: '42501', message: expect.stringMatching(new RegExp(`^role ${nobody.name} `)) });
      await expect(nobody.pool.query(sql), sql).rejects.toMatchObject({ message: expect.stringMatching(message) });
    }
  });

  it('the operator writes the remediation audit only through the functions, with db_user its own login', async () => {
    await operator.pool.query('SELECT attempt_ops.remediation_prepare()');
    const id = (await operator.pool.query(`SELECT attempt_ops.remediation_record('analyze', 't', now(), 'alice@laptop', 'success', ARRAY['ANALYZE questions'], '{"status": "ok"}') AS id`)).rows[0].id;
    const row = await db.admin.query('SELECT fix, invoked_by, db_user, outcome, statements FROM attempt_ops.remediations WHERE id = $1', [id]);
    expect(row.rows[0]).toEqual({ fix: 'analyze', invoked_by: 'alice@laptop', db_user: operator.name, outcome: 'success', statements: ['ANALYZE questions'] });
    await expect(operator.pool.query(`INSERT INTO attempt_ops.remediations (fix, target, started_at, invoked_by, outcome) VALUES ('x', 't', now(), 'me', 'success')`)).rejects.toThrow(/permission denied/);
    await expect(operator.pool.query(`UPDATE attempt_ops.remediations SET outcome = 'failure'`)).rejects.toThrow(/permission denied/);
    await expect(operator.pool.query(`INSERT INTO attempt_ops.job_runs (job, started_at, outcome) VALUES ('refresh-mv', now(), 'success')`)).rejects.toThrow(/permission denied/);
    // Not the monitor's rows either.
    await expect(operator.pool.query(`SELECT attempt_ops.job_run_record('health-check', 't', now(), 'success', null, '{}')`)).rejects.toMatchObject({ code: '42501' });
  });
});

describe('the maintainer role on the table-backed attempt_mv (issue 10)', () => {
  let db: TestDatabase;
  let maintainer: Login;
  const diff = `SELECT count(*)::int AS n FROM ((SELECT * FROM attempt EXCEPT ALL SELECT * FROM attempt_mv) UNION ALL (SELECT * FROM attempt_mv EXCEPT ALL SELECT * FROM attempt)) d`;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    expect((await runBootstrap(deps(db.pool('bootstrap')), { apply: true, roles: true })).status).toBe('ok');
    maintainer = await createLogin(db, 'maint', [ROLES.maintainer], 'refresh-mv');
  });
  afterAll(async () => {
    await maintainer?.drop();
    await db?.drop();
  });

  it('cannot convert (owner work), and says which role must', async () => {
    const error = await runRefresh(deps(maintainer.pool), { mode: 'incremental' }).catch((e: Error) => e);
    expect(error).toMatchObject({ kind: 'permission', message: expect.stringMatching(/converting public\.attempt_mv into the table-backed copy needs CREATE on schema public .*as the owner of public\.exam_results/) });
    expect((await db.admin.query(`SELECT relkind::text AS k FROM pg_class WHERE oid = 'attempt_mv'::regclass`)).rows[0].k).toBe('m');
  });

  it('runs every mode on the copy an owner converted, recorded as itself', async () => {
    // Prepare: the owner converts; the copy keeps the materialized view's owner, the maintainer.
    await runRefresh(deps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect((await db.admin.query(`SELECT pg_get_userbyid(relowner) AS o FROM pg_class WHERE oid = 'attempt_mv'::regclass`)).rows[0].o).toBe(ROLES.maintainer);
    for (const [i, mode] of (['incremental', 'concurrent', 'full', 'incremental'] as const).entries()) {
      await insertResult(db.admin, { id: 7100 + i, student: `legacy-71${i}`, json: { questionId: 1 + i, isCorrect: true } });
      // Act
      const report = await runRefresh(deps(maintainer.pool), { mode });
      // Assess
      expect(report.actions.at(-1), mode).toMatchObject({ outcome: 'done', after: { mode: mode === 'incremental' ? 'incremental' : 'full' } });
      expect((await db.admin.query(diff)).rows[0].n, mode).toBe(0);
    }
    const runs = await db.admin.query(`SELECT invoked_by FROM attempt_ops.job_runs WHERE job = 'refresh-mv' AND invoked_by = $1 AND outcome = 'success'`, [maintainer.name]);
    expect(runs.rowCount).toBe(4);
  });

  it('with the capture broken, rebuilds whole on every run and says an owner must repair it', async () => {
    await db.admin.query('ALTER TABLE exam_results DISABLE TRIGGER attempt_ops_capture_insert');
    try {
      await insertResult(db.admin, { id: 7200, student: 'legacy-7200', json: { questionId: 2 } });
      const report = await runRefresh(deps(maintainer.pool), { mode: 'incremental' });
      expect(report.actions.at(-1)).toMatchObject({ after: { mode: 'full' } });
      expect(report.notes.join(' ')).toMatch(/cannot be trusted .*until an owner repairs it \(bootstrap --apply\)/);
      expect((await db.admin.query(diff)).rows[0].n).toBe(0);
    } finally {
      await db.admin.query('ALTER TABLE exam_results ENABLE ALWAYS TRIGGER attempt_ops_capture_insert');
    }
  });
});

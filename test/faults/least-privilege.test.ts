/**
 * The health check needs no superuser: it passes its checks connected as a login that is only a
 * member of attempt_ops_monitor, and it still sees what it must (other sessions' queries, locks).
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES } from '../../functions/contract/index.ts';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool, type Pool } from '../../functions/db/pool.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { attemptMvSql, opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { ROLES, attemptMvOwnerSql, rolesSql } from '../../functions/sql/roles.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

describe('health check as the monitor role', () => {
  let db: TestDatabase;
  let pool: Pool;
  const login = `monitor_${Math.random().toString(36).slice(2, 8)}`;
  const password = 'Monitor-Login-Pw-1';

  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    await db.admin.query(opsSchemaSql());
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

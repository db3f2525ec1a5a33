/**
 * For every check: its runbook fault, seeded on a clean database, is reported with the contract's
 * name, status, severity, metric and value. Each case gets a fresh database.
 */
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckName, CheckResult, HealthReport } from '../../functions/contract/index.ts';
import { CHECK_SPECS } from '../../functions/contract/index.ts';
import { runHealthCheck, type HealthCheckOptions } from '../../functions/jobs/health-check.ts';
import { attemptMvSql, opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { v1SelectSql } from '../../functions/sql/reference.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

let db: TestDatabase | undefined;
const extra: pg.Client[] = [];

afterEach(async () => {
  await Promise.all(extra.splice(0).map((c) => c.end().catch(() => undefined)));
  await db?.drop();
  db = undefined;
});

async function fresh(): Promise<TestDatabase> {
  db = await createTestDatabase();
  await seedClean(db.admin);
  return db;
}

async function run(d: TestDatabase, name: CheckName, options: HealthCheckOptions = {}): Promise<{ report: HealthReport; check: CheckResult }> {
  const report = await runHealthCheck({ pool: d.pool(), target: 'faults', schema: 'public', appRole: 'seedtest_user' }, { checks: [name], ...options });
  expect(report.checks).toHaveLength(1);
  return { report, check: report.checks[0]! };
}

function metric(report: HealthReport, name: string, dims: Record<string, string> = {}) {
  return report.metrics.find((m) => m.name === name && Object.entries(dims).every(([k, v]) => m.dimensions[k] === v));
}

/** Asserts the contract's fields, the metric datum and its Database dimension. */
function expectReported(report: HealthReport, check: CheckResult, name: CheckName, status: string, value: number) {
  expect(check).toMatchObject({ name, status, severity: CHECK_SPECS[name].severity, value, runbook: CHECK_SPECS[name].runbook });
  expect(metric(report, CHECK_SPECS[name].metric)).toEqual({ name: CHECK_SPECS[name].metric, value, unit: expect.any(String), dimensions: { Database: 'faults' } });
}

async function connect(d: TestDatabase): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: d.url });
  await c.connect();
  c.on('error', () => undefined);
  extra.push(c);
  return c;
}

async function waitFor(what: string, probe: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!(await probe())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('runbook section 1: view missing and schema drift', () => {
  it('view_exists is critical with value 0 when the view was dropped', async () => {
    const d = await fresh();
    await d.admin.query('DROP VIEW attempt');
    const { report, check } = await run(d, 'view_exists');
    expectReported(report, check, 'view_exists', 'critical', 0);
    expect(check.message).toBe('view public.attempt does not exist');
  });

  it('view_schema counts an added column, a rename and a retype', async () => {
    const d = await fresh();
    const drifted = v1SelectSql('public')
      .replace('AS correct_answer', 'AS right_answer')
      .replace('::int AS response_time_ms', '::bigint AS response_time_ms')
      .replace('  q.tags\nFROM', '  q.tags, 1 AS extra\nFROM');
    await d.admin.query('DROP VIEW attempt');
    await d.admin.query(`CREATE VIEW attempt AS ${drifted}`);
    const { report, check } = await run(d, 'view_schema');
    expectReported(report, check, 'view_schema', 'critical', 3);
    expect(check.details.map((x) => (x as { change: string }).change).sort()).toEqual(['added', 'renamed', 'retyped']);
  });

  it('view_schema reports a reordered column at both positions', async () => {
    const d = await fresh();
    await d.admin.query('DROP VIEW attempt');
    await d.admin.query(`CREATE VIEW attempt AS SELECT exam_result_id AS id, id AS exam_result_id, student_id, item_id, question_id, question_text,
      correct_answer, student_answer, is_correct, response_time_ms, completed_at, attempt_no, tags
      FROM (SELECT 1::bigint AS id, 2::bigint AS exam_result_id, NULL::uuid AS student_id, 1 AS item_id, 1 AS question_id, ''::text AS question_text,
        ''::text AS correct_answer, ''::text AS student_answer, 1 AS is_correct, 1 AS response_time_ms, now() AS completed_at, 1::bigint AS attempt_no, NULL::text[] AS tags) s`);
    const { check } = await run(d, 'view_schema');
    // Swapped names at positions 1 and 2 with the same types: the lock reads by position.
    expect(check.status).toBe('ok');
    await d.admin.query('DROP VIEW attempt');
    await d.admin.query(`CREATE VIEW attempt AS SELECT 2::bigint AS exam_result_id, 1::bigint AS id, NULL::uuid AS student_id, 1 AS item_id, 1 AS question_id,
      ''::text AS question_text, ''::text AS correct_answer, ''::text AS student_answer, 1 AS is_correct, 1 AS response_time_ms, now() AS completed_at,
      1::bigint AS attempt_no, NULL::text[] AS tags`);
    const again = await run(d, 'view_schema');
    expect(again.check).toMatchObject({ status: 'critical', value: 2 });
    expect(again.check.details.map((x) => (x as { change: string }).change)).toEqual(['reordered', 'reordered']);
  });
});

describe('runbook section 4: poison rows, NULLs and orphans', () => {
  it('view_queryable counts the rows that make the view fail, and they really do', async () => {
    const d = await fresh();
    await insertResult(d.admin, { id: 7001, student: 'legacy-1', json: { questionId: '12.5', isCorrect: true, responseTime: 10 } });
    await insertResult(d.admin, { id: 7002, student: 'legacy-1', json: { questionId: 2, isCorrect: true, responseTime: 'NaN' } });
    await insertResult(d.admin, { id: 7003, student: 'legacy-1', json: { questionId: 3, isCorrect: true, responseTime: 'fast' } });
    await insertResult(d.admin, { id: 7004, student: 'legacy-1', json: { questionId: '99999999999', isCorrect: true } });
    // Harmless look-alikes: padded integers and an empty responseTime are accepted by the view.
    await insertResult(d.admin, { id: 7005, student: 'legacy-1', json: { questionId: ' 4 ', isCorrect: true, responseTime: '' } });
    await insertResult(d.admin, { id: 7006, student: 'legacy-1', json: { questionId: 1, isCorrect: true, responseTime: -5 } });
    const { report, check } = await run(d, 'view_queryable');
    expectReported(report, check, 'view_queryable', 'critical', 4);
    await expect(d.admin.query('SELECT * FROM attempt')).rejects.toThrow();
    await d.admin.query('DELETE FROM exam_results WHERE id IN (7001, 7002, 7003, 7004)');
    await expect(d.admin.query('SELECT * FROM attempt')).resolves.toBeDefined();
    expect((await run(d, 'view_queryable')).check).toMatchObject({ status: 'ok', value: 0 });
  });

  it('view_queryable is critical when planning the view fails', async () => {
    const d = await fresh();
    // Constant folding evaluates 1/0 while planning: the view errors for every reader.
    await d.admin.query('DROP VIEW attempt; CREATE VIEW attempt AS SELECT (1 / 0)::bigint AS id');
    const { check } = await run(d, 'view_queryable');
    expect(check).toMatchObject({ status: 'critical', value: 0 });
    expect(check.message).toContain('division by zero');
  });

  it('required_nulls is critical and names the column', async () => {
    const d = await fresh();
    await insertResult(d.admin, { id: 7101, student: null, json: { questionId: 1, isCorrect: true } });
    const { report, check } = await run(d, 'required_nulls');
    expectReported(report, check, 'required_nulls', 'critical', 1);
    expect(check.message).toContain('student_id: 1');
    expect(check.details).toContainEqual({ sampleExamResultIds: ['7101'] });
  });

  it('orphan_results is critical and names the missing questionId', async () => {
    const d = await fresh();
    await insertResult(d.admin, { id: 7201, student: 'legacy-9', json: { questionId: 424242, isCorrect: false } });
    const { report, check } = await run(d, 'orphan_results');
    expectReported(report, check, 'orphan_results', 'critical', 1);
    expect(check.message).toContain('424242');
  });
});

describe('runbook section 5: determinism', () => {
  it('duplicate_ids is a warning counting surplus rows', async () => {
    const d = await fresh();
    await d.admin.query('INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1011');
    await d.admin.query('INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1011 LIMIT 1');
    const { report, check } = await run(d, 'duplicate_ids');
    expectReported(report, check, 'duplicate_ids', 'warning', 2);
    expect(check.details).toContainEqual({ kind: 'duplicate_exam_result_question', groups: 1 });
  });
});

describe('runbook section 2: permissions', () => {
  it('permissions is critical for a revoked grant', async () => {
    const d = await fresh();
    await d.admin.query('REVOKE SELECT ON exam_results FROM seedtest_user');
    const { report, check } = await run(d, 'permissions');
    expectReported(report, check, 'permissions', 'critical', 1);
    expect(check.details).toEqual([{ role: 'seedtest_user', relation: 'exam_results', privilege: 'SELECT' }]);
  });

  it('permissions catches a view owner who lost SELECT on a base table', async () => {
    const d = await fresh();
    await d.admin.query(`DO $$ BEGIN CREATE ROLE view_owner_t NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
    await d.admin.query('ALTER VIEW attempt OWNER TO view_owner_t; GRANT SELECT ON exam_results TO view_owner_t');
    const { check } = await run(d, 'permissions');
    expect(check).toMatchObject({ status: 'critical', value: 1 });
    expect(check.details).toEqual([{ role: 'view_owner_t', relation: 'questions', privilege: 'SELECT (view owner)' }]);
    await d.admin.query('ALTER VIEW attempt OWNER TO CURRENT_USER; REVOKE ALL ON exam_results FROM view_owner_t');
  });

  it('permissions counts every relation when the role does not exist', async () => {
    const d = await fresh();
    const report = await runHealthCheck({ pool: d.pool(), target: 'faults', schema: 'public', appRole: 'no_such_role_x' }, { checks: ['permissions'] });
    expect(report.checks[0]).toMatchObject({ status: 'critical', value: 3, message: 'role no_such_role_x does not exist' });
  });
});

describe('runbook section 3: statistics, locks, long queries, connections, latency', () => {
  it('table_stats warns on dead tuples over 10 % and reports per table', async () => {
    const d = await fresh();
    await d.admin.query('ALTER TABLE exam_results SET (autovacuum_enabled = false)');
    // Over the 1,000-tuple floor of the ratio: a handful of dead rows in a tiny table is no bloat.
    await d.admin.query(`INSERT INTO exam_results (id, student_id, result_json, completed_at)
      SELECT 100000 + g, 'bulk-' || g, '{"questionId": 1, "itemId": 1}'::jsonb, now() - interval '1 day' FROM generate_series(1, 2000) g`);
    await d.admin.query('DELETE FROM exam_results WHERE id % 2 = 0');
    await d.admin.query('SELECT pg_stat_force_next_flush()');
    await waitFor('dead tuples in statistics', async () => {
      const r = await d.admin.query(`SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'exam_results'`);
      return Number(r.rows[0].n_dead_tup) > 0;
    });
    const { report, check } = await run(d, 'table_stats');
    expect(check).toMatchObject({ name: 'table_stats', severity: 'P2', status: 'warning', value: 1, threshold: 0 });
    expect(check.message).toMatch(/exam_results .*% dead tuples/);
    expect(metric(report, 'table_dead_tuple_ratio', { Table: 'exam_results' })!.value).toBeGreaterThan(0.1);
    expect(metric(report, 'table_dead_tuple_ratio', { Table: 'questions' })!.value).toBe(0);
    expect(metric(report, 'table_stats_age_hours', { Table: 'questions', Database: 'faults' })!.value).toBeLessThan(1);
  });

  it('table_stats warns on a table with rows that was never analyzed', async () => {
    db = await createTestDatabase();
    await db.admin.query('ALTER TABLE questions SET (autovacuum_enabled = false)');
    await db.admin.query(`INSERT INTO questions (id, item_id) SELECT g, g FROM generate_series(1, 20) g`);
    await db.admin.query('SELECT pg_stat_force_next_flush()');
    await waitFor('questions in statistics', async () => {
      const r = await db!.admin.query(`SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'questions'`);
      return Number(r.rows[0].n_mod_since_analyze) > 0;
    });
    const { check } = await run(db, 'table_stats');
    expect(check).toMatchObject({ status: 'warning', value: 1 });
    expect(check.message).toContain('questions (never analyzed)');
  });

  it('blocking is critical for a query stuck behind a lock, and names the blocker', async () => {
    const d = await fresh();
    const holder = await connect(d);
    const victim = await connect(d);
    await holder.query('BEGIN; LOCK TABLE exam_results IN ACCESS EXCLUSIVE MODE');
    const holderPid = (await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    const stuck = victim.query('SELECT count(*) FROM attempt').catch(() => undefined);
    await waitFor('the victim to wait', async () => {
      const r = await d.admin.query(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'exam_results'::regclass`);
      return Number(r.rows[0].n) > 0;
    });
    await new Promise((r) => setTimeout(r, 600));
    const { report, check } = await run(d, 'blocking', { settings: { blockedWaitSeconds: 0.5 } });
    expectReported(report, check, 'blocking', 'critical', 1);
    expect(check.message).toContain(String(holderPid));
    expect(check.details[0]).toMatchObject({ relation: 'exam_results', blockedBy: [holderPid] });
    await holder.query('ROLLBACK');
    await stuck;
  });

  it('long_running is a warning for a query on attempt past the limit, never for our own sessions', async () => {
    const d = await fresh();
    const other = await connect(d);
    const pid = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
    // Long enough to outlast the check on a loaded machine; cancelled once seen.
    const running = other.query('SELECT pg_sleep(30), count(*) FROM attempt').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1200));
    try {
      const { report, check } = await run(d, 'long_running', { settings: { longRunningSeconds: 1 } });
      expectReported(report, check, 'long_running', 'warning', 1);
      expect((check.details[0] as { query: string }).query).toContain('pg_sleep(30)');
    } finally {
      await d.admin.query('SELECT pg_cancel_backend($1)', [pid]);
      await running;
    }
  });

  it('connections is critical past 100 client connections', async () => {
    const d = await fresh();
    const before = (await run(d, 'connections')).check.value!;
    const clients = await Promise.all(Array.from({ length: 101 - before + 1 }, () => connect(d)));
    const { report, check } = await run(d, 'connections');
    expect(clients.length).toBeGreaterThan(0);
    expect(check.value).toBeGreaterThan(100);
    expectReported(report, check, 'connections', 'critical', check.value!);
  });

  it('query_latency counts a reader stuck behind a lock: warning past 400 ms, critical at the timeout', async () => {
    const d = await fresh();
    const holder = await connect(d);
    await holder.query('BEGIN; LOCK TABLE exam_results IN ACCESS EXCLUSIVE MODE');
    setTimeout(() => void holder.query('ROLLBACK'), 1200);
    const slow = await run(d, 'query_latency');
    expect(slow.check.status).toBe('warning');
    expect(slow.check.value).toBeGreaterThan(400);
    expect(slow.check.value).toBeLessThan(2000);
    expectReported(slow.report, slow.check, 'query_latency', 'warning', slow.check.value!);

    await holder.query('BEGIN; LOCK TABLE exam_results IN ACCESS EXCLUSIVE MODE');
    const stuck = await run(d, 'query_latency');
    expect(stuck.check).toMatchObject({ status: 'critical', severity: 'P1' });
    expect(stuck.check.value).toBeGreaterThan(2000);
    await holder.query('ROLLBACK');

    const fast = await run(d, 'query_latency');
    expect(fast.check).toMatchObject({ status: 'ok' });
    expect(fast.check.message).toContain('on attempt (the view');
  });

  it('query_latency counts a reader of attempt_mv stuck behind an uncommitted refresh as critical, not as a lock timeout', async () => {
    const d = await fresh();
    await d.admin.query(attemptMvSql('public'));
    await d.admin.query('REFRESH MATERIALIZED VIEW attempt_mv');
    const holder = await connect(d);
    // Students are picked from exam_results (not locked); the probe on attempt_mv then waits.
    await holder.query('BEGIN; REFRESH MATERIALIZED VIEW attempt_mv');
    const stuck = await run(d, 'query_latency');
    await holder.query('ROLLBACK');
    expect(stuck.check).toMatchObject({ status: 'critical', severity: 'P1' });
    expect(stuck.check.value).toBeGreaterThan(2000);
    expect(stuck.check.message).toMatch(/^timed out: .* on attempt_mv$/);
  });

  it('query_latency probes attempt_mv when it is populated', async () => {
    const d = await fresh();
    await d.admin.query(attemptMvSql('public'));
    await d.admin.query('REFRESH MATERIALIZED VIEW attempt_mv');
    const { check } = await run(d, 'query_latency');
    expect(check.status).toBe('ok');
    expect(check.message).toMatch(/over [1-5] probe\(s\) on attempt_mv/);
  });
});

describe('freshness and attempt_mv', () => {
  it('freshness warns when the newest result is older than a day', async () => {
    const d = await fresh();
    await d.admin.query(`UPDATE exam_results SET completed_at = completed_at - interval '3 days'`);
    const { report, check } = await run(d, 'freshness', { scope: 'full' });
    expect(check.value).toBeGreaterThan(3 * 86400);
    expectReported(report, check, 'freshness', 'warning', check.value!);
    expect(metric(report, 'attempt_row_count')).toMatchObject({ value: 24 });
  });

  it('mv_staleness warns when the last recorded refresh is over 2 h old, and is skipped without attempt_mv', async () => {
    const d = await fresh();
    expect((await run(d, 'mv_staleness')).check).toMatchObject({ status: 'skipped', value: null });
    await d.admin.query(opsSchemaSql());
    await d.admin.query(attemptMvSql('public'));
    await d.admin.query('REFRESH MATERIALIZED VIEW attempt_mv');
    await d.admin.query(`INSERT INTO attempt_ops.job_runs (job, started_at, finished_at, outcome) VALUES ('refresh-mv', now() - interval '3 hours', now() - interval '3 hours', 'success')`);
    const { report, check } = await run(d, 'mv_staleness');
    expect(check.value).toBeGreaterThanOrEqual(3 * 3600);
    expectReported(report, check, 'mv_staleness', 'warning', check.value!);
    await d.admin.query(`INSERT INTO attempt_ops.job_runs (job, started_at, finished_at, outcome) VALUES ('refresh-mv', now(), now(), 'success')`);
    expect((await run(d, 'mv_staleness')).check.status).toBe('ok');
  });
});

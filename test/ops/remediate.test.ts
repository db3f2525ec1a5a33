/**
 * Every fix against a real PostgreSQL: the dry run changes nothing (the state digest is identical
 * before and after) and reports the exact SQL; the apply repairs the seeded fault, the matching
 * health check turns ok, and an audit row records who, what, the SQL and the result.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { CheckName, Fix, RemediateReport } from '../../functions/contract/index.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runRemediation, type RemediateOptions } from '../../functions/jobs/remediate.ts';
import { v1SelectSql } from '../../functions/sql/reference.ts';
import { OWN_SESSION_REGISTER_SQL, ownSessionsSql } from '../../functions/sql/own-sessions.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';
import { holdLock, jobDeps } from '../jobs/helpers.ts';
import { rowMultiset, session, stateDigest, waitFor, type Session } from './helpers.ts';

let db: TestDatabase | undefined;
const sessions: Session[] = [];

afterEach(async () => {
  for (const s of sessions.splice(0)) {
    await db?.admin.query('SELECT pg_cancel_backend($1)', [s.pid]).catch(() => undefined);
    await s.end();
  }
  await db?.drop();
  db = undefined;
});

async function fresh(options: { seed?: boolean } = {}): Promise<TestDatabase> {
  db = await createTestDatabase();
  if (options.seed !== false) await seedClean(db.admin);
  return db;
}

function remediate(d: TestDatabase, fix: Fix, options: Partial<RemediateOptions> = {}, appRole = 'seedtest_user'): Promise<RemediateReport> {
  return runRemediation(jobDeps(d.pool('ops'), { appRole }), { fix, invokedBy: 'tester@laptop', ...options });
}

/** The dry run's contract: it reports, and the database is exactly as it was. */
async function dryRun(d: TestDatabase, fix: Fix, options: Partial<RemediateOptions> = {}, appRole?: string): Promise<RemediateReport> {
  const before = await stateDigest(d.admin);
  const report = await remediate(d, fix, options, appRole);
  expect(await stateDigest(d.admin)).toEqual(before);
  expect(report).toMatchObject({ version: 1, job: 'ops', action: 'remediate', fix, apply: false, dryRun: true, verification: [], audit: null, metrics: [] });
  expect(report.notes.join(' ')).toContain('dry run: nothing was changed');
  return report;
}

async function checkStatus(d: TestDatabase, name: CheckName, appRole = 'seedtest_user') {
  const r = await runHealthCheck(jobDeps(d.pool(), { appRole }), { checks: [name], scope: 'full', dryRun: true });
  return r.checks[0]!;
}

async function auditRows(d: TestDatabase) {
  const { rows } = await d.admin.query(`SELECT fix, target, invoked_by, db_user = current_user AS by_us, outcome, statements, result FROM attempt_ops.remediations ORDER BY id`);
  return rows;
}

describe('recreate-view', () => {
  it('recreates a dropped view with its grant; the dry run changes nothing', async () => {
    const d = await fresh();
    await d.admin.query('DROP VIEW attempt');
    expect((await checkStatus(d, 'view_exists')).status).toBe('critical');

    const plan = await dryRun(d, 'recreate-view');
    expect(plan.status).toBe('ok');
    expect(plan.actions.map((a) => [a.action, a.outcome])).toEqual([['create view', 'planned'], ['grant select', 'planned']]);
    expect(plan.actions[0]!.sql![0]).toMatch(/^CREATE OR REPLACE VIEW "public"."attempt" AS/);
    expect(plan.actions[1]!.sql).toEqual(['GRANT SELECT ON "public"."attempt" TO "seedtest_user"']);
    expect(JSON.stringify(plan)).not.toMatch(/DROP/i);

    const done = await remediate(d, 'recreate-view', { apply: true });
    expect(done.status).toBe('ok');
    expect(done.actions.map((a) => a.outcome)).toEqual(['done', 'done']);
    expect(done.verification.map((c) => [c.name, c.status])).toEqual([['view_exists', 'ok'], ['view_schema', 'ok']]);
    expect((await checkStatus(d, 'permissions')).status).toBe('ok');
    expect(Number((await d.admin.query('SELECT count(*) AS n FROM attempt')).rows[0].n)).toBe(24);

    const audit = await auditRows(d);
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ fix: 'recreate-view', target: 'test', invoked_by: 'tester@laptop', by_us: true, outcome: 'success' });
    expect(audit[0].statements).toEqual(done.actions.flatMap((a) => a.sql));
    expect(audit[0].result.verification).toEqual([expect.objectContaining({ name: 'view_exists', status: 'ok' }), expect.objectContaining({ name: 'view_schema', status: 'ok' })]);
    expect(done.audit).toEqual({ table: 'attempt_ops.remediations', id: 1 });

    // Idempotent: a second apply finds the V1 view and leaves it as it is.
    const again = await remediate(d, 'recreate-view', { apply: true });
    expect(again.actions).toHaveLength(1);
    expect(again.actions[0]).toMatchObject({ action: 'replace view', outcome: 'done', message: 'public.attempt already had the V1 definition: unchanged' });
  });

  it('reports an incompatible view with its drift and never drops it', async () => {
    const d = await fresh();
    const drifted = v1SelectSql('public').replace('AS correct_answer', 'AS right_answer').replace('  q.tags\nFROM', '  q.tags, 1 AS extra\nFROM');
    await d.admin.query(`DROP VIEW attempt; CREATE VIEW attempt AS ${drifted}`);
    const plan = await dryRun(d, 'recreate-view');
    expect(plan.status).toBe('critical');
    expect(plan.actions[0]).toMatchObject({ action: 'recreate view', outcome: 'blocked' });
    expect(plan.actions[0]!.message).toMatch(/incompatible public\.attempt exists \(2 column position\(s\) differ.*never drops it.*never CASCADE/);
    expect((plan.actions[0]!.before as { drift: { change: string }[] }).drift.map((x) => x.change)).toEqual(['renamed', 'added']);

    const viewdef = (await stateDigest(d.admin)).viewdef;
    const applied = await remediate(d, 'recreate-view', { apply: true });
    expect(applied.status).toBe('critical');
    expect(applied.actions[0]!.outcome).toBe('blocked');
    expect((await stateDigest(d.admin)).viewdef).toBe(viewdef);
    expect((await auditRows(d))[0]).toMatchObject({ outcome: 'blocked', statements: [] });
  });

  it('completes a view that lacks trailing V1 columns with CREATE OR REPLACE', async () => {
    const d = await fresh();
    const prefix = v1SelectSql('public').replace(',\n  q.tags\nFROM', '\nFROM');
    await d.admin.query(`DROP VIEW attempt; CREATE VIEW attempt AS ${prefix}; GRANT SELECT ON attempt TO seedtest_user`);
    const plan = await dryRun(d, 'recreate-view');
    expect(plan.actions[0]).toMatchObject({ action: 'replace view', outcome: 'planned' });
    const done = await remediate(d, 'recreate-view', { apply: true });
    expect(done.status).toBe('ok');
    expect((await checkStatus(d, 'permissions')).status).toBe('ok');
  });

  it('fails, audits the failure and changes nothing when the view is locked', async () => {
    const d = await fresh();
    const lock = await holdLock(d.url, 'attempt', 'ACCESS SHARE');
    try {
      await expect(remediate(d, 'recreate-view', { apply: true, lockTimeoutMs: 200 })).rejects.toMatchObject({ kind: 'lock-timeout' });
    } finally {
      await lock.release();
    }
    const audit = await auditRows(d);
    expect(audit).toEqual([expect.objectContaining({ outcome: 'failure', statements: [] })]);
    expect(audit[0].result.error).toMatch(/lock timeout/);
  });
});

describe('grant-select', () => {
  it('grants what the app role and the view owner lack, and the permissions check turns ok', async () => {
    const d = await fresh();
    await d.admin.query(`DO $$ BEGIN CREATE ROLE remediate_view_owner NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
    await d.admin.query(`REVOKE SELECT ON exam_results, attempt FROM seedtest_user; REVOKE USAGE ON SCHEMA public FROM PUBLIC;
      GRANT SELECT ON exam_results TO remediate_view_owner; ALTER VIEW attempt OWNER TO remediate_view_owner`);
    expect((await checkStatus(d, 'permissions')).status).toBe('critical');

    const plan = await dryRun(d, 'grant-select');
    expect(plan.actions.filter((a) => a.outcome === 'planned').flatMap((a) => a.sql)).toEqual([
      'GRANT USAGE ON SCHEMA "public" TO "seedtest_user"',
      'GRANT SELECT ON "public"."exam_results" TO "seedtest_user"',
      'GRANT SELECT ON "public"."attempt" TO "seedtest_user"',
      'GRANT SELECT ON "public"."questions" TO "remediate_view_owner"',
    ]);
    expect(plan.actions.find((a) => a.object === 'public.questions to seedtest_user')).toMatchObject({ outcome: 'exists' });
    expect(plan.actions.find((a) => a.object === 'public.attempt_mv to seedtest_user')).toMatchObject({ outcome: 'skipped' });

    const done = await remediate(d, 'grant-select', { apply: true });
    expect(done.status).toBe('ok');
    expect(done.verification).toEqual([expect.objectContaining({ name: 'permissions', status: 'ok', value: 0 })]);
    await d.admin.query('ALTER VIEW attempt OWNER TO CURRENT_USER; REVOKE ALL ON exam_results, questions FROM remediate_view_owner');
  });

  it('includes attempt_mv when it exists', async () => {
    const d = await fresh();
    await d.admin.query('CREATE MATERIALIZED VIEW attempt_mv AS SELECT * FROM attempt');
    const plan = await dryRun(d, 'grant-select');
    expect(plan.actions.find((a) => a.object === 'public.attempt_mv to seedtest_user')).toMatchObject({ outcome: 'planned', sql: ['GRANT SELECT ON "public"."attempt_mv" TO "seedtest_user"'] });
    expect((await remediate(d, 'grant-select', { apply: true })).status).toBe('ok');
  });

  it('is blocked, and changes nothing, when the app role does not exist', async () => {
    const d = await fresh();
    const plan = await dryRun(d, 'grant-select', {}, 'no_such_app_role');
    expect(plan.status).toBe('critical');
    expect(plan.actions[0]).toMatchObject({ outcome: 'blocked', message: expect.stringContaining('role no_such_app_role does not exist') });
  });
});

describe('analyze', () => {
  it('forces the analyze job and table_stats turns ok', async () => {
    const d = await fresh({ seed: false });
    await d.admin.query('ALTER TABLE questions SET (autovacuum_enabled = false); ALTER TABLE exam_results SET (autovacuum_enabled = false)');
    await d.admin.query(`INSERT INTO questions (id, item_id) SELECT g, g FROM generate_series(1, 20) g`);
    await d.admin.query('SELECT pg_stat_force_next_flush()');
    await waitFor('questions in statistics', async () => Number((await d.admin.query(`SELECT n_mod_since_analyze AS n FROM pg_stat_user_tables WHERE relname = 'questions'`)).rows[0].n) > 0);
    expect((await checkStatus(d, 'table_stats')).status).toBe('warning');

    const plan = await dryRun(d, 'analyze');
    expect(plan.actions.filter((a) => a.outcome === 'planned').map((a) => a.sql)).toEqual([['ANALYZE "public"."exam_results"'], ['ANALYZE "public"."questions"']]);

    const done = await remediate(d, 'analyze', { apply: true });
    expect(done.actions.filter((a) => a.outcome === 'done').map((a) => a.object)).toEqual(['public.exam_results', 'public.questions']);
    expect(done.verification).toEqual([expect.objectContaining({ name: 'table_stats', status: 'ok' })]);
    expect(done.status).toBe('ok');
  });
});

describe('cancel-long-running', () => {
  it('cancels a long query on attempt, never an unrelated query nor one of ours', async () => {
    const d = await fresh();
    const victim = await session(d.url, 'dashboard');
    const unrelated = await session(d.url, 'dashboard');
    const ours = await session(d.url, 'attempt-ops/refresh-mv');
    sessions.push(victim, unrelated, ours);
    // Ours by role and the (pid, backend_start) registry, never by application_name (blind-spots.test.ts).
    await d.admin.query(`CREATE SCHEMA attempt_ops; ${ownSessionsSql().join(';\n')}`);
    await ours.client.query(OWN_SESSION_REGISTER_SQL, ['refresh-mv']);
    const victimQuery = victim.client.query('SELECT pg_sleep(20), count(*) FROM attempt').then(() => 'finished', (e: { code?: string }) => e.code);
    const unrelatedQuery = unrelated.client.query('SELECT pg_sleep(20), count(*) FROM pg_namespace').then(() => 'finished', (e: { code?: string }) => e.code);
    const oursQuery = ours.client.query('SELECT pg_sleep(20), count(*) FROM attempt').then(() => 'finished', (e: { code?: string }) => e.code);
    await new Promise((r) => setTimeout(r, 1300));

    const plan = await dryRun(d, 'cancel-long-running', { longRunningSeconds: 1 });
    expect(plan.actions).toHaveLength(1);
    expect(plan.actions[0]).toMatchObject({ object: `pid ${victim.pid}`, action: 'cancel query', outcome: 'planned', pids: [victim.pid] });
    expect(plan.actions[0]!.message).toContain('SELECT pg_sleep(20), count(*) FROM attempt');
    expect(plan.actions[0]!.sql![0]).toMatch(new RegExp(`^SELECT pid, pg_cancel_backend\\(pid\\) AS cancelled FROM pg_stat_activity WHERE pid = ${victim.pid} AND query_start = '[^']+'::timestamptz AND state = 'active'$`));

    const done = await remediate(d, 'cancel-long-running', { apply: true, longRunningSeconds: 1 });
    expect(done.actions[0]).toMatchObject({ outcome: 'done', pids: [victim.pid] });
    expect(await victimQuery).toBe('57014');
    expect(done.verification).toEqual([expect.objectContaining({ name: 'long_running', status: 'ok' })]);
    expect(done.status).toBe('ok');

    const stillRunning = await d.admin.query<{ pid: number }>(`SELECT pid FROM pg_stat_activity WHERE state = 'active' AND pid = ANY ($1::int[]) ORDER BY pid`, [[unrelated.pid, ours.pid]]);
    expect(stillRunning.rows.map((r) => r.pid)).toEqual([unrelated.pid, ours.pid].sort((a, b) => a - b));
    await d.admin.query('SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE pid = ANY ($1::int[])', [[unrelated.pid, ours.pid]]);
    expect(await unrelatedQuery).toBe('57014');
    expect(await oursQuery).toBe('57014');
  });

  it('has nothing to cancel on a quiet database', async () => {
    const d = await fresh();
    const plan = await dryRun(d, 'cancel-long-running');
    expect(plan.actions).toEqual([]);
    expect(plan.notes[0]).toBe('no query on attempt has been active for more than 300 s: nothing to cancel');
    const done = await remediate(d, 'cancel-long-running', { apply: true });
    expect(done.status).toBe('ok');
  });
});

describe('quarantine-duplicates', () => {
  const columns = 'id, student_id, result_json, completed_at';

  it('moves only the surplus rows, keeps the oldest of each group, loses no row, and restores exactly', async () => {
    const d = await fresh();
    // Exact copies of one result, a later conflicting answer, an earlier copy (which is kept),
    // and poison rows sharing an id, which the view never groups.
    await d.admin.query(`INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1011`);
    await d.admin.query(`INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1011 LIMIT 1`);
    await d.admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json || '{"studentAnswer": "changed"}', completed_at + interval '1 minute' FROM exam_results WHERE id = 2012`);
    await d.admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json || '{"studentAnswer": "first"}', completed_at - interval '1 hour' FROM exam_results WHERE id = 1021`);
    await insertResult(d.admin, { id: 7777, student: 'legacy-x', json: { questionId: 'abc' } });
    await insertResult(d.admin, { id: 7777, student: 'legacy-x', json: { questionId: 'abc' } });
    const original = await rowMultiset(d.admin, 'exam_results', columns);
    expect(original.rows).toBe(30);
    const nonDuplicated = await rowMultiset(d.admin, `exam_results WHERE id NOT IN (1011, 2012, 1021)`, columns);
    expect((await checkStatus(d, 'duplicate_ids')).status).toBe('warning');

    const plan = await dryRun(d, 'quarantine-duplicates');
    expect(plan.actions.map((a) => [a.action, a.outcome])).toEqual([['create schema', 'planned'], ['create table', 'planned'], ['quarantine', 'planned']]);
    const move = plan.actions[2]!;
    expect(move).toMatchObject({ object: 'public.exam_results', rows: 4 });
    expect(move.sql![0]).toMatch(/DELETE FROM "public"\."exam_results" er USING ranked r\s+WHERE er\.ctid = r\.row_ctid AND r\.keep_rank > 1/);
    expect(move.sql![0]).not.toMatch(/NOT IN/i);
    expect(move.message).toContain('30 rows now, 26 after');

    const done = await remediate(d, 'quarantine-duplicates', { apply: true });
    expect(done.status).toBe('ok');
    expect(done.verification).toEqual([expect.objectContaining({ name: 'duplicate_ids', status: 'ok', value: 0 })]);
    const after = done.actions.find((a) => a.action === 'quarantine')!.after as { rowsBefore: number; moved: number; rowsAfter: number; batch: string };
    expect(after).toMatchObject({ rowsBefore: 30, moved: 4, rowsAfter: 26 });
    expect(after.moved + after.rowsAfter).toBe(after.rowsBefore);

    // Untouched: every row outside the duplicated groups; the poison pair stays too.
    expect(await rowMultiset(d.admin, `exam_results WHERE id NOT IN (1011, 2012, 1021)`, columns)).toEqual(nonDuplicated);
    // The oldest of each group stayed: the original 2012, the earlier copy of 1021.
    const kept = await d.admin.query(`SELECT id, result_json->>'studentAnswer' AS answer FROM exam_results WHERE id IN (1011, 2012, 1021) ORDER BY id`);
    expect(kept.rows).toEqual([{ id: '1011', answer: 'a1' }, { id: '1021', answer: 'first' }, { id: '2012', answer: 'b' }]);
    const quarantined = await d.admin.query(`SELECT quarantine_batch::text AS batch, quarantined_by, quarantine_ctid IS NOT NULL AS has_ctid FROM attempt_ops.exam_results_quarantine`);
    expect(quarantined.rows).toHaveLength(4);
    expect(new Set(quarantined.rows.map((r) => `${r.batch} ${r.quarantined_by} ${r.has_ctid}`))).toEqual(new Set([`${after.batch} tester@laptop true`]));
    // Moved plus left is the table before, as a multiset.
    const union = await rowMultiset(d.admin, `(SELECT ${columns} FROM exam_results UNION ALL SELECT ${columns} FROM attempt_ops.exam_results_quarantine) u`, columns);
    expect(union).toEqual(original);

    const restorePlan = await dryRun(d, 'quarantine-duplicates', { restore: true });
    expect(restorePlan.actions).toEqual([expect.objectContaining({ action: 'restore', outcome: 'planned', rows: 4 })]);
    const restored = await remediate(d, 'quarantine-duplicates', { apply: true, restore: true });
    expect(restored.status).toBe('ok');
    expect(restored.actions[0]).toMatchObject({ outcome: 'done', rows: 4, after: { rowsBefore: 26, restored: 4, rowsAfter: 30, batch: after.batch } });
    expect(await rowMultiset(d.admin, 'exam_results', columns)).toEqual(original);
    expect(Number((await d.admin.query('SELECT count(*) AS n FROM attempt_ops.exam_results_quarantine')).rows[0].n)).toBe(0);
    expect((await auditRows(d)).map((r) => [r.fix, r.outcome])).toEqual([['quarantine-duplicates', 'success'], ['quarantine-duplicates --restore', 'success']]);
  });

  it('touches nothing on a table without duplicates, and restores nothing when nothing is quarantined', async () => {
    const d = await fresh();
    const plan = await dryRun(d, 'quarantine-duplicates');
    expect(plan.actions).toEqual([expect.objectContaining({ action: 'quarantine', outcome: 'skipped', rows: 0 })]);
    const nothing = await dryRun(d, 'quarantine-duplicates', { restore: true });
    expect(nothing.actions).toEqual([expect.objectContaining({ action: 'restore', outcome: 'skipped', message: 'nothing is quarantined' })]);
  });

  it('restores a chosen batch', async () => {
    const d = await fresh();
    const original = await rowMultiset(d.admin, 'exam_results', columns);
    await d.admin.query(`INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1011`);
    const first = await remediate(d, 'quarantine-duplicates', { apply: true });
    await d.admin.query(`INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1012`);
    await remediate(d, 'quarantine-duplicates', { apply: true });
    expect(await rowMultiset(d.admin, 'exam_results', columns)).toEqual(original);
    const batch = (first.actions.find((a) => a.action === 'quarantine')!.after as { batch: string }).batch;
    const plan = await dryRun(d, 'quarantine-duplicates', { restore: true, batch });
    expect(plan.actions[0]).toMatchObject({ rows: 1, before: { batch } });
    expect(plan.notes.join(' ')).toContain('2 batches are quarantined');
    await remediate(d, 'quarantine-duplicates', { apply: true, restore: true, batch });
    expect(Number((await d.admin.query('SELECT count(*) AS n FROM exam_results WHERE id = 1011')).rows[0].n)).toBe(2);
  });
});

describe('create-indexes', () => {
  it("creates the runbook's base-table indexes concurrently, and a second apply finds them", async () => {
    const d = await fresh();
    const plan = await dryRun(d, 'create-indexes');
    expect(plan.actions.map((a) => [a.object, a.outcome, a.sql])).toEqual([
      ['public.idx_exam_results_student_completed', 'planned', [`CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_exam_results_student_completed" ON "public"."exam_results" (student_id, completed_at) WHERE (result_json->>'questionId') IS NOT NULL`]],
      ['public.idx_questions_item_id', 'planned', ['CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_questions_item_id" ON "public"."questions" (item_id)']],
    ]);
    expect(plan.notes.join('\n')).toMatch(/idx_attempt_student_time ON attempt: attempt is a view and cannot have an index/);
    expect(plan.notes.join('\n')).toMatch(/CHECK constraint with a subquery .*PostgreSQL rejects subqueries/);

    const done = await remediate(d, 'create-indexes', { apply: true });
    expect(done.status).toBe('ok');
    expect(done.actions.map((a) => [a.outcome, a.after])).toEqual([
      ['done', expect.objectContaining({ valid: true })],
      ['done', expect.objectContaining({ valid: true })],
    ]);
    expect(done.verification).toEqual([expect.objectContaining({ name: 'query_latency', status: 'ok' })]);
    const again = await dryRun(d, 'create-indexes');
    expect(again.actions.map((a) => a.outcome)).toEqual(['exists', 'exists']);
  });

  it('drops and rebuilds an INVALID index left by a failed concurrent build', async () => {
    const d = await fresh();
    await d.admin.query('CREATE INDEX idx_questions_item_id ON questions (item_id)');
    await d.admin.query(`UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'idx_questions_item_id'::regclass`);
    const plan = await dryRun(d, 'create-indexes');
    expect(plan.actions[1]).toMatchObject({
      action: 'recreate index', outcome: 'planned',
      sql: ['DROP INDEX CONCURRENTLY IF EXISTS "public"."idx_questions_item_id"', 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "idx_questions_item_id" ON "public"."questions" (item_id)'],
    });
    const done = await remediate(d, 'create-indexes', { apply: true });
    expect(done.actions[1]).toMatchObject({ outcome: 'done', after: { valid: true } });
    const valid = await d.admin.query(`SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx_questions_item_id'::regclass`);
    expect(valid.rows[0].indisvalid).toBe(true);
  });
});

describe('arguments', () => {
  it.each([
    [{ fix: 'drop-everything' }, /unknown fix "drop-everything"/],
    [{ fix: 'grant-select', restore: true }, /--restore applies only to quarantine-duplicates/],
    [{ fix: 'quarantine-duplicates', batch: '00000000-0000-0000-0000-000000000000' }, /--batch needs --restore/],
    [{ fix: 'quarantine-duplicates', restore: true, batch: "x'; DROP TABLE exam_results; --" }, /--batch must be a batch id/],
  ] as const)('rejects %j before any SQL', async (options, message) => {
    let used = false;
    const pool = new Proxy({}, { get: () => { used = true; throw new Error('no SQL expected'); } });
    await expect(runRemediation(jobDeps(pool as never), options as RemediateOptions)).rejects.toThrow(message);
    expect(used).toBe(false);
  });
});

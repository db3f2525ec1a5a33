/**
 * Every incident's diagnosis against a real PostgreSQL: ok on a clean database, the seeded fault
 * named with counts, samples and pids, and never a write: it runs in one READ ONLY transaction.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { DiagnoseReport, Finding, Incident } from '../../functions/contract/index.ts';
import type { Pool } from '../../functions/db/pool.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runDiagnose, type DiagnoseOptions } from '../../functions/jobs/diagnose.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { summarizePlan } from '../../functions/ops/plan.ts';
import { v1SelectSql } from '../../functions/sql/reference.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';
import { holdLock, jobDeps, type HeldLock } from '../jobs/helpers.ts';
import { session, stateDigest, waitFor, type Session } from './helpers.ts';

let db: TestDatabase | undefined;
const sessions: Session[] = [];
const locks: HeldLock[] = [];

afterEach(async () => {
  for (const l of locks.splice(0)) await l.release();
  for (const s of sessions.splice(0)) {
    await db?.admin.query('SELECT pg_cancel_backend($1)', [s.pid]).catch(() => undefined);
    await s.end();
  }
  await db?.drop();
  db = undefined;
});

async function fresh(): Promise<TestDatabase> {
  db = await createTestDatabase();
  await seedClean(db.admin);
  return db;
}

/** Runs the diagnosis and proves it changed nothing, unless a held lock keeps the digest from reading the tables. */
async function diagnose(d: TestDatabase, incident: Incident, options: Partial<DiagnoseOptions> = {}, appRole = 'seedtest_user', digest = true): Promise<DiagnoseReport> {
  const before = digest ? await stateDigest(d.admin) : null;
  const report = await runDiagnose(jobDeps(d.pool('ops'), { appRole }), { incident, ...options });
  if (before) {
    // Sessions come and go in the slow-queries cases; everything else must be exactly as it was.
    const { sessions: _b, ...restBefore } = before;
    const { sessions: _a, ...restAfter } = await stateDigest(d.admin);
    expect(restAfter).toEqual(restBefore);
  }
  expect(report).toMatchObject({ version: 1, job: 'ops', target: 'test', action: 'diagnose', incident, metrics: [] });
  expect(Object.keys(report)).toEqual(['version', 'job', 'target', 'startedAt', 'durationMs', 'status', 'metrics', 'action', 'incident', 'runbook', 'findings', 'next']);
  return report;
}

function find(r: DiagnoseReport, name: string): Finding {
  const f = r.findings.find((x) => x.name === name);
  if (!f) throw new Error(`no finding ${name} in ${r.findings.map((x) => x.name).join(', ')}`);
  return f;
}

describe('runs read-only', () => {
  /** Records every statement and, before COMMIT, asks the session whether its transaction is read-only. */
  function recordingPool(pool: Pool, log: string[]): Pool {
    return new Proxy(pool, {
      get(target, prop, receiver) {
        if (prop === 'query') return (...args: unknown[]) => { log.push(`pool: ${String(args[0])}`); return (target.query as (...a: unknown[]) => unknown)(...args); };
        if (prop !== 'connect') return Reflect.get(target, prop, receiver);
        return async () => {
          const client = await target.connect();
          const query = client.query.bind(client) as (...a: unknown[]) => Promise<unknown>;
          return new Proxy(client, {
            get(c, p, r) {
              if (p !== 'query') return Reflect.get(c, p, r);
              return async (...args: unknown[]) => {
                const sql = String(args[0]);
                if (sql === 'COMMIT') {
                  const ro = (await query(`SELECT current_setting('transaction_read_only') AS ro`)) as { rows: { ro: string }[] };
                  log.push(`transaction_read_only=${ro.rows[0]!.ro}`);
                }
                log.push(sql.trim().split('\n')[0]!.trim());
                return query(...args);
              };
            },
          });
        };
      },
    });
  }

  it.each(['view-missing', 'permission-denied', 'slow-queries', 'data-quality', 'duplicates'] as const)('%s: one READ ONLY transaction, nothing outside it', async (incident) => {
    const d = await fresh();
    const log: string[] = [];
    await runDiagnose(jobDeps(recordingPool(d.pool('ops'), log)), { incident });
    expect(log[0]).toBe('BEGIN READ ONLY');
    expect(log.filter((l) => l.startsWith('BEGIN'))).toEqual(['BEGIN READ ONLY']);
    // Outside it, only the question whether attempt_ops keeps open findings (it does not here).
    const outside = log.filter((l) => l.startsWith('pool:'));
    expect(outside).toEqual(incident === 'data-quality' || incident === 'duplicates' ? [expect.stringContaining('findings_merge')] : []);
    const commit = log.lastIndexOf('COMMIT');
    expect(log.slice(commit - 1, commit + 1)).toEqual(['transaction_read_only=on', 'COMMIT']);
  });
});

describe('arguments', () => {
  it('rejects an unknown incident before any SQL', async () => {
    let used = false;
    const pool = new Proxy({}, { get: () => { used = true; throw new Error('no SQL expected'); } });
    await expect(runDiagnose(jobDeps(pool as never), { incident: 'everything' as Incident })).rejects.toThrow(/unknown incident "everything"/);
    expect(used).toBe(false);
  });
});

describe('view-missing (runbook section 1)', () => {
  it('is ok on a healthy database', async () => {
    const d = await fresh();
    const r = await diagnose(d, 'view-missing');
    expect(r.status).toBe('ok');
    expect(r.runbook).toBe('#1-view-missing-p0');
    expect(find(r, 'view').data).toMatchObject({ pgViews: { schemaname: 'public', viewname: 'attempt' }, relkind: 'v' });
    expect(r.next).toEqual(['attempt-ops check --only view_exists,view_schema']);
  });

  it('names a dropped view, attempt_mv and the fix', async () => {
    const d = await fresh();
    await d.admin.query('DROP VIEW attempt');
    const r = await diagnose(d, 'view-missing');
    expect(r.status).toBe('critical');
    expect(find(r, 'view')).toMatchObject({ status: 'critical', check: 'view_exists', message: 'view public.attempt does not exist', data: { pgViews: null, relkind: null } });
    expect(find(r, 'attempt_mv')).toMatchObject({ status: 'ok', data: { exists: false } });
    expect(find(r, 'base_tables').status).toBe('ok');
    expect(r.next[0]).toBe('attempt-ops remediate recreate-view');
  });

  it('reports drift from the V1 lock', async () => {
    const d = await fresh();
    await d.admin.query(`DROP VIEW attempt; CREATE VIEW attempt AS ${v1SelectSql('public').replace('AS correct_answer', 'AS right_answer')}`);
    const r = await diagnose(d, 'view-missing');
    expect(find(r, 'view').status).toBe('ok');
    expect(find(r, 'schema_lock')).toMatchObject({ status: 'critical', check: 'view_schema' });
    expect(find(r, 'schema_lock').data.differences).toEqual([expect.objectContaining({ position: 7, change: 'renamed' })]);
  });
});

describe('permission-denied (runbook section 2)', () => {
  it('is ok on a healthy database and shows the grants', async () => {
    const d = await fresh();
    const r = await diagnose(d, 'permission-denied');
    expect(r.status).toBe('ok');
    expect(find(r, 'grants').data.relations).toEqual([
      { relation: 'exam_results', exists: true, select: true, explicitGrants: ['SELECT'] },
      { relation: 'questions', exists: true, select: true, explicitGrants: ['SELECT'] },
      { relation: 'attempt', exists: true, select: true, explicitGrants: ['SELECT'] },
      { relation: 'attempt_mv', exists: false, select: null, explicitGrants: [] },
    ]);
  });

  it('names the missing grants, the schema usage and the view owner lacking SELECT', async () => {
    const d = await fresh();
    await d.admin.query(`DO $$ BEGIN CREATE ROLE diag_view_owner NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
    await d.admin.query(`REVOKE SELECT ON exam_results FROM seedtest_user; REVOKE USAGE ON SCHEMA public FROM PUBLIC;
      GRANT SELECT ON exam_results TO diag_view_owner; ALTER VIEW attempt OWNER TO diag_view_owner`);
    try {
      const r = await diagnose(d, 'permission-denied');
      expect(r.status).toBe('critical');
      expect(find(r, 'view_owner').data.pgViews).toMatchObject({ viewowner: 'diag_view_owner' });
      expect(find(r, 'grants')).toMatchObject({ status: 'critical', message: 'seedtest_user lacks USAGE on schema public, SELECT on public.exam_results', data: { schemaUsage: false } });
      expect(find(r, 'view_owner_grants')).toMatchObject({ status: 'critical', data: { owner: 'diag_view_owner', tables: [{ relation: 'exam_results', select: true }, { relation: 'questions', select: false }] } });
      expect(r.next[0]).toBe('attempt-ops remediate grant-select');
    } finally {
      await d.admin.query('ALTER VIEW attempt OWNER TO CURRENT_USER; REVOKE ALL ON exam_results FROM diag_view_owner');
    }
  });

  it('says when the app role does not exist', async () => {
    const d = await fresh();
    const r = await diagnose(d, 'permission-denied', {}, 'no_such_app_role');
    expect(find(r, 'app_role')).toMatchObject({ status: 'critical', data: { exists: false } });
  });
});

describe('slow-queries (runbook section 3)', () => {
  it('explains section 3 for a sampled student and names the plan signs, stats, indexes', async () => {
    const d = await fresh();
    const r = await diagnose(d, 'slow-queries');
    expect(r.status).toBe('ok');
    expect(r.findings.map((f) => f.name)).toEqual(['blocking', 'long_running', 'statistics', 'indexes', 'plan']);
    const plan = find(r, 'plan');
    expect(plan).toMatchObject({ status: 'ok', check: 'query_latency' });
    expect(plan.data.student).toMatch(/^[0-9a-f-]{36}$/);
    expect(plan.data.executionMs).toEqual(expect.any(Number));
    expect(plan.data.planningMs).toEqual(expect.any(Number));
    // The V1 view's window function cannot take the student filter below it: always a scan.
    expect((plan.data.warningSigns as { kind: string }[]).map((s) => s.kind)).toContain('seq_scan_exam_results');
    expect(find(r, 'indexes').message).toMatch(/missing or invalid: public\.idx_exam_results_student_completed, public\.idx_questions_item_id/);
    expect(r.next).toContain('attempt-ops remediate create-indexes --apply');
    expect((find(r, 'statistics').data.pgStatUserTables as unknown[]).length).toBe(2);
  });

  it('names blockers and victims with pids and wait times, and a plan that cannot get its lock', async () => {
    const d = await fresh();
    const lock = await holdLock(d.url, 'exam_results');
    locks.push(lock);
    const victim = await session(d.url, 'report-app');
    sessions.push(victim);
    const waiting = victim.client.query('SELECT count(*) FROM attempt').catch(() => undefined);
    await waitFor('the victim to wait', async () => Number((await d.admin.query(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted AND relation = 'exam_results'::regclass`)).rows[0].n) > 0);
    await new Promise((r) => setTimeout(r, 600));
    const r = await diagnose(d, 'slow-queries', { settings: { blockedWaitSeconds: 0.5 }, explainLockTimeoutMs: 200 }, 'seedtest_user', false);
    expect(r.status).toBe('critical');
    const blocking = find(r, 'blocking');
    expect(blocking.status).toBe('critical');
    expect(blocking.data.victims).toEqual([expect.objectContaining({ pid: victim.pid, relation: 'exam_results', blockedBy: [lock.pid], waitSeconds: expect.any(Number) })]);
    expect((blocking.data.victims as { waitSeconds: number }[])[0]!.waitSeconds).toBeGreaterThan(0.5);
    expect(blocking.data.blockers).toEqual([expect.objectContaining({ pid: lock.pid, application: 'test-lock-holder', transactionSeconds: expect.any(Number) })]);
    expect(find(r, 'plan')).toMatchObject({ status: 'critical', data: { lockWait: true } });
    expect(r.next[0]).toBe('attempt-ops remediate cancel-long-running');
    await lock.release();
    await waiting;
  });

  it('lists long-running queries on attempt past the threshold', async () => {
    const d = await fresh();
    const other = await session(d.url, 'etl');
    sessions.push(other);
    // Long enough to outlast a slow diagnosis on a loaded machine; cancelled once seen.
    const running = other.client.query('SELECT pg_sleep(30), count(*) FROM attempt').catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1200));
    try {
      const r = await diagnose(d, 'slow-queries', { settings: { longRunningSeconds: 1 } });
      const long = find(r, 'long_running');
      expect(long).toMatchObject({ status: 'warning', check: 'long_running' });
      expect(long.data.queries).toEqual([expect.objectContaining({ pid: other.pid, application: 'etl', query: expect.stringContaining('pg_sleep(30)') })]);
    } finally {
      await d.admin.query('SELECT pg_cancel_backend($1)', [other.pid]);
      await running;
    }
  });

  it('names a sort spilling to disk, and bounds the EXPLAIN with a statement timeout', async () => {
    const d = await fresh();
    await d.admin.query(`INSERT INTO exam_results (id, student_id, result_json, completed_at)
      SELECT 50000 + g, 'bulk-' || (g % 50), jsonb_build_object('questionId', 1 + g % 4, 'studentAnswer', repeat('x', 50), 'isCorrect', true, 'responseTime', 900),
             now() - make_interval(mins => g) FROM generate_series(1, 6000) g`);
    await d.admin.query('ANALYZE exam_results');
    await d.admin.query(`ALTER DATABASE ${d.name} SET work_mem = '64kB'`);
    const r = await diagnose(d, 'slow-queries');
    const signs = find(r, 'plan').data.warningSigns as { kind: string; node: Record<string, unknown> }[];
    expect(signs.map((s) => s.kind)).toContain('sort_spill');
    expect(signs.find((s) => s.kind === 'sort_spill')!.node['Sort Space Type']).toBe('Disk');
    expect(find(r, 'plan').data.tempWrittenBlocks).toBeGreaterThan(0);

    const bounded = await diagnose(d, 'slow-queries', { explainTimeoutMs: 1 });
    expect(find(bounded, 'plan')).toMatchObject({ status: 'critical', data: { timedOut: true, timeoutMs: 1 } });
    expect(find(bounded, 'plan').message).toMatch(/did not finish within 1 ms/);
  });

  it('reports stale statistics', async () => {
    db = await createTestDatabase();
    const d = db;
    await d.admin.query('ALTER TABLE questions SET (autovacuum_enabled = false)');
    await d.admin.query(`INSERT INTO questions (id, item_id) SELECT g, g FROM generate_series(1, 20) g`);
    await d.admin.query('SELECT pg_stat_force_next_flush()');
    await waitFor('questions in statistics', async () => Number((await d.admin.query(`SELECT n_mod_since_analyze AS n FROM pg_stat_user_tables WHERE relname = 'questions'`)).rows[0].n) > 0);
    const r = await diagnose(d, 'slow-queries');
    expect(find(r, 'statistics')).toMatchObject({ status: 'warning', check: 'table_stats' });
    expect(find(r, 'statistics').message).toContain('questions (never analyzed)');
    expect(r.next).toContain('attempt-ops remediate analyze --apply');
  });
});

describe('data-quality (runbook section 4)', () => {
  it('is ok on a healthy database', async () => {
    const d = await fresh();
    const r = await diagnose(d, 'data-quality');
    expect(r.status).toBe('ok');
    expect(r.findings.map((f) => [f.name, f.status])).toEqual([['poison_rows', 'ok'], ['null_required', 'ok'], ['orphan_results', 'ok'], ['no_question_id', 'ok']]);
  });

  it('counts each class and shows up to ten samples of each', async () => {
    const d = await fresh();
    for (let i = 0; i < 12; i++) await insertResult(d.admin, { id: 8100 + i, student: null, json: { questionId: 1, isCorrect: true } });
    await insertResult(d.admin, { id: 8201, student: 'legacy-1', json: { questionId: 424242 } });
    await insertResult(d.admin, { id: 8202, student: 'legacy-1', json: { questionId: 424243 } });
    await insertResult(d.admin, { id: 8301, student: 'legacy-1', json: { questionId: '12.5' } });
    await insertResult(d.admin, { id: 8302, student: 'legacy-1', json: { questionId: 2, responseTime: 'fast' } });
    await insertResult(d.admin, { id: 8401, student: 'legacy-1', json: { isCorrect: true } });
    const r = await diagnose(d, 'data-quality');
    expect(r.status).toBe('critical');

    const nulls = find(r, 'null_required');
    expect(nulls).toMatchObject({ status: 'critical', check: 'required_nulls', data: { total: 12, counts: { student_id: 12, id: 0 } } });
    expect(nulls.data.samples).toHaveLength(10);
    expect((nulls.data.samples as { exam_result_id: string; null_columns: string[] }[])[0]).toMatchObject({ exam_result_id: '8100', null_columns: ['student_id'] });

    const orphans = find(r, 'orphan_results');
    expect(orphans).toMatchObject({ status: 'critical', data: { total: 2, missingQuestionIds: [424242, 424243] } });
    expect((orphans.data.samples as { exam_result_id: string }[]).map((s) => s.exam_result_id)).toEqual(['8201', '8202']);

    const poison = find(r, 'poison_rows');
    expect(poison).toMatchObject({ status: 'critical', check: 'view_queryable', data: { total: 2, counts: { non_integer_question_id: 1, non_numeric_response_time: 1 } } });
    expect(poison.data.samples).toEqual([
      expect.objectContaining({ exam_result_id: '8301', bad_field: 'questionId', question_id_raw: '12.5' }),
      expect.objectContaining({ exam_result_id: '8302', bad_field: 'responseTime', response_time_raw: 'fast' }),
    ]);

    expect(find(r, 'no_question_id')).toMatchObject({ status: 'ok', data: { total: 1, samples: [expect.objectContaining({ exam_result_id: 8401 })] } });
  });
});

describe('open findings', () => {
  it('what data-quality finds over every row is remembered, and the next hourly run counts it without re-reading those rows', async () => {
    const d = await fresh();
    const pool = d.pool('ops');
    await runBootstrap(jobDeps(pool), { apply: true });
    // Written with the capture off (as a restore would): no change names these rows.
    await d.admin.query('ALTER TABLE exam_results DISABLE TRIGGER attempt_ops_capture_insert');
    for (let i = 0; i < 3; i++) await insertResult(d.admin, { id: 8500 + i, student: null, json: { questionId: 1, isCorrect: true }, at: '2026-01-01T00:00:00Z' });
    await d.admin.query('ALTER TABLE exam_results ENABLE ALWAYS TRIGGER attempt_ops_capture_insert');
    // A first hourly run takes the capture's cursor; it reads the changes, of which there are none.
    await runHealthCheck(jobDeps(pool), { checks: ['required_nulls'] });

    const r = await diagnose(d, 'data-quality', {}, 'seedtest_user', false);
    expect(find(r, 'null_required')).toMatchObject({ status: 'critical', data: { total: 3 } });
    const open = await d.admin.query(`SELECT check_name, student, rows::int FROM attempt_ops.open_findings ORDER BY check_name`);
    expect(open.rows).toEqual([{ check_name: 'required_nulls', student: null, rows: 3 }]);

    const hourly = await runHealthCheck(jobDeps(pool), { checks: ['required_nulls'] });
    expect(hourly.checks[0]).toMatchObject({ name: 'required_nulls', status: 'critical', value: 3 });
  });
});

describe('duplicates (runbook section 5)', () => {
  it('is ok on a healthy database', async () => {
    const d = await fresh();
    const r = await diagnose(d, 'duplicates');
    expect(r.status).toBe('ok');
    expect(r.next).toEqual(['attempt-ops check --full --only duplicate_ids']);
  });

  it('counts duplicate attempt ids and duplicated source rows with up to ten sample groups', async () => {
    const d = await fresh();
    // Twelve duplicated results; 1011 three times, one of them with another answer.
    await d.admin.query(`INSERT INTO exam_results SELECT * FROM exam_results WHERE id IN (1011, 1012, 1013, 1014, 1021, 1022, 1023, 1024, 1031, 1032, 1033, 1034)`);
    await d.admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json || '{"studentAnswer": "other"}', completed_at + interval '1 minute' FROM exam_results WHERE id = 1011 LIMIT 1`);
    const r = await diagnose(d, 'duplicates');
    expect(r.status).toBe('warning');
    const ids = find(r, 'duplicate_attempt_ids');
    expect(ids).toMatchObject({ status: 'warning', check: 'duplicate_ids', data: { groups: 12, surplusRows: 13 } });
    expect(ids.data.samples).toHaveLength(10);
    expect((ids.data.samples as { rows: number; exam_result_ids: string[] }[])[0]).toMatchObject({ rows: 3, exam_result_ids: ['1011'] });
    const rows = find(r, 'duplicate_source_rows');
    expect(rows).toMatchObject({ status: 'warning', data: { groups: 12, surplusRows: 13 } });
    expect((rows.data.samples as { exam_result_id: string; occurrences: number; identical: boolean; answers: string[] }[])[0]).toMatchObject({
      exam_result_id: '1011', occurrences: 3, identical: false, answers: ['a1', 'a1', 'other'],
    });
    expect(find(r, 'item_collisions').status).toBe('ok');
    expect(r.next[0]).toBe('attempt-ops remediate quarantine-duplicates');
  });
});

describe('summarizePlan', () => {
  it('names each runbook warning sign in an EXPLAIN JSON plan', () => {
    const plan = [{
      Plan: {
        'Node Type': 'WindowAgg', 'Temp Written Blocks': 120,
        Plans: [{
          'Node Type': 'Sort', 'Sort Method': 'external merge', 'Sort Space Used': 2048, 'Sort Space Type': 'Disk',
          Plans: [{
            'Node Type': 'Hash Join', 'Total Cost': 25000.5, 'Hash Cond': '(q.id = x)',
            Plans: [{ 'Node Type': 'Seq Scan', 'Relation Name': 'exam_results', 'Actual Rows': 2000000 }, { 'Node Type': 'Seq Scan', 'Relation Name': 'questions' }],
          }],
        }],
      },
      'Planning Time': 12.3,
      'Execution Time': 5400.1,
    }];
    const s = summarizePlan(plan);
    expect(s).toMatchObject({ planningMs: 12.3, executionMs: 5400.1, tempWrittenBlocks: 120 });
    expect(s.signs.map((x) => x.kind)).toEqual(['sort_spill', 'expensive_hash_join', 'seq_scan_exam_results', 'slow_planning']);
    expect(summarizePlan([{ Plan: { 'Node Type': 'Index Scan', 'Relation Name': 'exam_results' }, 'Planning Time': 0.2, 'Execution Time': 1 }]).signs).toEqual([]);
  });
});

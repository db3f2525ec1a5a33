/**
 * Faults around the health check (docs/RELIABILITY.md): a fault never hides an incident, never
 * hangs the job past its budget, and never crashes it.
 */
import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../../functions/cli/main.ts';
import type { CliIo } from '../../functions/cli/io.ts';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool } from '../../functions/db/pool.ts';
import { seedReferenceData } from '../../functions/demo/seed.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

async function cli(args: string[], env: NodeJS.ProcessEnv = {}) {
  let out = '';
  const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (out += t), env, color: false };
  const started = Date.now();
  const code = await main(args, io);
  return { code, out, ms: Date.now() - started };
}

describe('database unreachable', () => {
  let silent: Server;
  let port: number;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts the TCP connection and never answers: the "no answer" case.
    silent = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    port = (silent.address() as { port: number }).port;
  });
  afterAll(async () => {
    sockets.forEach((s) => s.destroy());
    await new Promise((r) => silent.close(r));
  });

  it.each([
    ['refused', 'postgres://u:pw@127.0.0.1:1/db', /cannot connect \(ECONNREFUSED\)/],
    ['unresolvable', 'postgres://u:pw@no-such-host.invalid:5432/db', /cannot connect \((ENOTFOUND|EAI_AGAIN)\)/],
  ])('%s: exit 3 with one line, quickly', async (_what, url, message) => {
    const r = await cli(['check', '--database-url', url]);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(message);
    expect(r.out.trim().split('\n')).toHaveLength(1);
  });

  it('no answer: gives up within the connect timeout, exit 3', async () => {
    const r = await cli(['check', '--database-url', `postgres://u:pw@127.0.0.1:${port}/db?connect_timeout=1`]);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/cannot connect/);
    expect(r.ms).toBeLessThan(4_000);
  });
});

describe('faults inside a healthy database', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedReferenceData(db.admin, { rows: 20_000 });
    await db.admin.query('ANALYZE exam_results; ANALYZE questions');
  });
  afterAll(async () => db?.drop());
  const deps = () => ({ pool: db.pool('faults'), target: 'faults', schema: 'public', appRole: 'seedtest_user' });

  it('an ACCESS EXCLUSIVE lock on exam_results: affected checks are unknown within their budget, the rest report', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE exam_results IN ACCESS EXCLUSIVE MODE');
      const started = Date.now();
      const report = await runHealthCheck(deps(), { lockTimeoutMs: 500 });
      const elapsed = Date.now() - started;
      const by = Object.fromEntries(report.checks.map((c) => [c.name, c]));
      for (const name of ['view_queryable', 'required_nulls', 'orphan_results', 'duplicate_ids', 'freshness'] as const) {
        expect(by[name], name).toMatchObject({ status: 'unknown', value: null });
        expect(by[name]!.message).toMatch(/lock timeout/);
      }
      // Unaffected checks still report, and the locked reader is the latency incident it is.
      for (const name of ['view_exists', 'view_schema', 'permissions', 'table_stats', 'connections'] as const) expect(by[name]!.status, name).toBe('ok');
      expect(by.query_latency).toMatchObject({ status: 'critical' });
      // Five lock waits of 0.5 s two at a time, plus the 2.5 s latency cut-off: well under 10 s.
      expect(elapsed).toBeLessThan(10_000);
      expect(report.status).toBe('critical');
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
  });

  it('one check over its statement timeout is unknown; every other check still reports', async () => {
    const report = await runHealthCheck(deps(), { timeouts: { duplicate_ids: 1 } });
    const dup = report.checks.find((c) => c.name === 'duplicate_ids')!;
    expect(dup).toMatchObject({ status: 'unknown', value: null });
    expect(dup.message).toMatch(/statement timeout/);
    // Every other check reached a verdict (latency on a loaded machine may be a warning: still a verdict).
    expect(report.checks.filter((c) => c.name !== 'duplicate_ids' && c.status === 'unknown')).toEqual([]);
    // Skipped here, so valueless: mv_staleness and mv_fidelity (no attempt_mv), capture (not installed).
    expect(report.checks.filter((c) => c.name !== 'duplicate_ids' && c.value !== null).length).toBe(14);
    expect(report.metrics.some((m) => m.name === 'attempt_duplicate_ids')).toBe(false);
  });

  it('a backend terminated in the middle of a check: that check reports it, the pool drops the client, the next run succeeds', async () => {
    const pool = createPool(fromUrl(db.url, 'test'), { job: 'health-check', max: 1 });
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('BEGIN; LOCK TABLE exam_results IN ACCESS EXCLUSIVE MODE');
      // Caught at once: the run may fail before the loop below sees its kill, and a rejection
      // nobody listens to yet is an unhandled error to vitest.
      const running = runHealthCheck({ ...deps(), pool }, { checks: ['required_nulls'], lockTimeoutMs: 10_000 }).catch((e: unknown) => e);
      // Our session waits on the lock; kill it from outside, as an operator or a failover would.
      let killed = 0;
      for (let i = 0; i < 100 && killed === 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        const r = await holder.query(`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'attempt-ops/health-check' AND wait_event_type = 'Lock'`);
        killed = r.rows[0].n;
      }
      expect(killed).toBe(1);
      expect(await running).toMatchObject({ kind: 'connection' });
      await holder.query('ROLLBACK');
      const next = await runHealthCheck({ ...deps(), pool }, { checks: ['required_nulls', 'view_exists'] });
      expect(next.checks.map((c) => c.status)).toEqual(['ok', 'ok']);
    } finally {
      await holder.end();
      await pool.end();
    }
  });
});

describe('poison source rows', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    const longText = 'ü'.repeat(5_000) + '🙂'.repeat(1_000);
    const rows: Array<[number, string | null, unknown]> = [
      [6001, 'legacy-a', [1, 2, 3]],
      [6002, 'legacy-a', 'just a string'],
      [6003, 'legacy-a', { questionId: null, responseTime: null }],
      [6004, 'legacy-a', { questionId: '12.5' }],
      [6005, 'legacy-a', { questionId: '1e3' }],
      [6006, 'legacy-a', { questionId: ' 2 ', responseTime: 15 }],
      [6007, 'legacy-a', { questionId: '123456789012345678901234567890' }],
      [6008, 'legacy-a', { questionId: 1, responseTime: 'NaN' }],
      [6009, 'legacy-a', { questionId: 2, responseTime: -250 }],
      [6010, 'legacy-a', { questionId: 3, responseTime: 'slow' }],
      [6011, longText, { questionId: 4, studentAnswer: longText, responseTime: '1e5' }],
      [6012, 'ключ-студента', { questionId: 1, studentAnswer: '答え', isCorrect: 'yes' }],
    ];
    for (const [id, student, json] of rows) await insertResult(db.admin, { id, student, json });
  });
  afterAll(async () => db?.drop());

  it('classifies and counts them; no check crashes', async () => {
    const report = await runHealthCheck({ pool: db.pool(), target: 'poison', schema: 'public', appRole: 'seedtest_user' }, { scope: 'full' });
    const by = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    // "12.5", "1e3" and the 30-digit id break the join; "NaN" and "slow" break response_time_ms.
    expect(by.view_queryable).toMatchObject({ status: 'critical', value: 5 });
    expect(by.view_queryable!.details).toContainEqual({ kind: 'non_integer_question_id', rows: 3 });
    expect(by.view_queryable!.details).toContainEqual({ kind: 'non_numeric_response_time', rows: 2 });
    // Arrays, strings and nulls have no questionId: the view skips them, as do the checks.
    expect(by.orphan_results).toMatchObject({ status: 'ok', value: 0 });
    expect(by.required_nulls).toMatchObject({ status: 'ok', value: 0 });
    expect(report.checks.filter((c) => c.status === 'unknown').map((c) => c.name)).toEqual(['query_latency']);
    expect(by.query_latency!.message).toMatch(/invalid input syntax|cannot convert|out of range/);
  });
});

describe('no secret in any output', () => {
  it('a verbose CLI run with a known password never prints it, in success or failure', async () => {
    const db = await createTestDatabase();
    const password = 'Canary-Pw-7f3a9c';
    try {
      await seedClean(db.admin);
      await db.admin.query(`DO $$ BEGIN CREATE ROLE canary_login LOGIN SUPERUSER PASSWORD '${password}'; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
      const u = new URL(db.url);
      u.username = 'canary_login';
      u.password = password;
      const runs = [
        await cli(['check', '--verbose', '--json', '--metrics', 'stdout', '--database-url', u.toString()]),
        await cli(['check', '--verbose', '--database-url', u.toString().replace(db.name, 'no_such_db')]),
        await cli(['check', '--verbose', '--database-url', u.toString().replace(/:(\d+)\//, ':1/')]),
      ];
      expect(runs.map((r) => r.code)).toEqual([0, 3, 3]);
      for (const r of runs) expect(r.out).not.toContain(password);
      expect(runs[0]!.out).toContain('"level":"info"');
    } finally {
      await db.admin.query('DROP ROLE IF EXISTS canary_login').catch(() => undefined);
      await db.drop();
    }
  });
});

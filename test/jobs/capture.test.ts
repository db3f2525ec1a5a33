/**
 * The change capture as a foundation (issue 10), against a real PostgreSQL: schema events never
 * break an application's write, writes outside the ordinary path are seen, a cursor never skips a
 * change that commits out of order, and after any of these the copy equals the view within one
 * refresh (ties compared as multisets) or the capture check is critical and says why.
 */
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import { divergenceSql } from '../../functions/sql/incremental.ts';
import { referenceTablesSql, v1ViewSql } from '../../functions/sql/reference.ts';
import { attemptMvSql, opsSchemaSql } from '../../functions/sql/ops-schema.ts';
import { installCapture } from '../../functions/jobs/incremental/capture-install.ts';
import { createTestDatabase, ensureRole, resetToClean, seedClean, type TestDatabase } from '../support/db.ts';
import { count, jobDeps } from './helpers.ts';

/** Rows that differ between the view and the copy, ties as multisets. */
const DIVERGENT = `SELECT divergent AS n FROM (${divergenceSql('SELECT * FROM attempt', 'SELECT * FROM attempt_mv')}) d`;

async function fresh(db: TestDatabase): Promise<void> {
  await resetToClean(db.admin);
  const report = await runBootstrap(jobDeps(db.pool()), { apply: true });
  expect(report.status).toBe('ok');
  await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
  expect(await count(db.admin, DIVERGENT)).toBe(0);
}

async function captureCheck(db: TestDatabase) {
  const report = await runHealthCheck({ pool: db.pool(), target: 'test', schema: 'public', appRole: 'seedtest_user' }, { checks: ['capture'] });
  return report.checks[0]!;
}

async function write(db: TestDatabase, id: number, student: string, at = 'now()'): Promise<void> {
  await db.admin.query(`INSERT INTO exam_results VALUES (${id}, '${student}', '{"questionId": 2, "isCorrect": true}', ${at})`);
}

describe('change capture', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());
  beforeEach(async () => fresh(db));

  it.each([
    ['exam_results.student_id', 'ALTER TABLE exam_results RENAME COLUMN student_id TO learner_id'],
    ['exam_results.result_json', 'ALTER TABLE exam_results RENAME COLUMN result_json TO payload'],
    ['questions.tags', 'ALTER TABLE questions RENAME COLUMN tags TO labels'],
  ])('after a rename of %s, writes succeed and one refresh makes the copy equal to the view', async (_what, ddl) => {
    await db.admin.query(ddl);
    // Act: the application writes through every statement kind.
    await write(db, 9001, 'legacy-9001');
    await db.admin.query(`UPDATE exam_results SET completed_at = completed_at - interval '1 day' WHERE id = 1011`);
    await db.admin.query(`DELETE FROM exam_results WHERE id = 1012`);
    await db.admin.query(`UPDATE questions SET question_text = 'renamed?' WHERE id = 3`);
    const refreshed = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    // Assess
    expect(refreshed.status).toBe('ok');
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    expect((await captureCheck(db)).status).toBe('ok');
    const events = await db.admin.query(`SELECT command_tag, who FROM attempt_ops.ddl_events`);
    expect(events.rows).toEqual([{ command_tag: 'ALTER TABLE', who: expect.any(String) }]);
  });

  it('after a rename of the table questions, writes succeed; the copy follows the view, and the capture check says why it is critical', async () => {
    await db.admin.query('ALTER TABLE questions RENAME TO questions_v2');
    await write(db, 9002, 'legacy-9002');
    await db.admin.query(`UPDATE questions_v2 SET item_id = 999 WHERE id = 1`);
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    const check = await captureCheck(db);
    expect(check.status).toBe('critical');
    expect(check.message).toMatch(/questions_v2 is the table attempt-ops reads as public.questions/);
  });

  it('the log cannot be dropped without CASCADE; after a CASCADE, writes succeed and the check is critical', async () => {
    await expect(db.admin.query('DROP TABLE attempt_ops.attempt_changes')).rejects.toThrow(/other objects depend on it/);
    await expect(db.admin.query('ALTER TABLE attempt_ops.attempt_changes DROP COLUMN reason')).rejects.toThrow(/other objects depend on it/);
    await expect(db.admin.query('ALTER TABLE attempt_ops.attempt_changes ALTER COLUMN students TYPE text')).rejects.toThrow(/used by a view/);
    await db.admin.query('DROP TABLE attempt_ops.attempt_changes CASCADE');
    await write(db, 9003, 'legacy-9003');
    const check = await captureCheck(db);
    expect(check.status).toBe('critical');
    expect(check.message).toMatch(/attempt_changes is gone/);
  });

  it('a column of the log dropped with CASCADE: writes succeed, nothing is written, and the check says why', async () => {
    await db.admin.query('ALTER TABLE attempt_ops.attempt_changes DROP COLUMN reason CASCADE');
    await write(db, 9015, 'legacy-9015');
    const check = await captureCheck(db);
    expect(check.status).toBe('critical');
    expect(check.message).toMatch(/attempt_changes_pending is gone, and the capture writes nothing without it/);
  });

  it('sees writes under session_replication_role = replica', async () => {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      await c.query(`SET session_replication_role = replica`);
      await c.query(`INSERT INTO exam_results VALUES (9004, 'legacy-9004', '{"questionId": 1}', now())`);
    } finally {
      await c.end();
    }
    const refreshed = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(refreshed.actions.at(-1)).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
  });

  it('writes between DISABLE TRIGGER USER and ENABLE TRIGGER USER: the check is critical meanwhile, and one refresh mends the copy', async () => {
    await db.admin.query('ALTER TABLE exam_results DISABLE TRIGGER USER');
    await write(db, 9005, 'legacy-9005');
    expect((await captureCheck(db)).message).toMatch(/attempt_ops_capture_insert=D/);
    await db.admin.query('ALTER TABLE exam_results ENABLE TRIGGER USER');
    await write(db, 9006, 'legacy-9006');
    // ENABLE leaves them firing only outside replica mode: still reported, and repaired by an owner's refresh.
    expect((await captureCheck(db)).message).toMatch(/attempt_ops_capture_insert=O/);
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    expect((await captureCheck(db)).status).toBe('ok');
  });

  it('a trigger switched to ENABLE REPLICA is reported, and the copy is mended by the next refresh', async () => {
    await db.admin.query('ALTER TABLE exam_results ENABLE REPLICA TRIGGER attempt_ops_capture_insert');
    await write(db, 9007, 'legacy-9007');
    expect((await captureCheck(db)).message).toMatch(/attempt_ops_capture_insert=R/);
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
  });

  it('covers an inheritance child made later: its rows are logged like the parent\'s', async () => {
    await db.admin.query('CREATE TABLE exam_results_archive () INHERITS (exam_results)');
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    await db.admin.query(`INSERT INTO exam_results_archive VALUES (9008, 'legacy-9008', '{"questionId": 3}', now())`);
    const refreshed = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(refreshed.actions.at(-1)).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    expect((await captureCheck(db)).status).toBe('ok');
  });

  it('covers partitions, attached ones included, on a partitioned exam_results', async () => {
    // Prepare: exam_results partitioned by month, as the runbook's roadmap plans.
    await db.admin.query(`DROP SCHEMA IF EXISTS attempt_ops CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public`);
    await db.admin.query(`CREATE TABLE questions (id integer PRIMARY KEY, item_id integer NOT NULL, question_text text, correct_answer text, tags text[])`);
    await db.admin.query(`CREATE TABLE exam_results (id bigint NOT NULL, student_id text, result_json jsonb NOT NULL, completed_at timestamptz NOT NULL) PARTITION BY RANGE (completed_at)`);
    await db.admin.query(`CREATE TABLE exam_results_old PARTITION OF exam_results FOR VALUES FROM ('2000-01-01') TO ('2026-01-01')`);
    await db.admin.query(`CREATE TABLE exam_results_new PARTITION OF exam_results FOR VALUES FROM ('2026-01-01') TO ('2100-01-01')`);
    await db.admin.query(v1ViewSql('public'));
    await seedClean(db.admin);
    await ensureRole(db.admin, 'seedtest_user');
    // CREATE INDEX CONCURRENTLY cannot build on a partitioned table: its DBA makes these (bootstrap says so).
    await db.admin.query(`CREATE INDEX exam_results_completed_at_idx ON exam_results (completed_at)`);
    await db.admin.query(`CREATE INDEX idx_exam_results_student_completed ON exam_results (student_id, completed_at) WHERE (result_json->>'questionId') IS NOT NULL`);
    expect((await runBootstrap(jobDeps(db.pool()), { apply: true })).status).toBe('ok');
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    // Act: a write straight into a partition, and one into a partition attached afterwards.
    await db.admin.query(`INSERT INTO exam_results_new VALUES (9009, 'legacy-9009', '{"questionId": 1}', now())`);
    await db.admin.query(`CREATE TABLE exam_results_1999 (LIKE exam_results)`);
    await db.admin.query(`ALTER TABLE exam_results ATTACH PARTITION exam_results_1999 FOR VALUES FROM ('1990-01-01') TO ('2000-01-01')`);
    await db.admin.query(`INSERT INTO exam_results_1999 VALUES (9010, 'legacy-9010', '{"questionId": 2}', '1999-06-01')`);
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    await db.admin.query(`INSERT INTO exam_results_1999 VALUES (9011, 'legacy-9011', '{"questionId": 2}', '1999-07-01')`);
    const refreshed = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    // Assess
    expect(refreshed.actions.at(-1)).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    expect(await count(db.admin, `SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = 'exam_results_1999'::regclass AND tgname LIKE 'attempt_ops_capture_%' AND tgenabled = 'A'`)).toBe(4);
    expect((await captureCheck(db)).status).toBe('ok');
  });

  it('a change that commits after a later one is read by the next refresh, never skipped', async () => {
    // Prepare: T1 writes first (lower xid) but commits last.
    const t1 = new pg.Client({ connectionString: db.url });
    await t1.connect();
    try {
      await t1.query('BEGIN');
      await t1.query(`INSERT INTO exam_results VALUES (9012, 'legacy-9012', '{"questionId": 1}', now())`);
      await write(db, 9013, 'legacy-9013');
      await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
      expect(await count(db.admin, `SELECT count(*) AS n FROM attempt_mv WHERE exam_result_id = 9013`)).toBe(1);
      await t1.query('COMMIT');
    } finally {
      await t1.end();
    }
    // Act
    const refreshed = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    // Assess
    expect(refreshed.actions.at(-1)).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, `SELECT count(*) AS n FROM attempt_mv WHERE exam_result_id = 9012`)).toBe(1);
    expect(await count(db.admin, DIVERGENT)).toBe(0);
  });

  it('follows a view redefined with the same columns, and says the incremental path is off until it is V1 again', async () => {
    await db.admin.query(v1ViewSql('public').replace(`WHERE (er.result_json->>'questionId') IS NOT NULL`, `WHERE (er.result_json->>'questionId') IS NOT NULL AND er.id % 2 = 0`));
    const refreshed = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(refreshed.notes.join(' ')).toMatch(/not the V1 text/);
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    await db.admin.query(v1ViewSql('public'));
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    await write(db, 9014, 'legacy-9014');
    expect((await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' })).actions.at(-1)).toMatchObject({ after: { mode: 'incremental' } });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
  });

  it('keeps DROP VIEW attempt from succeeding without CASCADE, and records who dropped it', async () => {
    await expect(db.admin.query('DROP VIEW attempt')).rejects.toThrow(/other objects depend on it/);
    await db.admin.query('DROP VIEW attempt CASCADE');
    const events = await db.admin.query(`SELECT command_tag, who, object_identity FROM attempt_ops.ddl_events WHERE object_type = 'view'`);
    expect(events.rows).toContainEqual({ command_tag: 'DROP VIEW', who: expect.any(String), object_identity: 'public.attempt' });
  });

  it('ties: attempt_mv and the view agree as multisets, and the property holds with ties in the data', async () => {
    // Two questions of one item answered at one instant: attempt_no numbers them in no fixed order.
    await db.admin.query(`INSERT INTO questions VALUES (11, 101, 'same item', 'x', NULL)`);
    for (let i = 0; i < 20; i++) {
      const at = `'2026-11-0${1 + (i % 9)}T10:00:00Z'`;
      await db.admin.query(`INSERT INTO exam_results VALUES (${9100 + i}, 'legacy-tie-${i % 3}', '{"questionId": 1}', ${at}), (${9200 + i}, 'legacy-tie-${i % 3}', '{"questionId": 11}', ${at})`);
      if (i % 5 === 4) await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    }
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    expect(await count(db.admin, DIVERGENT)).toBe(0);
    const { rows } = await db.admin.query(`SELECT divergent_rows FROM attempt_ops.attempt_mv_state`);
    expect(rows).toEqual([{ divergent_rows: '0' }]);
  });

  it('bootstrap with the capture off uninstalls it; the check is skipped and says the scope falls back to recent rows', async () => {
    // The copy is table-backed here; back to a materialized view first, as a user would before turning the capture off.
    await db.admin.query('DROP TABLE attempt_mv CASCADE');
    const report = await runBootstrap(jobDeps(db.pool()), { apply: true, capture: false });
    expect(report.actions.find((a) => a.action === 'turn off change capture')).toMatchObject({ outcome: 'done' });
    expect(report.notes.join(' ')).toMatch(/change capture is off: the data-quality checks fall back to rows completed recently/);
    expect(await count(db.admin, `SELECT count(*) AS n FROM pg_trigger WHERE tgname LIKE 'attempt_ops_capture_%'`)).toBe(0);
    const check = await captureCheck(db);
    expect(check).toMatchObject({ status: 'skipped', message: expect.stringMatching(/turned off .*scope falls back to recent rows/) });
    const error = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' }).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/change capture is turned off/);
    // A second bootstrap with the capture off changes nothing; one with it on installs it again.
    expect((await runBootstrap(jobDeps(db.pool()), { apply: true, capture: false })).actions.find((a) => a.action === 'turn off change capture')).toMatchObject({ outcome: 'exists' });
    await runBootstrap(jobDeps(db.pool()), { apply: true });
    expect((await captureCheck(db)).status).toBe('ok');
  });

  it("a role that is not ours cannot hide its DDL from the watcher by setting attempt-ops' own setting", async () => {
    const login = `ddlowner_${Math.random().toString(36).slice(2, 8)}`;
    await db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'Ddl-Own-Pw-1'`);
    await db.admin.query(`ALTER TABLE questions OWNER TO ${login}`);
    const u = new URL(db.url);
    u.username = login;
    u.password = 'Ddl-Own-Pw-1';
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    try {
      await c.query(`SET attempt_ops.capture_ddl = 'on'`);
      await c.query('ALTER TABLE questions RENAME COLUMN tags TO labels');
    } finally {
      await c.end();
    }
    // (The owner change before it is recorded too: the admin's own DDL.)
    const events = await db.admin.query(`SELECT command_tag, who FROM attempt_ops.ddl_events WHERE who = $1`, [login]);
    expect(events.rows).toEqual([{ command_tag: 'ALTER TABLE', who: login }]);
    expect((await captureCheck(db)).status).toBe('critical');
    await db.admin.query(`ALTER TABLE questions RENAME COLUMN labels TO tags; ALTER TABLE questions OWNER TO CURRENT_USER; DROP ROLE ${login}`);
  });

  it('the monitor role may read the log but cannot lock it, and no role but the owner may write it', async () => {
    const version = Number((await db.admin.query(`SELECT current_setting('server_version_num') AS v`)).rows[0].v);
    expect(version).toBeGreaterThan(0);
    await runBootstrap(jobDeps(db.pool()), { apply: true, roles: true });
    const login = `capmon_${Math.random().toString(36).slice(2, 8)}`;
    await db.admin.query(`CREATE ROLE ${login} LOGIN PASSWORD 'Cap-Mon-Pw-1' IN ROLE attempt_ops_monitor`);
    const u = new URL(db.url);
    u.username = login;
    u.password = 'Cap-Mon-Pw-1';
    const c = new pg.Client({ connectionString: u.toString() });
    await c.connect();
    try {
      await c.query('SELECT count(*) FROM attempt_ops.attempt_changes');
      await c.query('BEGIN');
      await expect(c.query('LOCK attempt_ops.attempt_changes IN ACCESS EXCLUSIVE MODE')).rejects.toThrow(/permission denied/);
      await c.query('ROLLBACK');
      await expect(c.query(`DELETE FROM attempt_ops.attempt_changes`)).rejects.toThrow(/permission denied/);
      await expect(c.query(`SELECT attempt_ops.capture_unregister('refresh-mv', 'public')`)).rejects.toThrow(/may not|permission denied/);
    } finally {
      await c.end();
      await db.admin.query(`DROP OWNED BY ${login}; DROP ROLE ${login}`);
    }
  });
});

describe('converting to the table-backed copy', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());
  beforeEach(async () => {
    // A database as an earlier version left it: attempt_mv a materialized view, no capture, no student index.
    await resetToClean(db.admin);
    await db.admin.query(opsSchemaSql());
    await db.admin.query(attemptMvSql('public'));
    await db.admin.query('REFRESH MATERIALIZED VIEW attempt_mv');
  });

  /** A session whose transaction holds a snapshot, and has been open for more than a second. */
  async function oldTransaction(): Promise<{ pid: number; end(): Promise<void> }> {
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
    await c.query('SELECT count(*) FROM questions');
    const pid = Number((await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    await waitFor(db, `SELECT count(*) AS n FROM pg_stat_activity WHERE pid = ${pid} AND xact_start < now() - interval '1 second'`);
    return { pid, end: async () => { await c.query('ROLLBACK'); await c.end(); } };
  }

  it('an old transaction makes the index build wait within its budget, then fail naming it, leaving no INVALID index and no cursor', async () => {
    const old = await oldTransaction();
    try {
      const error = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental', indexWaitMs: 1_500 }).catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(new RegExp(`pid ${old.pid} \\(.*\\) has had a transaction open for \\d+ s`));
      expect(await count(db.admin, `SELECT count(*) AS n FROM pg_class WHERE relname = 'idx_exam_results_student_completed'`)).toBe(0);
      expect(await count(db.admin, `SELECT count(*) AS n FROM pg_class WHERE relname = 'attempt_mv' AND relkind = 'm'`)).toBe(1);
      expect(await count(db.admin, `SELECT count(*) AS n FROM attempt_ops.capture_cursors`)).toBe(0);
    } finally {
      await old.end();
    }
    const converted = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental', indexWaitMs: 1_500 });
    expect(converted.actions.map((a) => a.action)).toContain('convert to table');
    expect(await count(db.admin, DIVERGENT)).toBe(0);
  });

  it('a lock held on questions: the install retries with a short lock timeout, writers are not stalled behind it, and it fails naming the holder', async () => {
    const holder = new pg.Client({ connectionString: db.url });
    await holder.connect();
    await holder.query('BEGIN');
    await holder.query(`UPDATE questions SET question_text = question_text WHERE id = 1`);
    const holderPid = Number((await holder.query('SELECT pg_backend_pid() AS pid')).rows[0].pid);
    const deps = jobDeps(db.pool());
    try {
      const install = installCapture(deps, { repair: true, budget: { attemptLockMs: 100, attempts: 6 } }).catch((e: Error) => e);
      // Meanwhile an application insert into exam_results goes through: the install never holds
      // exam_results while it queues for questions (one LOCK statement, questions first).
      await waitFor(db, `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name LIKE 'attempt-ops/%' AND wait_event_type = 'Lock'`);
      const writer = new pg.Client({ connectionString: db.url });
      await writer.connect();
      try {
        // Shorter than one attempt: it would fail if the install held exam_results while queueing for questions.
        await writer.query(`SET lock_timeout = '50ms'`);
        await writer.query(`INSERT INTO exam_results VALUES (9301, 'legacy-9301', '{"questionId": 1}', now())`);
      } finally {
        await writer.end();
      }
      const error = await install;
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(new RegExp(`stayed locked through 6 tries of 100 ms \\(pid ${holderPid} .* holds RowExclusiveLock on (public\\.)?questions`));
      expect(await count(db.admin, `SELECT count(*) AS n FROM pg_trigger WHERE tgname LIKE 'attempt_ops_capture_%'`)).toBe(0);
    } finally {
      await holder.query('ROLLBACK');
      await holder.end();
    }
    expect((await installCapture(deps, { repair: true })).length).toBe(2);
    expect(await count(db.admin, `SELECT count(*) AS n FROM pg_trigger WHERE tgname LIKE 'attempt_ops_capture_%' AND tgenabled = 'A'`)).toBe(8);
  });

  it('keeps column-level grants on attempt_mv', async () => {
    await ensureRole(db.admin, 'attempt_col_reader');
    await db.admin.query('GRANT SELECT (id, student_id) ON attempt_mv TO attempt_col_reader');
    await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' });
    const { rows } = await db.admin.query(`SELECT (SELECT relkind::text FROM pg_class WHERE oid = 'attempt_mv'::regclass) AS kind,
        has_column_privilege('attempt_col_reader', 'attempt_mv', 'student_id', 'SELECT') AS student,
        has_column_privilege('attempt_col_reader', 'attempt_mv', 'tags', 'SELECT') AS tags`);
    expect(rows[0]).toEqual({ kind: 'r', student: true, tags: false });
  });

  it('refuses to convert a view that is not the V1 text, saying so, and leaves nothing behind', async () => {
    await db.admin.query(v1ViewSql('public').replace('AS tags', 'AS tags -- local edit').replace(`WHERE (er.result_json->>'questionId') IS NOT NULL`, `WHERE (er.result_json->>'questionId') IS NOT NULL AND er.id > 0`));
    const error = await runRefresh(jobDeps(db.pool('refresh-mv')), { mode: 'incremental' }).catch((e: Error) => e);
    expect((error as Error).message).toMatch(/is not the V1 text .* refuses to convert/);
    expect(await count(db.admin, `SELECT count(*) AS n FROM pg_class WHERE relname = 'attempt_mv' AND relkind = 'm'`)).toBe(1);
    expect(await count(db.admin, `SELECT count(*) AS n FROM attempt_ops.capture_cursors`)).toBe(0);
  });
});

/** Polls until the query's n is at least 1: waiting for a state, never for a time. */
async function waitFor(db: TestDatabase, sql: string, deadlineMs = 30_000): Promise<void> {
  const until = Date.now() + deadlineMs;
  while ((await count(db.admin, sql)) < 1) {
    if (Date.now() > until) throw new Error(`timed out waiting for: ${sql}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

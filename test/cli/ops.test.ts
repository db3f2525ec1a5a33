/** `attempt-ops diagnose` and `attempt-ops remediate`: arguments, exit codes, human and JSON output. */
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { stateDigest } from '../ops/helpers.ts';

const cli = runCli;

describe('attempt-ops diagnose and remediate', () => {
  let clean: TestDatabase;
  let broken: TestDatabase;

  beforeAll(async () => {
    [clean, broken] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    await Promise.all([seedClean(clean.admin), seedClean(broken.admin)]);
    await broken.admin.query('DROP VIEW attempt');
  });
  afterAll(async () => Promise.all([clean?.drop(), broken?.drop()]));

  it.each([
    [['diagnose', 'everything'], /^attempt-ops: diagnose: unknown incident "everything" \(incidents: view-missing, permission-denied, slow-queries, data-quality, duplicates\)$/],
    [['diagnose'], /diagnose: expected 1 argument\(s\), got 0/],
    [['diagnose', 'view-missing', 'extra'], /diagnose: expected 1 argument\(s\), got 2/],
    [['remediate', 'drop-everything'], /remediate: unknown fix "drop-everything" \(fixes: recreate-view, grant-select, analyze, cancel-long-running, quarantine-duplicates, create-indexes\)/],
    [['remediate', 'grant-select', '--restore'], /--restore applies only to quarantine-duplicates/],
    [['remediate', 'quarantine-duplicates', '--batch', 'x'], /--batch needs --restore/],
    [['remediate', 'analyze', '--force'], /Unknown option '--force'/],
  ])('exits 3 with one line for %j, before connecting', async (args, message) => {
    // No database URL at all: a connection attempt would fail differently.
    const r = await cli(args, { PGHOST: '127.0.0.1', PGPORT: '1' });
    expect(r.code).toBe(3);
    expect(r.stderr.trim()).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stdout).toBe('');
  });

  it('diagnose exits 0 on a healthy database and 2 on a P0 finding, naming the next command', async () => {
    const ok = await cli(['diagnose', 'view-missing', '--database-url', clean.url]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^attempt-ops diagnose view-missing · target local/);
    expect(ok.stdout).toContain('runbook: docs/RUNBOOK.md#1-view-missing-p0');

    const bad = await cli(['diagnose', 'view-missing', '--database-url', broken.url]);
    expect(bad.code).toBe(2);
    expect(bad.stdout).toMatch(/^CRITICAL\s+view\s+view public\.attempt does not exist$/m);
    expect(bad.stdout).toMatch(/^next:\n {2}attempt-ops remediate recreate-view\n/m);
    expect(bad.stdout).toMatch(/status: CRITICAL/);
  });

  it('diagnose --json prints the report envelope with findings', async () => {
    const r = await cli(['diagnose', 'duplicates', '--json', '--database-url', clean.url, '--target', 'staging']);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ version: 1, job: 'ops', target: 'staging', status: 'ok', metrics: [], incident: 'duplicates', runbook: '#5-determinism-violation-p2' });
    expect(Object.keys(report).slice(0, 7)).toEqual(['version', 'job', 'target', 'startedAt', 'durationMs', 'status', 'metrics']);
    for (const f of report.findings) expect(Object.keys(f)).toEqual(['name', 'status', 'check', 'message', 'data']);
  });

  it('remediate is a dry run by default: exit 0, the exact SQL, nothing changed', async () => {
    const before = await stateDigest(broken.admin);
    const r = await cli(['remediate', 'recreate-view', '--database-url', broken.url]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/· dry run · by /);
    expect(r.stdout).toMatch(/^planned\s+create view public\.attempt: public\.attempt is missing/m);
    expect(r.stdout).toMatch(/^ {9}CREATE OR REPLACE VIEW "public"\."attempt" AS SELECT/m);
    expect(r.stdout).toMatch(/^ {9}GRANT SELECT ON "public"\."attempt" TO "seedtest_user"$/m);
    expect(r.stdout).toContain('note: dry run: nothing was changed');
    expect(await stateDigest(broken.admin)).toEqual(before);
  });

  it('remediate --apply exits 0 once verified, and records the OS user', async () => {
    const r = await cli(['remediate', 'recreate-view', '--apply', '--json', '--database-url', broken.url]);
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ job: 'ops', action: 'remediate', fix: 'recreate-view', apply: true, status: 'ok' });
    expect(report.invokedBy).toBe(`${os.userInfo().username}@${os.hostname()}`);
    const audit = await broken.admin.query('SELECT invoked_by, outcome FROM attempt_ops.remediations');
    expect(audit.rows).toEqual([{ invoked_by: report.invokedBy, outcome: 'success' }]);
    expect((await cli(['diagnose', 'view-missing', '--database-url', broken.url])).code).toBe(0);
  });

  it('remediate exits 2 when the fix is blocked', async () => {
    const r = await cli(['remediate', 'grant-select', '--app-role', 'no_such_role_cli', '--database-url', clean.url]);
    expect(r.code).toBe(2);
    expect(r.stdout).toMatch(/^blocked\s+grant select no_such_role_cli: role no_such_role_cli does not exist/m);
  });

  it('remediate --apply exits 2 with one line, changing nothing, when its audit row cannot be written', async () => {
    const locked = await createTestDatabase();
    const role = `ops_cli_${Math.random().toString(36).slice(2, 8)}`;
    try {
      await seedClean(locked.admin);
      // A login that may read but not create: no attempt_ops schema, no CREATE on the database.
      await locked.admin.query(`CREATE ROLE ${role} LOGIN PASSWORD 'Nobody-Pw-1'; GRANT SELECT ON exam_results, questions TO ${role}`);
      const u = new URL(locked.url);
      u.username = role;
      u.password = 'Nobody-Pw-1';
      const r = await cli(['remediate', 'create-indexes', '--apply', '--database-url', u.toString()]);
      expect(r.code).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^attempt-ops: remediate create-indexes: creating the audit table "attempt_ops"\.remediations: .*permission denied/);
      expect(r.stderr).not.toContain('Nobody-Pw-1');
      expect(Number((await locked.admin.query(`SELECT count(*) AS n FROM pg_class WHERE relname LIKE 'idx_%'`)).rows[0].n)).toBe(0);
    } finally {
      await locked.admin.query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await locked.drop();
    }
  });
});

/** The analyze, refresh, metrics and bootstrap commands in-process: output, JSON and exit codes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliRun } from '../support/cli.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';
import { holdLock } from '../jobs/helpers.ts';

type Run = CliRun;

const cli = (args: string[]): Promise<Run> => runCli(args);

describe('maintenance commands', () => {
  let db: TestDatabase;
  let url: string[];
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
    url = ['--database-url', db.url, '--target', 'ci'];
  });
  afterAll(async () => db?.drop());

  it('lists the maintenance commands in the help, in the contract order', async () => {
    const { code, stdout } = await cli(['--help']);
    expect(code).toBe(0);
    const mine = ['check', 'analyze', 'refresh', 'metrics', 'bootstrap', 'demo'];
    const order = [...stdout.matchAll(/^ {2}(\w+) /gm)].map((m) => m[1]).filter((n) => mine.includes(n!));
    expect(order).toEqual(mine);
  });

  it('refresh before bootstrap fails with exit 2 and names the fix', async () => {
    const { code, stdout, stderr } = await cli(['refresh', ...url]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe('attempt-ops: public.attempt_mv does not exist: run attempt-ops bootstrap --apply\n');
  });

  it('bootstrap is a dry run by default: a table of planned actions with their SQL', async () => {
    const { code, stdout } = await cli(['bootstrap', ...url]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^attempt-ops bootstrap · target ci · .* · dry run\n/);
    expect(stdout).toMatch(/^planned +public\.attempt_mv +create materialized view/m);
    expect(stdout).toContain('CREATE MATERIALIZED VIEW IF NOT EXISTS "public"."attempt_mv" AS SELECT * FROM "public"."attempt" WITH NO DATA');
    expect(stdout).toMatch(/note: dry run: nothing was changed/);
    expect(stdout).toMatch(/\nstatus: OK \(13 planned\)\n$/);
    const { rows } = await db.admin.query(`SELECT to_regnamespace('attempt_ops') AS ops`);
    expect(rows[0].ops).toBeNull();
  });

  it('bootstrap --apply --json creates everything; a second run finds it all', async () => {
    const first = await cli(['bootstrap', '--apply', '--json', ...url]);
    expect(first.code).toBe(0);
    const report = JSON.parse(first.stdout);
    expect(report).toMatchObject({ version: 1, job: 'bootstrap', target: 'ci', status: 'ok', apply: true, metrics: [] });
    expect(report.actions.every((a: { outcome: string }) => a.outcome === 'done')).toBe(true);
    const second = await cli(['bootstrap', '--apply', ...url]);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/status: OK \(13 exists\)/);
    expect(second.stdout).toContain('note: everything exists: nothing to do');
  });

  it('refresh --json refreshes; --dry-run only shows the statement', async () => {
    const run = await cli(['refresh', '--json', ...url]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report).toMatchObject({ job: 'refresh-mv', mode: 'concurrent', status: 'ok', actions: [{ outcome: 'done', after: { mode: 'concurrent', rows: 24 } }] });
    expect(report.metrics.map((m: { name: string }) => m.name)).toEqual(['attempt_mv_refresh_duration_ms', 'attempt_mv_row_count']);

    const dry = await cli(['refresh', '--mode', 'full', '--dry-run', ...url]);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^planned +public\.attempt_mv +refresh +- +would run a full refresh/m);
    expect(dry.stdout).toContain('REFRESH MATERIALIZED VIEW "public"."attempt_mv"');
  });

  it('rejects a bad mode and an unknown table with exit 3; accepts mode incremental', async () => {
    expect(await cli(['refresh', '--mode', 'fast', ...url])).toEqual({ code: 3, stdout: '', stderr: 'attempt-ops: --mode must be one of concurrent, full, incremental\n' });
    expect(await cli(['analyze', '--tables', 'exam_results,students', ...url])).toEqual({
      code: 3, stdout: '', stderr: 'attempt-ops: --tables: unknown name students (known: exam_results, questions, attempt_mv)\n',
    });
    const incremental = await cli(['refresh', '--mode', 'incremental', '--dry-run', ...url]);
    expect(incremental).toMatchObject({ code: 0, stderr: '' });
    expect(incremental.stdout).toMatch(/^planned +public\.attempt_mv +refresh +- +would run an incremental refresh \(converts the materialized view once/m);
  });

  it('analyze shows what it analyzed and skipped', async () => {
    // The bootstrap's first refresh analyzed the new copy; forget that, for a never-analyzed attempt_mv.
    await db.admin.query(`SELECT pg_stat_reset_single_table_counters('attempt_mv'::regclass)`);
    const { code, stdout } = await cli(['analyze', '--tables', 'questions,attempt_mv', ...url]);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^skipped +public\.questions +analyze +- +statistics fresh/m);
    expect(stdout).toMatch(/^done +public\.attempt_mv +analyze +\d+ +analyzed: never analyzed/m);
    expect(stdout).toMatch(/status: OK \((1 skipped, 1 done|1 done, 1 skipped)\)/);
  });

  it('analyze --force exits 2 within seconds with a one-line lock timeout while exam_results is locked', async () => {
    const lock = await holdLock(db.url, 'exam_results');
    const started = Date.now();
    try {
      const { code, stdout, stderr } = await cli(['analyze', '--force', '--json', ...url]);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(code).toBe(2);
      expect(stdout).toBe('');
      expect(stderr).toBe('attempt-ops: ANALYZE public.exam_results: lock timeout, another session holds a conflicting lock (attempt-ops diagnose slow-queries explains it)\n');
    } finally {
      await lock.release();
    }
  });

  it('metrics prints the collected metrics and what it skipped', async () => {
    const { code, stdout } = await cli(['metrics', ...url]);
    expect(code).toBe(0);
    for (const name of ['database_connections', 'blocked_queries', 'long_running_queries', 'attempt_query_p99_latency', 'attempt_mv_staleness_seconds']) {
      expect(stdout).toMatch(new RegExp(`^${name} +\\d`, 'm'));
    }
    expect(stdout).toMatch(/^note: attempt_query_count and attempt_query_mean_ms skipped: pg_stat_statements is not installed/m);
    expect(stdout).toMatch(/\nstatus: OK /);
  });

  it('metrics --json prints the report envelope', async () => {
    const { code, stdout } = await cli(['metrics', '--json', ...url]);
    expect(code).toBe(0);
    const report = JSON.parse(stdout);
    expect(Object.keys(report)).toEqual(['version', 'job', 'target', 'startedAt', 'durationMs', 'status', 'dryRun', 'actions', 'notes', 'metrics']);
    expect(report).toMatchObject({ job: 'publish-metrics', target: 'ci', dryRun: false });
  });
});

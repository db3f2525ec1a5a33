/** `attempt-ops check`: exit codes 0/1/2/3, the JSON report's exact shape, one-line errors. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES } from '../../functions/contract/index.ts';
import { runCli } from '../support/cli.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

const exec = promisify(execFile);

const cli = runCli;

describe('attempt-ops check', () => {
  let clean: TestDatabase;
  let warn: TestDatabase;
  let crit: TestDatabase;

  beforeAll(async () => {
    [clean, warn, crit] = await Promise.all([createTestDatabase(), createTestDatabase(), createTestDatabase()]);
    await Promise.all([seedClean(clean.admin), seedClean(warn.admin), seedClean(crit.admin)]);
    await warn.admin.query('INSERT INTO exam_results SELECT * FROM exam_results WHERE id = 1011');
    await insertResult(crit.admin, { id: 9001, student: null, json: { questionId: 1 } });
  });
  afterAll(async () => Promise.all([clean?.drop(), warn?.drop(), crit?.drop()]));

  it('exits 0 on a healthy database and prints one line per check', async () => {
    const r = await cli(['check', '--database-url', clean.url]);
    expect(r.code).toBe(0);
    for (const name of CHECK_NAMES) expect(r.stdout).toMatch(new RegExp(`^(ok|skipped)\\s+${name}\\s`, 'm'));
    expect(r.stdout).toMatch(/status: OK/);
    expect(r.stderr).toBe('');
  });

  it('exits 1 on a warning (duplicate ids) and shows the runbook section', async () => {
    const r = await cli(['check', '--database-url', warn.url]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^WARNING\s+duplicate_ids\s+P2\s+1\s/m);
    expect(r.stdout).toContain('runbook: docs/RUNBOOK.md#5-determinism-violation-p2');
  });

  it('exits 2 on a critical check, and --json prints exactly the contract object', async () => {
    const r = await cli(['check', '--json', '--full', '--database-url', crit.url, '--target', 'staging']);
    expect(r.code).toBe(2);
    const report = JSON.parse(r.stdout);
    expect(Object.keys(report)).toEqual(['version', 'job', 'target', 'scope', 'startedAt', 'durationMs', 'status', 'checks', 'metrics']);
    expect(report).toMatchObject({ version: 1, job: 'health-check', target: 'staging', scope: 'full', status: 'critical' });
    expect(new Date(report.startedAt).toISOString()).toBe(report.startedAt);
    for (const c of report.checks) {
      expect(Object.keys(c)).toEqual(['name', 'severity', 'status', 'value', 'threshold', 'message', 'runbook', 'durationMs', 'details']);
    }
    expect(report.checks.find((c: { name: string }) => c.name === 'required_nulls')).toMatchObject({
      severity: 'P1', status: 'critical', value: 1, threshold: 0, runbook: '#4-data-quality-issues-p1',
    });
    for (const m of report.metrics) {
      expect(Object.keys(m)).toEqual(['name', 'value', 'unit', 'dimensions']);
      expect(m.dimensions.Database).toBe('staging');
    }
  });

  it('--only runs the named checks', async () => {
    const r = await cli(['check', '--json', '--only', 'view_exists,connections', '--database-url', clean.url]);
    expect(JSON.parse(r.stdout).checks.map((c: { name: string }) => c.name)).toEqual(['view_exists', 'connections']);
  });

  it('takes DATABASE_URL when no flag is given', async () => {
    const r = await cli(['check', '--only', 'view_exists'], { DATABASE_URL: clean.url });
    expect(r.code).toBe(0);
  });

  const password = 'Sup3r-Secret-Canary';
  it.each([
    [['check', '--only', 'view_exists,bogus'], /--only: unknown name bogus/],
    [['check', '--database-url', `postgres://u:${password}@host:notaport/db`], /--database-url is not a valid URL/],
    [['check', '--database-url', `mysql://u:${password}@localhost/db`], /must start with postgres:\/\//],
    [['check', '--database-url', `postgres://u:${password}@127.0.0.1:1/db`], /cannot connect \(ECONNREFUSED\)/],
    [['check', '--schema', 'public; DROP TABLE x --'], /--schema must be a plain identifier/],
    [['check', '--app-role', 'a"b'], /--app-role must be a plain identifier/],
    [['check', '--metrics', 'graphite'], /--metrics must be none, stdout or cloudwatch/],
    [['check', '--frobnicate'], /Unknown option '--frobnicate'/],
    [['explode'], /unknown command "explode"/],
  ])('exits 3 with one line for %j', async (args, message) => {
    const r = await cli(args);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(message);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr + r.stdout).not.toContain(password);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 3 on a wrong password, without printing it', async () => {
    const u = new URL(clean.url);
    u.password = password;
    const r = await cli(['check', '--database-url', u.toString()]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/authentication failed/);
    expect(r.stderr + r.stdout).not.toContain(password);
  });

  it('runs through the real npx entry point (bin shim and tsx)', async () => {
    const r = await exec(process.execPath, ['bin/attempt-ops.js', 'check', '--json', '--only', 'view_exists', '--database-url', clean.url], { env: { ...process.env, NO_COLOR: '1' } });
    expect(JSON.parse(r.stdout).checks[0]).toMatchObject({ name: 'view_exists', status: 'ok' });
    const bad = await exec(process.execPath, ['bin/attempt-ops.js', 'check', '--only', 'nope']).catch((e: { code: number; stderr: string }) => e);
    expect(bad).toMatchObject({ code: 3, stderr: expect.stringMatching(/^attempt-ops: --only: unknown name nope/) });
  });
});

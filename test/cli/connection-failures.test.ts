/**
 * Failing to reach or log in to the database, on the real binary in a child process: exit 3 and
 * one line on stderr naming where it tried (never the password), with no warning text from Node,
 * pg or the AWS SDK around it.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../functions/demo/embedded.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';

const exec = promisify(execFile);

async function check(databaseUrl: string, args = ['check', '--only', 'view_exists']): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', DATABASE_URL: databaseUrl };
  for (const k of ['PGPASSWORD', 'PGPASSFILE', 'PGHOST', 'PGPORT', 'PGUSER', 'PGDATABASE']) delete env[k];
  try {
    const r = await exec(process.execPath, ['bin/attempt-ops.js', ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

function oneLine(r: { code: number; stdout: string; stderr: string }): string {
  expect(r.code).toBe(3);
  expect(r.stdout).toBe('');
  const lines = r.stderr.split('\n').filter(Boolean);
  expect(lines, r.stderr).toHaveLength(1);
  expect(r.stderr).not.toMatch(/Warning|SECURITY|node >=22/);
  return lines[0]!;
}

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

describe('cannot reach or log in: exit 3, one line that says where', () => {
  it('a refused port', async () => {
    const port = await freePort();
    const line = oneLine(await check(`postgres://someone:Secret-Pw-1@127.0.0.1:${port}/db`));
    expect(line).toBe(`attempt-ops: database: cannot connect (ECONNREFUSED) [someone@127.0.0.1:${port}/db, from DATABASE_URL or --database-url]`);
  });

  it('sslmode=require adds no pg warning', async () => {
    const port = await freePort();
    expect(oneLine(await check(`postgres://someone:Secret-Pw-1@127.0.0.1:${port}/db?sslmode=require`))).toMatch(/cannot connect \(ECONNREFUSED\)/);
  });

  it('no password in the URL, as the runbook shows it', async () => {
    const u = new URL(db.url);
    u.password = '';
    const line = oneLine(await check(u.toString()));
    expect(line).toContain('the server asks for a password and none was given');
    expect(line).toContain(`${u.hostname}:${u.port}`);
  });

  it('a wrong password, named without its value', async () => {
    const u = new URL(db.url);
    u.password = 'Not-The-Password-7';
    const line = oneLine(await check(u.toString()));
    expect(line).toMatch(/authentication failed|asks for a password/);
    expect(line).not.toContain('Not-The-Password-7');
  });

  it('a server without TLS asked for TLS', async () => {
    const u = new URL(db.url);
    u.searchParams.set('sslmode', 'require');
    expect(oneLine(await check(u.toString()))).toMatch(/TLS failed .*does not support SSL/);
  });
});

describe('a job that ran and failed: exit 2, and the diagnosis that explains it', () => {
  it('a refresh refused by a duplicate attempt names diagnose duplicates', async () => {
    await seedClean(db.admin);
    expect((await check(db.url, ['bootstrap', '--apply'])).code).toBe(0);
    await db.admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json, completed_at FROM exam_results WHERE id = (SELECT min(id) FROM exam_results)`);
    const r = await check(db.url, ['refresh']);
    expect(r.code).toBe(2);
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toMatch(/^attempt-ops: .*\(attempt-ops diagnose duplicates explains it\)\n$/);
  });
});

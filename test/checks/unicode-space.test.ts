/**
 * The poison guards of functions/checks/source-sql.ts judge a text exactly as the view's casts do.
 * On PostgreSQL 15 they are regexes; under a UTF-8 database the regex class \s also matches
 * Unicode spaces (U+2003 EM SPACE, U+00A0) that ::int and ::numeric reject, so one such
 * questionId was judged valid and then broke every check and refresh. `npm test` runs this file
 * on the embedded PostgreSQL 18 and on Debian's 15.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { validIntSql, validResponseTimeSql } from '../../functions/checks/source-sql.ts';
import { createTestDatabase, insertResult, seedClean, type TestDatabase } from '../support/db.ts';

let db: TestDatabase;
let serverVersion: number;

beforeAll(async () => {
  db = await createTestDatabase();
  await seedClean(db.admin);
  serverVersion = Number((await db.admin.query<{ v: string }>(`SELECT current_setting('server_version_num') AS v`)).rows[0]!.v);
  // The real casts, the way the view applies them, inside a PL/pgSQL block that traps their error.
  await db.admin.query(`CREATE FUNCTION int_cast_ok(t text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN PERFORM t::int; RETURN true; EXCEPTION WHEN OTHERS THEN RETURN false; END $$`);
  await db.admin.query(`CREATE FUNCTION rt_cast_ok(t text) RETURNS boolean LANGUAGE plpgsql AS $$
    BEGIN PERFORM ROUND(COALESCE(NULLIF(t, '')::numeric, 0))::int; RETURN true; EXCEPTION WHEN OTHERS THEN RETURN false; END $$`);
});

afterAll(async () => {
  await db?.drop();
});

const EM = '\u2003';
const NBSP = '\u00a0';

/** Inputs whose judgement differs between the server's casts and a careless regex. */
const TRICKY = [
  `${EM}7`, `7${EM}`, `${NBSP}7`, `7${NBSP}`, '\u20097', '\u30007', '\u00857', '\u180e7', '\u200b7', '\ufeff7',
  '\t7\n', ' +7 ', '\r\n-7\f', '\v7\v', ' 7', '7 ', '+7', '-7', '7', '007', '- 7', '+-7', '', ' ', '+', '-',
  '2147483647', '2147483648', '-2147483648', '-2147483649', '00000000002147483647', '99999999999', '-0',
  '1e3', '0x10', '0o17', '0b101', '1_000', '7.0', '7.', '.5', '12.5', 'NaN', 'Infinity', '-inf', '1e-5', '1E+2', '1e', 'e5', '1e999', '1e1000',
  '2147483647.4', '2147483647.5', '-2147483648.5', '٣', '７',
];

/** Syntax PostgreSQL 16 added to int4in and numeric_in; PostgreSQL 15 rejects it. */
const PG16_SYNTAX = new Set(['0x10', '0o17', '0b101', '1_000']);

interface Judgement {
  v: string;
  cast_int: boolean;
  guard_int_15: boolean;
  guard_int_server: boolean;
  cast_rt: boolean;
  guard_rt_15: boolean;
  guard_rt_server: boolean;
}

/** Each input judged by the real casts and by the guards, read from a column (no constant folding). */
async function judge(inputs: string[]): Promise<Judgement[]> {
  const { rows } = await db.admin.query<Judgement>(
    `SELECT v, int_cast_ok(v) AS cast_int, ${validIntSql('v', 150000)} AS guard_int_15, ${validIntSql('v', serverVersion)} AS guard_int_server,
            rt_cast_ok(v) AS cast_rt, ${validResponseTimeSql('v', 150000)} AS guard_rt_15, ${validResponseTimeSql('v', serverVersion)} AS guard_rt_server
       FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n`,
    [inputs],
  );
  return rows;
}

async function viewQueryable() {
  const report = await runHealthCheck({ pool: db.pool(), target: 'unicode', schema: 'public', appRole: 'seedtest_user' }, { checks: ['view_queryable'] });
  return report.checks[0]!;
}

describe('Unicode spaces around a number', () => {
  it('the database is UTF8 with a UTF-8 ctype, so the regex classes are Unicode-aware', async () => {
    const { rows } = await db.admin.query<{ enc: string; ctype: string; matches: boolean }>(
      `SELECT pg_encoding_to_char(encoding) AS enc, datctype AS ctype, (SELECT $1::text ~ '^\\s7$') AS matches FROM pg_database WHERE datname = current_database()`,
      [`${EM}7`],
    );
    expect(rows[0]).toMatchObject({ enc: 'UTF8' });
    // The premise of the bug: under a UTF-8 ctype (the test servers' C.UTF-8, any RDS database)
    // \s matches U+2003, while the cast rejects it. Only a C/POSIX ctype keeps \s to ASCII.
    expect(rows[0]!.matches).toBe(!['C', 'POSIX'].includes(rows[0]!.ctype));
    const casts = await db.admin.query('SELECT int_cast_ok($1) AS int_ok, rt_cast_ok($1) AS rt_ok', [`${EM}7`]);
    expect(casts.rows[0]).toEqual({ int_ok: false, rt_ok: false });
  });

  it('the guards agree with the real ::int and ::numeric casts on every tricky input', async () => {
    const rows = await judge(TRICKY);
    expect(rows.map((r) => r.v)).toEqual(TRICKY);
    const disagree = (pick: (r: Judgement) => boolean, cast: (r: Judgement) => boolean) => rows.filter((r) => pick(r) !== cast(r)).map((r) => JSON.stringify(r.v));
    // This server's own guard is exact.
    expect(disagree((r) => r.guard_int_server, (r) => r.cast_int)).toEqual([]);
    expect(disagree((r) => r.guard_rt_server, (r) => r.cast_rt)).toEqual([]);
    if (serverVersion < 160000) {
      expect(disagree((r) => r.guard_int_15, (r) => r.cast_int)).toEqual([]);
      expect(disagree((r) => r.guard_rt_15, (r) => r.cast_rt)).toEqual([]);
    } else {
      // The PostgreSQL 15 guard on a newer server: never valid where the cast fails, and exact but
      // for the syntax that PostgreSQL 16 added.
      expect(rows.filter((r) => r.guard_int_15 && !r.cast_int).map((r) => r.v)).toEqual([]);
      expect(rows.filter((r) => r.guard_rt_15 && !r.cast_rt).map((r) => r.v)).toEqual([]);
      expect(disagree((r) => r.guard_int_15, (r) => r.cast_int).filter((v) => !PG16_SYNTAX.has(JSON.parse(v) as string))).toEqual([]);
      expect(disagree((r) => r.guard_rt_15, (r) => r.cast_rt).filter((v) => !PG16_SYNTAX.has(JSON.parse(v) as string))).toEqual([]);
    }
    // The cases the bug was about, spelled out.
    const byValue = new Map(rows.map((r) => [r.v, r]));
    for (const v of [`${EM}7`, `${NBSP}7`, `7${EM}`]) {
      expect(byValue.get(v), JSON.stringify(v)).toMatchObject({ cast_int: false, guard_int_15: false, guard_int_server: false, guard_rt_15: false, guard_rt_server: false });
    }
    for (const v of ['\t7\n', ' +7 ', '-2147483648']) expect(byValue.get(v), JSON.stringify(v)).toMatchObject({ cast_int: true, guard_int_15: true, guard_int_server: true });
    expect(byValue.get('2147483648')).toMatchObject({ cast_int: false, guard_int_15: false, guard_int_server: false });
  });

  it('view_queryable counts an EM SPACE questionId and responseTime as poison, and they really break the view', async () => {
    await insertResult(db.admin, { id: 9001, student: 'legacy-u', json: { questionId: `${EM}7`, isCorrect: true, responseTime: 10 } });
    await insertResult(db.admin, { id: 9002, student: 'legacy-u', json: { questionId: 1, isCorrect: true, responseTime: `${EM}7` } });
    // Harmless look-alikes: ASCII whitespace around a number is accepted by the casts.
    await insertResult(db.admin, { id: 9003, student: 'legacy-u', json: { questionId: '\t2\n', isCorrect: true, responseTime: ' +7 ' } });
    const check = await viewQueryable();
    expect(check).toMatchObject({ name: 'view_queryable', status: 'critical', value: 2 });
    expect(check.details).toContainEqual({ kind: 'non_integer_question_id', rows: 1 });
    expect(check.details).toContainEqual({ kind: 'non_numeric_response_time', rows: 1 });
    expect(check.details).toContainEqual({ sampleExamResultIds: ['9001', '9002'] });
    await expect(db.admin.query('SELECT * FROM attempt')).rejects.toThrow(/invalid input syntax/);

    await db.admin.query('DELETE FROM exam_results WHERE id IN (9001, 9002)');
    await expect(db.admin.query('SELECT * FROM attempt')).resolves.toBeDefined();
    expect(await viewQueryable()).toMatchObject({ status: 'ok', value: 0 });
  });
});

/** The pool's timeouts against a real PostgreSQL. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inTransaction } from '../../functions/db/pool.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => db?.drop());

describe('the client-side guard against a silent server', () => {
  it('follows a transaction given a longer statement_timeout than the session, so the server decides, not pg', async () => {
    // Session: 100 ms statement_timeout, so the guard would cut a statement at 5.1 s.
    const pool = db.pool('health-check', { statementTimeoutMs: 100 });
    const slept = await inTransaction(pool, { readOnly: true, statementTimeoutMs: 20_000 }, async (c) => {
      const r = await c.query<{ ok: boolean }>('SELECT pg_sleep(5.5)::text AS slept, true AS ok');
      return r.rows[0]!.ok;
    });
    expect(slept).toBe(true);
    // And afterwards the session's own guard is back: the server's 100 ms ends this one.
    await expect(pool.query('SELECT pg_sleep(1)')).rejects.toThrow(/statement timeout/);
  });
});

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHECK_NAMES, CHECK_SPECS } from '../../functions/contract/index.ts';
import { CATALOG } from '../../functions/checks/catalog.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { createTestDatabase, seedClean, type TestDatabase } from '../support/db.ts';

describe('check catalog on a clean database', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedClean(db.admin);
  });
  afterAll(async () => db?.drop());

  it('lists every contract check, in contract order, each with its own spec', () => {
    expect(Object.keys(CATALOG)).toEqual([...CHECK_NAMES]);
    for (const name of CHECK_NAMES) expect(CATALOG[name].spec).toBe(CHECK_SPECS[name]);
  });

  it('passes every check (mv_staleness and mv_fidelity skipped without attempt_mv, capture without bootstrap)', async () => {
    const report = await runHealthCheck({ pool: db.pool(), target: 'test', schema: 'public', appRole: 'seedtest_user' });
    const byName = Object.fromEntries(report.checks.map((c) => [c.name, c]));
    for (const name of CHECK_NAMES) {
      const expected = ['mv_staleness', 'mv_fidelity', 'capture'].includes(name) ? 'skipped' : 'ok';
      expect(byName[name]?.status, `${name}: ${byName[name]?.message}`).toBe(expected);
    }
    expect(report.status).toBe('ok');
  });
});

/**
 * `npm start` end to end, on a small dataset: its own embedded PostgreSQL, the seeded incidents,
 * the health check flagging each of them, every job through the real CLI, and a clean stop.
 */
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { main } from '../../functions/cli/main.ts';
import type { CliIo } from '../../functions/cli/io.ts';
import { runDemo } from '../../functions/demo/demo.ts';

describe('the demo', () => {
  it('flags every injected incident, runs every job, and stops PostgreSQL', async () => {
    let out = '';
    let err = '';
    const io: CliIo = { stdout: (t) => (out += t), stderr: (t) => (err += t), env: {}, color: false };
    const code = await runDemo(io, { rows: 2_000, cli: (argv) => main(argv, io) });
    expect(code, err.slice(-2000)).toBe(0);
    expect(err).toContain('seeding exam_results: 2,000 / 2,000 rows (100 %)');
    for (const line of [/^CRITICAL\s+view_queryable\s+P0\s+1\s/m, /^CRITICAL\s+permissions\s+P1\s+1\s/m, /^CRITICAL\s+required_nulls\s+P1\s+1\s/m,
      /^CRITICAL\s+orphan_results\s+P1\s+1\s/m, /^WARNING\s+duplicate_ids\s+P2\s+1\s/m]) {
      expect(out).toMatch(line);
    }
    for (const step of ['$ attempt-ops bootstrap --apply', '$ attempt-ops analyze', '$ attempt-ops refresh', '$ attempt-ops metrics',
      '$ attempt-ops diagnose data-quality', '$ attempt-ops remediate grant-select --apply', '$ attempt-ops remediate quarantine-duplicates --apply']) {
      expect(err).toContain(step);
    }
    // After the grant and quarantine fixes, the last check no longer reports them.
    const last = out.slice(out.lastIndexOf('attempt-ops check ·'));
    expect(last).toMatch(/^ok\s+permissions\s/m);
    expect(last).toMatch(/^ok\s+duplicate_ids\s/m);
    expect(err).toContain('every injected incident was flagged by the first health check.');
    expect(err.trim().endsWith('stopping PostgreSQL')).toBe(true);
  });

  it('--keep leaves the demo database running, prints its URL and commands to try, and stops at the end', async () => {
    let err = '';
    const io: CliIo = { stdout: () => undefined, stderr: (t) => (err += t), env: {}, color: false };
    let seen: { url: string; results: number } | undefined;
    const code = await runDemo(io, {
      rows: 1_000,
      keep: true,
      cli: (argv) => main(argv, io),
      // Instead of waiting for Ctrl-C: what a user would do with the printed URL.
      until: async (url) => {
        const c = new pg.Client({ connectionString: url });
        await c.connect();
        try {
          seen = { url, results: Number((await c.query('SELECT count(*) AS n FROM exam_results')).rows[0].n) };
        } finally {
          await c.end();
        }
      },
    });
    expect(code, err.slice(-2000)).toBe(0);
    expect(seen!.results).toBeGreaterThanOrEqual(1_000);
    expect(err).toContain(`PostgreSQL keeps running with the demo database (a throw-away password): ${seen!.url}`);
    expect(err).toContain(`npx attempt-ops check --database-url '${seen!.url}'`);
    expect(err.trim().endsWith('stopping PostgreSQL')).toBe(true);
  });
});

/**
 * `npm test`'s second step: the SQL test files again on Debian's PostgreSQL 15 where it is
 * installed (/usr/lib/postgresql/15/bin); where it is not, or when DATABASE_URL chose the server,
 * one line says the run is skipped and why, and it succeeds. Extra arguments go to vitest.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TEST_PG_BIN_ENV } from './global-setup.ts';
import { PG15_BIN } from './pg15.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function skip(why: string): never {
  console.log(`PostgreSQL 15 run skipped: ${why}`);
  process.exit(0);
}

if (process.env.DATABASE_URL) skip('DATABASE_URL is set, so the tests ran on that server only');
if (!existsSync(PG15_BIN)) skip(`${PG15_BIN} does not exist (Debian's postgresql-15 package is not installed)`);
const missing = ['initdb', 'postgres'].map((b) => path.join(PG15_BIN, b)).filter((b) => !existsSync(b));
if (missing.length > 0) skip(`${missing.join(' and ')} not found`);

console.log(`\nPostgreSQL 15 run: the SQL test files again, on ${PG15_BIN}\n`);
const vitest = path.join(root, 'node_modules', '.bin', 'vitest');
const result = spawnSync(vitest, ['run', '--config', 'vitest.pg15.config.ts', ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
  env: { ...process.env, [TEST_PG_BIN_ENV]: PG15_BIN },
});
if (result.error) throw result.error;
process.exit(result.status ?? 1);

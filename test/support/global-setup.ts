/**
 * One PostgreSQL for the whole run. Each test file then makes its own database in it
 * (test/support/db.ts), so files run in parallel. Which server:
 *
 * - DATABASE_URL set: that server; nothing is started. It needs a superuser login that may
 *   CREATE DATABASE, max_connections >= 200 and shared_preload_libraries=pg_stat_statements.
 * - ATTEMPT_OPS_TEST_PG_BIN set (a bin folder with initdb and postgres, e.g. Debian's
 *   /usr/lib/postgresql/15/bin): a throw-away cluster of that installation (system-postgres.ts).
 *   `npm test` does this for PostgreSQL 15 after the main run (run-pg15.ts).
 * - Otherwise: the embedded PostgreSQL 18 (functions/demo/embedded.ts).
 */
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { keepFailureExitCode, startEmbeddedPostgres, type EmbeddedDatabase } from '../../functions/demo/embedded.ts';
import { startSystemPostgres } from './system-postgres.ts';

/** The environment variable that selects an installed PostgreSQL instead of the embedded one. */
export const TEST_PG_BIN_ENV = 'ATTEMPT_OPS_TEST_PG_BIN';

/** The flags every started test server gets. */
export const TEST_POSTGRES_FLAGS = ['-c', 'max_connections=200', '-c', 'shared_preload_libraries=pg_stat_statements'];

let server: EmbeddedDatabase | undefined;

async function serverVersion(url: string): Promise<string> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query<{ v: string }>(`SELECT 'PostgreSQL ' || current_setting('server_version') AS v`)).rows[0]!.v;
  } finally {
    await c.end();
  }
}

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}

export async function setup(project: TestProject): Promise<void> {
  let url = process.env.DATABASE_URL;
  if (!url) {
    const binDir = process.env[TEST_PG_BIN_ENV];
    if (binDir) {
      server = await startSystemPostgres(binDir, { postgresFlags: TEST_POSTGRES_FLAGS });
      console.log(`tests on ${await serverVersion(server.url)} from ${binDir}`);
    } else {
      server = await startEmbeddedPostgres({ postgresFlags: TEST_POSTGRES_FLAGS });
      keepFailureExitCode();
    }
    url = server.url;
  }
  project.provide('adminUrl', url);
}

export async function teardown(): Promise<void> {
  await server?.stop();
  server = undefined;
}

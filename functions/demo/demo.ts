/**
 * `npm start` / `attempt-ops demo`: an embedded PostgreSQL, the reference schema with a seeded
 * dataset and injected incidents, then every job through the real command line, as an on-call
 * engineer would type it. PostgreSQL is stopped on the way out, Ctrl-C included.
 */
import { EXIT_CODES, type CheckName } from '../contract/index.ts';
import { fromUrl } from '../db/connection.ts';
import { connectClient, createPool } from '../db/pool.ts';
import { runHealthCheck } from '../jobs/health-check.ts';
import { renderHealthReport } from '../cli/render.ts';
import type { CliIo } from '../cli/io.ts';
import { startEmbeddedPostgres, type EmbeddedDatabase } from './embedded.ts';
import { createReferenceSchema, injectIncidents, seedReferenceData } from './seed.ts';

export interface DemoOptions {
  rows?: number;
  /** Runs one CLI command line; the demo command passes the real `main`. */
  cli: (argv: string[]) => Promise<number>;
}

/** What the injected incidents must make the health check report. */
export const EXPECTED_FINDINGS: Partial<Record<CheckName, 'critical' | 'warning'>> = {
  view_queryable: 'critical',
  permissions: 'critical',
  required_nulls: 'critical',
  orphan_results: 'critical',
  duplicate_ids: 'warning',
};

export async function runDemo(io: CliIo, options: DemoOptions): Promise<number> {
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
    const admin = await connectClient(fromUrl(db.url, 'embedded database'));
    await admin.query('CREATE DATABASE attempt_demo');
    await admin.end();
    const url = db.url.replace(/\/postgres$/, '/attempt_demo');
    const client = await connectClient(fromUrl(url, 'demo database'));
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

    say('\n$ attempt-ops check\n');
    const pool = createPool(fromUrl(url, 'demo database'), { job: 'health-check' });
    let missed: string[];
    try {
      const report = await runHealthCheck({ pool, target: 'demo', schema: 'public', appRole: 'seedtest_user' });
      io.stdout(renderHealthReport(report, io.color, 'docs/RUNBOOK.md'));
      missed = Object.entries(EXPECTED_FINDINGS)
        .filter(([name, status]) => report.checks.find((c) => c.name === name)?.status !== status)
        .map(([name]) => name);
    } finally {
      await pool.end();
    }

    // The rest of the product, exactly as typed at a terminal. A step that fails (refresh, on
    // the poison row) is part of the story: it prints its one line and the demo goes on.
    const db_ = ['--database-url', url, '--target', 'demo'];
    const steps: Array<{ why: string; argv: string[] }> = [
      { why: 'what bootstrap would create (dry run)', argv: ['bootstrap'] },
      { why: 'create attempt_ops, attempt_mv and the indexes', argv: ['bootstrap', '--apply'] },
      { why: 'ANALYZE where it is due', argv: ['analyze'] },
      { why: 'refresh attempt_mv: the poison questionId breaks the view, so this fails loudly', argv: ['refresh'] },
      { why: 'the frequent metrics', argv: ['metrics'] },
      { why: "runbook section 4's diagnosis, read-only", argv: ['diagnose', 'data-quality'] },
      { why: 'runbook section 2: what the grant fix would run', argv: ['remediate', 'grant-select'] },
      { why: 'and apply it', argv: ['remediate', 'grant-select', '--apply'] },
      { why: 'runbook section 5: move the surplus duplicate aside (undo: --restore)', argv: ['remediate', 'quarantine-duplicates', '--apply'] },
      { why: 'what is left for a human: the poison row, the NULL student, the orphan', argv: ['check'] },
    ];
    for (const step of steps) {
      say(`\n# ${step.why}\n$ attempt-ops ${step.argv.join(' ')}\n`);
      const code = await options.cli([...step.argv, ...db_]);
      say(`(exit ${code})`);
    }

    if (missed.length > 0) {
      say(`\nthe health check missed injected incidents: ${missed.join(', ')}`);
      return EXIT_CODES.critical;
    }
    say('\nevery injected incident was flagged by the first health check.');
    return EXIT_CODES.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('stopping PostgreSQL');
    await stop();
  }
}

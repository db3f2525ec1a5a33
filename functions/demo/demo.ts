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
  /** Leave PostgreSQL running at the end, with its URL and commands to try, until Ctrl-C. */
  keep?: boolean;
  /** With keep, for tests: what to wait for instead of Ctrl-C, given the demo database's URL. */
  until?: (url: string) => Promise<void>;
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

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

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

    const code = missed.length > 0 ? EXIT_CODES.critical : EXIT_CODES.ok;
    say(missed.length > 0 ? `\nthe health check missed injected incidents: ${missed.join(', ')}` : '\nevery injected incident was flagged by the first health check.');
    if (options.keep) {
      // Ctrl-C is now the way out, not an interruption: wait for it instead of exiting on it.
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const u = `'${url}'`;
      say([
        '',
        `PostgreSQL keeps running with the demo database (a throw-away password): ${url}`,
        'try:',
        `  npx attempt-ops check --database-url ${u}`,
        `  npx attempt-ops diagnose data-quality --database-url ${u}`,
        `  npx attempt-ops remediate quarantine-duplicates --restore --database-url ${u}`,
        'Ctrl-C stops it.',
      ].join('\n'));
      await (options.until ? options.until(url) : untilSignal());
    }
    return code;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    say('stopping PostgreSQL');
    await stop();
  }
}

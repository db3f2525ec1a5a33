/**
 * a. The hourly health check (incremental scope, an hour after the last run), the daily full
 * scope, and the runbook's own whole-view queries, on the same data: database time, medians.
 */
import type pg from 'pg';
import { DATA_QUALITY_CHECKS, type HealthReport, type Scope } from '../functions/contract/index.ts';
import { runHealthCheck } from '../functions/jobs/health-check.ts';
import type { Logger } from '../functions/runtime/log.ts';
import { runJob, type CountingCloudWatch, type MeteredDeps, type PutMetricDataCount } from './jobs.ts';
import type { ServerStatements } from './meter.ts';
import { median, ratio, summarize, type Samples } from './stats.ts';

export interface HealthCheckFigures {
  scope: Scope;
  /** What the run read: "since <time>" or "every row". */
  window: string;
  /** exam_results rows in that window. */
  windowRows: number;
  wallMs: Samples;
  dbMs: Samples;
  serverMs: Samples | null;
  statements: number;
  status: string;
  /** The data-quality checks, whose cost is the scope's: anything but ok/skipped is worth a look. */
  dataQuality: Record<string, string>;
  /** Checks that were not ok, with the reason (a check past its statement timeout reports unknown). */
  problems: string[];
  /** The checks that took longest, median of their own durations: where to look first. */
  slowest: Array<{ name: string; ms: number }>;
  published: PutMetricDataCount;
}

export interface RunbookQuery {
  id: string;
  /** Where the runbook has it. */
  source: string;
  sql: string;
}

export interface RunbookQueryFigures {
  id: string;
  source: string;
  dbMs: Samples;
  serverMs: Samples | null;
  result: string;
}

export interface HealthFigures {
  incremental: HealthCheckFigures;
  full: HealthCheckFigures;
  runbook: RunbookQueryFigures[];
  /** Sum of the runbook queries' medians: one pass of them. */
  runbookDbMs: number;
  runbookServerMs: number | null;
  /** How many times less database time the hourly check uses than the runbook's queries. */
  incrementalVsRunbook: { db: number | null; server: number | null };
  fullVsRunbook: { db: number | null; server: number | null };
}

/**
 * The runbook's whole-view health queries, verbatim ("Check VIEW Health" 1 to 4, section 4's NULL
 * counts, section 5's duplicate ids). Query 5 of "Check VIEW Health" is an EXPLAIN of section 3's
 * query, measured in c.
 */
export const RUNBOOK_QUERIES: readonly RunbookQuery[] = [
  { id: 'view exists', source: 'Check VIEW Health, 1', sql: `SELECT COUNT(*) AS view_exists FROM pg_views WHERE viewname = 'attempt'` },
  { id: 'row count', source: 'Check VIEW Health, 2', sql: `SELECT COUNT(*) AS total_attempts FROM attempt` },
  { id: 'recent data', source: 'Check VIEW Health, 3', sql: `SELECT MAX(completed_at) AS latest_attempt FROM attempt` },
  {
    id: 'no NULLs (id, student_id)',
    source: 'Check VIEW Health, 4',
    sql: `SELECT
  COUNT(*) FILTER (WHERE id IS NULL) AS null_ids,
  COUNT(*) FILTER (WHERE student_id IS NULL) AS null_student_ids
FROM attempt`,
  },
  {
    id: 'NULLs in required fields',
    source: 'section 4, diagnosis',
    sql: `SELECT 
  COUNT(*) AS total,
  COUNT(*) FILTER (WHERE id IS NULL) AS null_id,
  COUNT(*) FILTER (WHERE student_id IS NULL) AS null_student_id,
  COUNT(*) FILTER (WHERE item_id IS NULL) AS null_item_id,
  COUNT(*) FILTER (WHERE question_id IS NULL) AS null_question_id,
  COUNT(*) FILTER (WHERE is_correct IS NULL) AS null_is_correct
FROM attempt`,
  },
  {
    id: 'duplicate ids',
    source: 'section 5, diagnosis',
    sql: `WITH id_counts AS (
  SELECT id, COUNT(*) AS cnt
  FROM attempt
  GROUP BY id
  HAVING COUNT(*) > 1
)
SELECT a.*
FROM attempt a
JOIN id_counts ic ON a.id = ic.id
ORDER BY a.id, a.completed_at
LIMIT 20`,
  },
];

export interface HealthOptions {
  reps: number;
  slowReps: number;
}

/** Records what the job logs at its start: the incremental window. */
function windowLogger(onSince: (since: string) => void): Logger {
  const none = () => undefined;
  return {
    debug: none,
    warn: none,
    error: none,
    info(message, fields) {
      if (message === 'health check started' && typeof fields?.since === 'string') onSince(fields.since);
    },
  };
}

async function measureScope(
  scope: Scope, reps: number, m: MeteredDeps, cw: CountingCloudWatch, admin: pg.Client, server: ServerStatements,
): Promise<HealthCheckFigures> {
  let window = '';
  const log = windowLogger((since) => {
    window = since;
  });
  const wall: number[] = [];
  const db: number[] = [];
  const srv: number[] = [];
  let last: { report: HealthReport; statements: number; published: PutMetricDataCount } | undefined;
  const perCheck = new Map<string, number[]>();
  for (let i = 0; i < reps; i++) {
    await server.reset();
    // As the schedule runs it: concurrency 2 (functions/handlers/health-check.ts), recorded, published.
    const run = await runJob('health-check', m, cw, (deps) => runHealthCheck({ ...deps, log }, { scope, concurrency: 2 }), log);
    const s = await server.totalMs();
    wall.push(run.wallMs);
    db.push(run.dbMs);
    if (s !== null) srv.push(s);
    last = { report: run.report, statements: run.statements, published: run.published };
    for (const c of run.report.checks) perCheck.set(c.name, [...(perCheck.get(c.name) ?? []), c.durationMs]);
  }
  const since = window && window !== 'every row' ? window : null;
  const { rows } = await admin.query<{ n: string }>(
    since ? `SELECT count(*) AS n FROM exam_results WHERE completed_at >= $1` : `SELECT count(*) AS n FROM exam_results`,
    since ? [since] : [],
  );
  const report = last!.report;
  return {
    scope,
    window: since ? `since ${since}` : 'every row',
    windowRows: Number(rows[0]?.n ?? 0),
    wallMs: summarize(wall),
    dbMs: summarize(db),
    serverMs: srv.length > 0 ? summarize(srv) : null,
    statements: last!.statements,
    status: report.status,
    dataQuality: Object.fromEntries(report.checks.filter((c) => DATA_QUALITY_CHECKS.includes(c.name)).map((c) => [c.name, c.status])),
    problems: report.checks.filter((c) => c.status !== 'ok' && c.status !== 'skipped').map((c) => `${c.name} ${c.status}: ${c.message}`),
    slowest: [...perCheck]
      .map(([name, ms]) => ({ name, ms: median(ms) }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 3),
    published: last!.published,
  };
}

function describeResult(rows: Record<string, unknown>[]): string {
  if (rows.length !== 1) return `${rows.length} row(s)`;
  return Object.entries(rows[0]!)
    .map(([k, v]) => `${k}=${v instanceof Date ? v.toISOString() : String(v)}`)
    .join(', ');
}

export async function measureRunbookQuery(q: RunbookQuery, reps: number, admin: pg.Client, server: ServerStatements): Promise<RunbookQueryFigures> {
  const db: number[] = [];
  const srv: number[] = [];
  let result = '';
  for (let i = 0; i < reps; i++) {
    await server.reset();
    const started = performance.now();
    const r = await admin.query<Record<string, unknown>>(q.sql);
    db.push(performance.now() - started);
    const s = await server.totalMs();
    if (s !== null) srv.push(s);
    result = describeResult(r.rows);
  }
  return { id: q.id, source: q.source, dbMs: summarize(db), serverMs: srv.length > 0 ? summarize(srv) : null, result };
}

export async function measureHealth(
  m: MeteredDeps, cw: CountingCloudWatch, admin: pg.Client, server: ServerStatements, o: HealthOptions, progress: (line: string) => void,
): Promise<HealthFigures> {
  // The first run opens the pool's sessions: a warm container is what runs every hour after the first.
  await runHealthCheck(m.deps, { scope: 'incremental', concurrency: 2, dryRun: true });
  progress(`a. hourly health check, incremental scope (${o.reps} runs)`);
  const incremental = await measureScope('incremental', o.reps, m, cw, admin, server);
  progress(`a. health check, full scope (${o.slowReps} runs)`);
  const full = await measureScope('full', o.slowReps, m, cw, admin, server);
  const runbook: RunbookQueryFigures[] = [];
  for (const q of RUNBOOK_QUERIES) {
    progress(`a. runbook query "${q.id}" (${q.source}, ${o.slowReps} runs)`);
    runbook.push(await measureRunbookQuery(q, o.slowReps, admin, server));
  }
  const runbookDbMs = runbook.reduce((n, q) => n + q.dbMs.median, 0);
  const runbookServerMs = runbook.every((q) => q.serverMs) ? runbook.reduce((n, q) => n + q.serverMs!.median, 0) : null;
  return {
    incremental,
    full,
    runbook,
    runbookDbMs,
    runbookServerMs,
    incrementalVsRunbook: { db: ratio(runbookDbMs, incremental.dbMs.median), server: ratio(runbookServerMs, incremental.serverMs?.median) },
    fullVsRunbook: { db: ratio(runbookDbMs, full.dbMs.median), server: ratio(runbookServerMs, full.serverMs?.median) },
  };
}

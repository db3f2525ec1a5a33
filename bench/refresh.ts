/**
 * b. Refreshing attempt_mv after an hour's delta (0.1 % new rows, a quarter of them late), with
 * the refresh-mv job itself in each mode: plain (full), CONCURRENTLY, and incremental once the
 * job accepts it. Each repetition first appends a fresh delta, so every refresh has work to do.
 */
import type pg from 'pg';
import type { ActionReport, RefreshMode, RefreshReport } from '../functions/contract/index.ts';
import { AttemptOpsError } from '../functions/db/errors.ts';
import { runRefresh } from '../functions/jobs/refresh-mv.ts';
import type { Logger } from '../functions/runtime/log.ts';
import { insertDelta, type DatasetSpec } from './dataset.ts';
import { runJob, type CountingCloudWatch, type MeteredDeps, type PutMetricDataCount } from './jobs.ts';
import type { ServerStatements, StatementTime } from './meter.ts';
import { ratio, summarize, type Samples } from './stats.ts';

export const NOT_AVAILABLE = 'n/a (not available yet)';

export interface RefreshModeFigures {
  mode: RefreshMode;
  available: boolean;
  /** Why not, in the job's own words. */
  unavailable: string | null;
  /** The refresh that really ran, as the job reports it (a mode may fall back to another). */
  ranAs: string[];
  /** What the last run says it did (for incremental: students recomputed, rows out and in). */
  lastMessage: string | null;
  /** The delta's INSERT, untimed by the refresh: the writers' side, change capture included once installed. */
  insertMs: Samples | null;
  wallMs: Samples | null;
  dbMs: Samples | null;
  serverMs: Samples | null;
  deltaRows: number;
  lateRows: number;
  /** attempt_mv EXCEPT ALL attempt, both ways, after the last run: null when not compared. */
  differingRows: number | null;
  published: PutMetricDataCount | null;
  /** The last run's status. */
  status: string | null;
  /** The last run's costliest statements (pg_stat_statements; empty without it). */
  topStatements: StatementTime[];
}

export interface RefreshFigures {
  /** Rows appended before each repetition. */
  deltaRows: number;
  lateRows: number;
  modes: RefreshModeFigures[];
  /** How many times faster incremental is than CONCURRENTLY (medians of wall time). */
  incrementalVsConcurrent: number | null;
}

export interface RefreshOptions {
  reps: number;
  deltaRows: number;
  /** Compare attempt_mv with the view after the incremental runs (two passes over the view). */
  verifyIncremental: boolean;
}

const TOP_STATEMENTS = 5;

/** Plain first: CONCURRENTLY then diffs against a freshly written attempt_mv, as it would every hour. */
const ORDER: readonly RefreshMode[] = ['full', 'concurrent', 'incremental'];

/** The refresh action is the last one: a first incremental run reports its conversion steps before it. */
function refreshAction(report: RefreshReport): ActionReport | undefined {
  return report.actions.findLast((a) => a.action === 'refresh');
}

function ranAs(report: RefreshReport): string {
  const a = refreshAction(report);
  const mode = a?.after?.mode;
  return typeof mode === 'string' ? mode : (a?.outcome ?? 'unknown');
}

/** Rows in one and not the other, both ways, duplicates counted. */
export async function differingRows(admin: pg.Client): Promise<number> {
  const { rows } = await admin.query<{ n: string }>(
    `SELECT (SELECT count(*) FROM (SELECT * FROM attempt_mv EXCEPT ALL SELECT * FROM attempt) a)
          + (SELECT count(*) FROM (SELECT * FROM attempt EXCEPT ALL SELECT * FROM attempt_mv) b) AS n`,
  );
  return Number(rows[0]?.n ?? 0);
}

async function measureMode(
  mode: RefreshMode, o: RefreshOptions, spec: DatasetSpec, m: MeteredDeps, cw: CountingCloudWatch, admin: pg.Client,
  server: ServerStatements, log: Logger, progress: (line: string) => void,
): Promise<RefreshModeFigures> {
  const empty: RefreshModeFigures = {
    mode, available: true, unavailable: null, ranAs: [], lastMessage: null, insertMs: null, wallMs: null, dbMs: null, serverMs: null,
    deltaRows: 0, lateRows: 0, differingRows: null, published: null, status: null, topStatements: [],
  };
  if (mode === 'incremental') {
    // Untimed: the first incremental run catches up with everything the other modes' deltas left
    // in its change log (or builds its state); the hourly steady state is what the reps measure.
    try {
      await runRefresh(m.deps, { mode });
    } catch (err) {
      if (err instanceof AttemptOpsError && err.kind === 'config') return { ...empty, available: false, unavailable: err.message };
      throw err;
    }
  }
  const wall: number[] = [];
  const db: number[] = [];
  const srv: number[] = [];
  const inserts: number[] = [];
  const figures = { ...empty };
  for (let i = 0; i < o.reps; i++) {
    progress(`b. refresh ${mode}: run ${i + 1} of ${o.reps}`);
    const insertStarted = performance.now();
    const delta = await insertDelta(admin, spec, o.deltaRows);
    inserts.push(performance.now() - insertStarted);
    figures.deltaRows += delta.rows;
    figures.lateRows += delta.lateRows;
    await server.reset();
    const run = await runJob('refresh-mv', m, cw, (deps) => runRefresh(deps, { mode }), log);
    const s = await server.totalMs();
    figures.topStatements = await server.top(TOP_STATEMENTS);
    wall.push(run.wallMs);
    db.push(run.dbMs);
    if (s !== null) srv.push(s);
    figures.ranAs.push(ranAs(run.report));
    figures.lastMessage = refreshAction(run.report)?.message ?? null;
    figures.published = run.published;
    figures.status = run.report.status;
  }
  figures.deltaRows /= Math.max(1, o.reps);
  figures.lateRows /= Math.max(1, o.reps);
  figures.insertMs = summarize(inserts);
  figures.wallMs = summarize(wall);
  figures.dbMs = summarize(db);
  figures.serverMs = srv.length > 0 ? summarize(srv) : null;
  if (mode === 'incremental' && o.verifyIncremental) {
    progress('b. comparing attempt_mv with the view (EXCEPT ALL, both ways)');
    figures.differingRows = await differingRows(admin);
  }
  return figures;
}

export async function measureRefresh(
  o: RefreshOptions, spec: DatasetSpec, m: MeteredDeps, cw: CountingCloudWatch, admin: pg.Client, server: ServerStatements,
  log: Logger, progress: (line: string) => void,
): Promise<RefreshFigures> {
  const modes: RefreshModeFigures[] = [];
  for (const mode of ORDER) modes.push(await measureMode(mode, o, spec, m, cw, admin, server, log, progress));
  const byMode = (mode: RefreshMode) => modes.find((x) => x.mode === mode);
  const first = modes.find((x) => x.available);
  return {
    deltaRows: first?.deltaRows ?? 0,
    lateRows: first?.lateRows ?? 0,
    modes,
    incrementalVsConcurrent: ratio(byMode('concurrent')?.wallMs?.median, byMode('incremental')?.wallMs?.median),
  };
}

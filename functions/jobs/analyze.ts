/**
 * ANALYZE for the view's relations when their statistics are due (runbook section 3: stale
 * statistics after bulk loads make the planner pick sequential scans), or when forced.
 *
 * Due means, per table:
 * - never analyzed while it has rows, or
 * - more rows modified since the last (auto)analyze than 50 + 10 % of its rows: autovacuum's own
 *   default trigger (autovacuum_analyze_threshold 50, autovacuum_analyze_scale_factor 0.1), so a
 *   bulk load big enough to make autovacuum analyze soon is analyzed now, and nothing smaller, or
 * - the last (auto)analyze older than the contract's 7 days (THRESHOLDS.statsAgeHours).
 *
 * Each ANALYZE runs with a short lock_timeout: it takes SHARE UPDATE EXCLUSIVE, so it must never
 * sit in a lock queue behind DDL (where it would block every reader queued after it). A lock
 * timeout fails the job at once with kind 'lock-timeout'.
 */
import type { QueryConfig } from 'pg';
import {
  ANALYZE_TABLES, DIMENSION_TABLE, REPORT_VERSION, THRESHOLDS, datum,
  type ActionReport, type AnalyzeReport, type AnalyzeTable, type MetricDatum,
} from '../contract/index.ts';
import { AttemptOpsError, classifyDbError } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import { DEFAULT_TIMEOUTS, inTransaction, withClient, type PoolClient } from '../db/pool.ts';
import type { JobDeps } from './deps.ts';

export interface AnalyzeOptions {
  /** Default: every table of ANALYZE_TABLES that exists. */
  tables?: readonly AnalyzeTable[];
  force?: boolean;
  /** Decide and report; run nothing. */
  dryRun?: boolean;
  /** How long one ANALYZE may wait for its lock before the job fails (ms); default: the session's. */
  lockTimeoutMs?: number;
  /** statement_timeout of one ANALYZE (ms), capped by the time the run has left; default: the session's. */
  statementTimeoutMs?: number;
}

export const ANALYZE_BASE_THRESHOLD = 50;
export const ANALYZE_SCALE_FACTOR = 0.1;
/** Only when the session has no statement timeout: ANALYZE samples at most 30,000 rows per table. */
export const ANALYZE_STATEMENT_TIMEOUT_MS = 5 * 60_000;

export interface TableStats {
  table: AnalyzeTable;
  /** schema.table, for people. */
  relation: string;
  exists: boolean;
  reltuples: number;
  liveTuples: number;
  modifiedSinceAnalyze: number;
  /** The later of last_analyze and last_autoanalyze. */
  lastAnalyze: Date | null;
  /** Hours since lastAnalyze, by the database's clock. */
  ageHours: number | null;
}

export interface Decision {
  due: boolean;
  reason: string;
  /** Modifications past which ANALYZE is due. */
  threshold: number;
}

/** The autovacuum-like threshold; reltuples is -1 for a table never vacuumed or analyzed. */
export function modificationThreshold(reltuples: number): number {
  return Math.round(ANALYZE_BASE_THRESHOLD + ANALYZE_SCALE_FACTOR * Math.max(0, reltuples));
}

export function analyzeDue(s: TableStats, force: boolean): Decision {
  const threshold = modificationThreshold(s.reltuples);
  const analyzed = s.lastAnalyze === null ? 'never analyzed' : `analyzed ${formatHours(s.ageHours ?? 0)} ago`;
  if (force) return { due: true, reason: `forced (${analyzed}, ${s.modifiedSinceAnalyze} rows modified since)`, threshold };
  if (s.lastAnalyze === null && (s.liveTuples > 0 || s.modifiedSinceAnalyze > 0 || s.reltuples > 0)) {
    return { due: true, reason: `never analyzed, ${Math.max(s.liveTuples, s.modifiedSinceAnalyze)} rows`, threshold };
  }
  if (s.modifiedSinceAnalyze > threshold) {
    return { due: true, reason: `${s.modifiedSinceAnalyze} rows modified since the last analyze (threshold ${threshold})`, threshold };
  }
  if (s.ageHours !== null && s.ageHours > THRESHOLDS.statsAgeHours) {
    return { due: true, reason: `last analyzed ${formatHours(s.ageHours)} ago (threshold ${THRESHOLDS.statsAgeHours} h)`, threshold };
  }
  const why = s.lastAnalyze === null ? 'empty and never analyzed' : `${analyzed}, ${s.modifiedSinceAnalyze} rows modified (threshold ${threshold})`;
  return { due: false, reason: `statistics fresh: ${why}`, threshold };
}

function formatHours(h: number): string {
  return h < 1 ? `${Math.round(h * 60)} min` : `${h.toFixed(1)} h`;
}

type StatsRow = {
  name: AnalyzeTable;
  exists: boolean;
  reltuples: number | null;
  live: string | null;
  modified: string | null;
  last_analyze: Date | null;
  age_hours: number | null;
};

/** Catalog and statistics reads only: none of them waits for a lock on the tables. */
export async function readTableStats(deps: JobDeps, tables: readonly AnalyzeTable[]): Promise<TableStats[]> {
  let rows: StatsRow[];
  try {
    ({ rows } = await deps.pool.query<StatsRow>(
      `SELECT t.name, c.oid IS NOT NULL AS exists, c.reltuples::float8 AS reltuples,
              s.n_live_tup AS live, s.n_mod_since_analyze AS modified,
              greatest(s.last_analyze, s.last_autoanalyze) AS last_analyze,
              extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 / 3600 AS age_hours
         FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(name, relation, ord)
         LEFT JOIN pg_class c ON c.oid = to_regclass(t.relation) AND c.relkind IN ('r', 'm', 'p')
         LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
        ORDER BY t.ord`,
      [tables, tables.map((t) => qualified(deps.schema, t))],
    ));
  } catch (err) {
    throw classifyDbError(err, 'reading table statistics');
  }
  return rows.map((r) => ({
    table: r.name,
    relation: `${deps.schema}.${r.name}`,
    exists: r.exists,
    reltuples: Number(r.reltuples ?? -1),
    liveTuples: Number(r.live ?? 0),
    modifiedSinceAnalyze: Number(r.modified ?? 0),
    lastAnalyze: r.last_analyze,
    ageHours: r.age_hours === null ? null : Number(r.age_hours),
  }));
}

function snapshot(s: TableStats): Record<string, unknown> {
  return {
    lastAnalyze: s.lastAnalyze?.toISOString() ?? null,
    nModSinceAnalyze: s.modifiedSinceAnalyze,
    liveTuples: s.liveTuples,
    reltuples: s.reltuples,
  };
}

export function analyzeSql(schema: string, table: AnalyzeTable): string {
  return `ANALYZE ${qualified(schema, table)}`;
}

/** A statement timeout that never outlives the run: the Lambda must report, not be killed. */
export function cappedTimeout(configuredMs: number, remainingMs?: () => number): number {
  const left = remainingMs?.();
  return Math.max(1, Math.round(left === undefined ? configuredMs : Math.min(configuredMs, left)));
}

/**
 * A statement allowed to run for timeoutMs. pg's client-side query_timeout defaults to the pool's
 * statement timeout plus 5 s, and would give up on a longer statement the server is still running.
 */
export function longStatement(text: string, timeoutMs: number): QueryConfig & { query_timeout: number } {
  return { text, query_timeout: timeoutMs + 5_000 };
}

export interface StatementTimeouts {
  statementTimeoutMs: number;
  lockTimeoutMs: number;
}

/**
 * Sets the timeouts of a maintenance statement on its session and returns them. Unless the caller
 * names its own, they are the session's: what the stack configures per function
 * (ATTEMPT_OPS_STATEMENT_TIMEOUT_MS, ATTEMPT_OPS_LOCK_TIMEOUT_MS) or the CLI per command. The
 * statement timeout is capped by the time the run has left; neither is ever left unlimited (0),
 * or a lock wait would queue behind DDL for good.
 *
 * LOCAL needs a transaction; SESSION is for a session dropped afterwards (CREATE INDEX CONCURRENTLY).
 */
export async function applyTimeouts(
  client: PoolClient, scope: 'LOCAL' | 'SESSION', requested: Partial<StatementTimeouts>,
  fallbackStatementMs: number, remainingMs?: () => number,
): Promise<StatementTimeouts> {
  const { rows } = await client.query<{ statement_ms: string; lock_ms: string }>(
    `SELECT (SELECT setting FROM pg_settings WHERE name = 'statement_timeout') AS statement_ms,
            (SELECT setting FROM pg_settings WHERE name = 'lock_timeout') AS lock_ms`,
  );
  const session = { statement: Number(rows[0]?.statement_ms ?? 0), lock: Number(rows[0]?.lock_ms ?? 0) };
  const statementTimeoutMs = cappedTimeout(requested.statementTimeoutMs ?? (session.statement > 0 ? session.statement : fallbackStatementMs), remainingMs);
  const lockTimeoutMs = Math.max(1, Math.round(requested.lockTimeoutMs ?? (session.lock > 0 ? session.lock : DEFAULT_TIMEOUTS.lockTimeoutMs)));
  const set = scope === 'LOCAL' ? 'SET LOCAL' : 'SET';
  await client.query(`${set} statement_timeout = ${statementTimeoutMs}`);
  await client.query(`${set} lock_timeout = ${lockTimeoutMs}`);
  return { statementTimeoutMs, lockTimeoutMs };
}

/**
 * Two analyze runs at once (a duplicated EventBridge delivery, the CLI beside the schedule) would
 * only queue ANALYZE behind ANALYZE: the second one takes this session-level advisory lock or
 * reports skipped at once. The key spells "analyze" in ASCII, apart from refresh-mv's.
 */
export const ANALYZE_LOCK_KEY = '27424437451717221';

export async function runAnalyze(deps: JobDeps, options: AnalyzeOptions = {}): Promise<AnalyzeReport> {
  if (options.dryRun === true) return analyzeOnce(deps, options);
  return withClient(deps.pool, async (guard) => {
    const { rows } = await guard.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS locked', [ANALYZE_LOCK_KEY]);
    if (rows[0]?.locked !== true) return skippedReport(deps, 'another analyze run is in progress');
    try {
      return await analyzeOnce(deps, options);
    } finally {
      await guard.query('SELECT pg_advisory_unlock($1::bigint)', [ANALYZE_LOCK_KEY]);
    }
  }).catch((err) => {
    throw classifyDbError(err, 'analyze');
  });
}

function skippedReport(deps: JobDeps, reason: string): AnalyzeReport {
  const startedAt = (deps.clock ?? (() => new Date()))();
  deps.log?.info('analyze skipped', { reason });
  return {
    version: REPORT_VERSION,
    job: 'analyze',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: 0,
    status: 'ok',
    dryRun: false,
    force: false,
    actions: [{ object: `${deps.schema}.*`, action: 'analyze', outcome: 'skipped', message: `skipped: ${reason}` }],
    notes: [reason],
    metrics: [],
  };
}

async function analyzeOnce(deps: JobDeps, options: AnalyzeOptions): Promise<AnalyzeReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const force = options.force === true;
  const dryRun = options.dryRun === true;
  const tables = ANALYZE_TABLES.filter((t) => !options.tables || options.tables.includes(t));
  const before = await readTableStats(deps, tables);

  const actions: ActionReport[] = [];
  const metrics: MetricDatum[] = [];
  const analyzed: AnalyzeTable[] = [];
  for (const stats of before) {
    const sql = analyzeSql(deps.schema, stats.table);
    if (!stats.exists) {
      actions.push({ object: stats.relation, action: 'analyze', outcome: 'skipped', message: `${stats.relation} does not exist` });
      continue;
    }
    const decision = analyzeDue(stats, force);
    const base = { object: stats.relation, action: 'analyze', before: { ...snapshot(stats), threshold: decision.threshold } };
    if (!decision.due) {
      actions.push({ ...base, outcome: 'skipped', message: decision.reason });
      continue;
    }
    if (dryRun) {
      actions.push({ ...base, outcome: 'planned', message: `would analyze: ${decision.reason}`, sql: [sql] });
      continue;
    }
    if (deps.signal?.aborted) throw new AttemptOpsError('timeout', `analyze aborted before ${stats.relation}: out of time`);
    const started = performance.now();
    try {
      await inTransaction(deps.pool, {}, async (client) => {
        const t = await applyTimeouts(client, 'LOCAL', options, ANALYZE_STATEMENT_TIMEOUT_MS, deps.remainingMs);
        // ANALYZE on a table the role may not maintain is no error: a WARNING, and nothing done.
        let refused: string | undefined;
        const onNotice = (n: { message?: string }) => {
          if (n.message && /skipping/i.test(n.message)) refused = n.message;
        };
        client.on('notice', onNotice);
        try {
          await client.query(longStatement(sql, t.statementTimeoutMs));
        } finally {
          client.off('notice', onNotice);
        }
        if (refused) {
          throw new AttemptOpsError('permission', `ANALYZE ${stats.relation}: ${refused} (it needs the table's owner, or the MAINTAIN privilege from PostgreSQL 17)`);
        }
      });
    } catch (err) {
      // The tables analyzed so far stay analyzed; the job still fails, so its alarm sees the lock.
      throw classifyDbError(err, `ANALYZE ${stats.relation}`);
    }
    const durationMs = Math.round(performance.now() - started);
    metrics.push(datum('analyze_duration_ms', durationMs, deps.target, { [DIMENSION_TABLE]: stats.table }));
    actions.push({ ...base, outcome: 'done', message: `analyzed: ${decision.reason}`, sql: [sql], durationMs });
    analyzed.push(stats.table);
    deps.log?.info('analyzed', { table: stats.relation, durationMs, reason: decision.reason });
  }

  if (analyzed.length > 0) {
    const after = new Map((await readTableStats(deps, analyzed)).map((s) => [s.relation, s]));
    for (const a of actions) {
      const s = after.get(a.object);
      if (a.outcome === 'done' && s) a.after = snapshot(s);
    }
  }

  return {
    version: REPORT_VERSION,
    job: 'analyze',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    status: 'ok',
    dryRun,
    force,
    actions,
    notes: [
      `ANALYZE is due past ${ANALYZE_BASE_THRESHOLD} + ${ANALYZE_SCALE_FACTOR * 100} % of a table's rows modified, or ${THRESHOLDS.statsAgeHours} h since the last analyze`,
    ],
    metrics,
  };
}

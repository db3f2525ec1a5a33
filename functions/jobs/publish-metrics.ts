/**
 * The cheap, frequent metrics (every minute once deployed): the live-state checks of the catalog
 * (connections, blocking, long_running, query_latency, mv_staleness), run exactly as the health
 * check runs them, and, where pg_stat_statements is installed, how many queries on attempt ran
 * since the previous run and their mean execution time.
 *
 * pg_stat_statements counters are cumulative, so each run publishes the delta from the sample the
 * previous run kept in attempt_ops.metric_state. Queries on attempt are the statements whose text
 * names attempt or attempt_mv as a word, minus DDL and maintenance, minus our own: those of the
 * role attempt-ops connects as (when that is not the app role; if it is, they cannot be told
 * apart and the report says so).
 */
import {
  CHECK_SPECS, EVERY_MINUTE_CHECKS, OPS_SCHEMA, REPORT_VERSION, datum,
  type ActionReport, type CheckName, type MetricDatum, type MetricName, type PublishMetricsReport, type Status,
} from '../contract/index.ts';
import { classifyDbError } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import { inTransaction, type PoolClient } from '../db/pool.ts';
import { METRIC_STATE } from '../sql/ops-schema.ts';
import { AUDIT_FUNCTIONS, METRIC_STATE_PUT_SQL } from '../sql/audit.ts';
import type { JobDeps } from './deps.ts';
import { runHealthCheck } from './health-check.ts';

export interface PublishMetricsOptions {
  /** Compute and report; keep no sample, publish nothing. */
  dryRun?: boolean;
}

/**
 * Every minute: the live signals, and the P0 and P1 checks, so that a dropped view, schema drift
 * or a poison row pages within minutes, not at the next hourly run (CONTRACT section 6's bounds).
 * The catalog checks cost a few catalog reads; the data-quality ones read only the rows changed
 * since the hourly run's cursor and the open findings (changesOnly: without the change capture
 * they leave the reading to the hourly run instead of scanning a day of rows every minute).
 * Which checks those are is each signal's scope in SIGNALS (catalog, changes or live).
 */
export const PUBLISH_METRICS_CHECKS: readonly CheckName[] = EVERY_MINUTE_CHECKS;

/** The key of our pg_stat_statements sample in metric_state. */
export const STATEMENTS_STATE_NAME = 'pg_stat_statements:attempt';
/** Advisory lock so two overlapping runs never publish the same delta twice: the ASCII bytes of "metrics". */
export const SAMPLE_LOCK_KEY = '30792323271582579';
/** Relation names as words: attempt_ops.* and the index names do not match. */
export const ATTEMPT_QUERY_PATTERN = '\\mattempt(_mv)?\\M';
/** Statements that name attempt without being a query of it. */
export const NOT_A_QUERY_PATTERN = '^\\s*(REFRESH|ANALYZE|VACUUM|CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|REINDEX|CLUSTER|LOCK|TRUNCATE|SECURITY)\\M';

interface Sample {
  calls: bigint;
  totalMs: number;
  statsReset: Date | null;
}

interface StatementsResult {
  metrics: MetricDatum[];
  actions: ActionReport[];
  notes: string[];
}

const STATEMENT_METRICS: readonly MetricName[] = ['attempt_query_count', 'attempt_query_mean_ms'];

function skippedStatements(message: string): StatementsResult {
  return {
    metrics: [],
    actions: STATEMENT_METRICS.map((m) => ({ object: m, action: 'collect', outcome: 'skipped', message })),
    notes: [`${STATEMENT_METRICS.join(' and ')} skipped: ${message}`],
  };
}

async function readSample(client: PoolClient, extSchema: string, appRole: string): Promise<Sample & { sameRole: boolean; hidden: number; statements: number }> {
  const view = qualified(extSchema, 'pg_stat_statements');
  const info = qualified(extSchema, 'pg_stat_statements_info');
  const { rows } = await client.query<{ calls: string; total_ms: number; statements: number; hidden: number; stats_reset: Date | null; same_role: boolean }>(
    `SELECT coalesce(sum(s.calls) FILTER (WHERE s.query ~* $1 AND s.query !~* $2), 0)::text AS calls,
            coalesce(sum(s.total_exec_time) FILTER (WHERE s.query ~* $1 AND s.query !~* $2), 0)::float8 AS total_ms,
            (count(*) FILTER (WHERE s.query ~* $1 AND s.query !~* $2))::int AS statements,
            (count(*) FILTER (WHERE s.query = '<insufficient privilege>'))::int AS hidden,
            (SELECT stats_reset FROM ${info}) AS stats_reset,
            current_user = $3 AS same_role
       FROM ${view} s
      WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND s.toplevel
        AND (current_user = $3 OR s.userid <> (SELECT oid FROM pg_roles WHERE rolname = current_user))`,
    [ATTEMPT_QUERY_PATTERN, NOT_A_QUERY_PATTERN, appRole],
  );
  const r = rows[0]!;
  return { calls: BigInt(r.calls), totalMs: Number(r.total_ms), statsReset: r.stats_reset, sameRole: r.same_role, hidden: r.hidden, statements: r.statements };
}

/** attempt_query_count and attempt_query_mean_ms from the deltas since the previous sample. */
async function sampleStatements(deps: JobDeps, dryRun: boolean): Promise<StatementsResult> {
  let ext: { schema: string } | undefined;
  let hasState: boolean;
  let hasWriter: boolean;
  try {
    const { rows } = await deps.pool.query<{ schema: string | null; has_state: boolean; has_writer: boolean }>(
      `SELECT (SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
                WHERE e.extname = 'pg_stat_statements') AS schema,
              to_regclass($1) IS NOT NULL AS has_state, to_regprocedure($2) IS NOT NULL AS has_writer`,
      [METRIC_STATE, AUDIT_FUNCTIONS.metricStatePut],
    );
    ext = rows[0]?.schema ? { schema: rows[0].schema } : undefined;
    hasState = rows[0]?.has_state === true;
    hasWriter = rows[0]?.has_writer === true;
  } catch (err) {
    throw classifyDbError(err, 'looking for pg_stat_statements');
  }
  if (!ext) return skippedStatements('pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)');
  if (!hasState) return skippedStatements(`${OPS_SCHEMA}.metric_state does not exist: run attempt-ops bootstrap --apply`);
  // The sample is kept through attempt_ops.metric_state_put (the monitor role may not write the table): bootstrap makes both.
  if (!hasWriter && !dryRun) return skippedStatements(`${OPS_SCHEMA}.metric_state_put does not exist: run attempt-ops bootstrap --apply`);
  const extSchema = ext.schema;

  try {
    return await inTransaction(deps.pool, { readOnly: dryRun, statementTimeoutMs: 5_000, lockTimeoutMs: 1_000 }, async (client) => {
      if (!dryRun) {
        const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1::bigint) AS locked', [SAMPLE_LOCK_KEY]);
        if (rows[0]?.locked !== true) return skippedStatements('another publish-metrics run is sampling pg_stat_statements right now');
      }
      const { rows: prevRows } = await client.query<{ calls: string; total_exec_ms: number; stats_reset: Date | null; sampled_at: Date }>(
        `SELECT calls::text AS calls, total_exec_ms, stats_reset, sampled_at FROM ${METRIC_STATE} WHERE name = $1`,
        [STATEMENTS_STATE_NAME],
      );
      const cur = await readSample(client, extSchema, deps.appRole);
      const notes: string[] = [];
      if (cur.sameRole) notes.push(`attempt-ops connects as the app role ${deps.appRole}: its own queries on attempt are counted too`);
      if (cur.hidden > 0) notes.push(`${cur.hidden} statement(s) of other roles are hidden from this role (grant pg_read_all_stats to count them)`);
      if (!dryRun) {
        await client.query(
          METRIC_STATE_PUT_SQL,
          [STATEMENTS_STATE_NAME, cur.calls.toString(), cur.totalMs, cur.statsReset, JSON.stringify({ statements: cur.statements })],
        );
      }

      const prev = prevRows[0];
      if (!prev) {
        const first = skippedStatements(`first sample of pg_stat_statements${dryRun ? '' : ' kept'}: deltas start with the next run`);
        return { ...first, notes: [...notes, ...first.notes] };
      }
      let calls = cur.calls - BigInt(prev.calls);
      let totalMs = cur.totalMs - prev.total_exec_ms;
      const reset = (prev.stats_reset?.getTime() ?? null) !== (cur.statsReset?.getTime() ?? null);
      if (reset) {
        // Counters restarted: what they hold now is what ran since the reset, a lower bound.
        calls = cur.calls;
        totalMs = cur.totalMs;
        notes.push('pg_stat_statements was reset since the previous sample: counted from the reset');
      } else if (calls < 0n || totalMs < 0) {
        // Entries evicted (pg_stat_statements.max) took their counts with them: no honest delta.
        const evicted = skippedStatements('statements were evicted from pg_stat_statements since the previous sample (raise pg_stat_statements.max)');
        return { ...evicted, notes: [...notes, ...evicted.notes] };
      }
      const count = Number(calls);
      const since = `since ${prev.sampled_at.toISOString()}`;
      const metrics = [datum('attempt_query_count', count, deps.target)];
      const actions: ActionReport[] = [{ object: 'attempt_query_count', action: 'collect', outcome: 'done', message: `${count} queries on attempt ${since}` }];
      if (count > 0) {
        const mean = Math.round((totalMs / count) * 1000) / 1000;
        metrics.push(datum('attempt_query_mean_ms', mean, deps.target));
        actions.push({ object: 'attempt_query_mean_ms', action: 'collect', outcome: 'done', message: `mean ${mean} ms over ${count} queries ${since}` });
      } else {
        actions.push({ object: 'attempt_query_mean_ms', action: 'collect', outcome: 'skipped', message: `no query on attempt ${since}: no mean` });
      }
      return { metrics, actions, notes };
    });
  } catch (err) {
    // Installed but not in shared_preload_libraries: the view exists and every read of it fails.
    if ((err as { code?: string }).code === '55000') return skippedStatements('pg_stat_statements is installed but not loaded (add it to shared_preload_libraries)');
    throw classifyDbError(err, 'sampling pg_stat_statements');
  }
}

export async function runPublishMetrics(deps: JobDeps, options: PublishMetricsOptions = {}): Promise<PublishMetricsReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const dryRun = options.dryRun === true;

  // dryRun here only means "do not record a health-check run": these are not the hourly checks.
  const health = await runHealthCheck(deps, { checks: PUBLISH_METRICS_CHECKS, dryRun: true, changesOnly: true });
  const statuses: Status[] = [];
  const notes: string[] = [];
  const actions: ActionReport[] = health.checks.map((c) => {
    const metric = CHECK_SPECS[c.name].metric;
    const collected = health.metrics.some((m) => m.name === metric);
    if (c.status === 'unknown') {
      statuses.push('unknown');
      notes.push(`${metric} not collected: ${c.message}`);
    }
    return { object: metric, action: 'collect', outcome: collected ? 'done' : 'skipped', message: `${c.name}: ${c.message}` };
  });

  const statements = await sampleStatements(deps, dryRun);
  return {
    version: REPORT_VERSION,
    job: 'publish-metrics',
    target: deps.target,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    // The metrics' values are for the alarms to judge; this job is only unknown when it could not measure.
    status: statuses.includes('unknown') ? 'unknown' : 'ok',
    dryRun,
    actions: [...actions, ...statements.actions],
    notes: [...notes, ...statements.notes],
    metrics: [...health.metrics, ...statements.metrics],
  };
}

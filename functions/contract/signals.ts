/**
 * One table of signals: every metric we or AWS publish, with what judges it. A signal names the
 * check that measures it, its unit, when it is sampled, its levels (a threshold per severity, and
 * the alarm that watches it there) and where the dashboard graphs it. CHECK_SPECS, METRICS,
 * THRESHOLDS, ALARM_SPECS, the dashboard and the alarm tables of the docs are all read off this
 * table, and judge() is the one verdict, so a level cannot mean one thing to the check and
 * another to its alarm or its graph.
 *
 * Adding a check is its file in functions/checks/ and one entry here, plus its name in
 * CHECK_NAMES and its object in CATALOG (docs/ARCHITECTURE.md, "Adding a check").
 * Plain data, no I/O: the CDK stack imports it too.
 */
import type { PagingTopic, TreatMissingData } from './alarms.ts';
import type { MetricUnit } from './metrics.ts';
import { ANALYZE_TABLES, CHECK_NAMES, RUNBOOK, failureStatus, type CheckName, type JobName, type RunbookAnchor, type Severity } from './vocabulary.ts';

/**
 * When a signal is sampled, which decides how fast its alarm can and should fire:
 * - `catalog`: by publish-metrics every minute, from the catalog and what our jobs recorded;
 * - `changes`: by publish-metrics every minute, over the rows the change capture logged;
 * - `live`: by publish-metrics every minute, from the live state, where one sample can be noise;
 * - `hourly`: by the hourly health check only;
 * - `job`: by a job's own run (durations, row counts, the heartbeat);
 * - `aws`: by AWS, every minute (RDS) or per invocation (Lambda).
 */
export const SIGNAL_SCOPES = ['catalog', 'changes', 'live', 'hourly', 'job', 'aws'] as const;
export type SignalScope = (typeof SIGNAL_SCOPES)[number];

/** The scopes publish-metrics samples on every run. */
export const EVERY_MINUTE_SCOPES: readonly SignalScope[] = ['catalog', 'changes', 'live'];

/**
 * A level's alarm window:
 * - `fast`: one period per publish-metrics run, one breaching datapoint (P0/P1 facts);
 * - `live`: one period per publish-metrics run, 2 breaching datapoints of 3 (noisy samples);
 * - `sample`: one five-minute period, one datapoint (a sample published once an hour or so);
 * - or the window spelled out.
 * Without one, windowFor() picks it from the scope and the severity.
 */
export type SignalWindow =
  | 'fast'
  | 'live'
  | 'sample'
  | {
      readonly period: number | 'schedule';
      readonly evaluationPeriods: number;
      readonly datapointsToAlarm: number;
      readonly spanAtLeastSeconds?: number;
      readonly holdForSchedule?: boolean;
    };

/** The alarm of one level; what it leaves out follows from the signal (alarmSpecOf() in alarms.ts). */
export interface LevelAlarm {
  /** Stable kebab-case id: part of the alarm name, so renaming it replaces the alarm. */
  readonly id: string;
  /** The contract's name for the alarm. */
  readonly title: string;
  readonly window?: SignalWindow;
  /** @default Maximum (Minimum for a `less` level), or the signal's statistic */
  readonly statistic?: 'Average' | 'Maximum' | 'Minimum' | 'Sum' | 'SampleCount';
  /** @default ignore (`missing` for AWS/RDS) */
  readonly treatMissingData?: TreatMissingData;
  /** Count an empty period as this value once the metric has data (armedFillExpression()). */
  readonly fillMissingWith?: number;
  /** Heartbeats: publish-metrics' own ("monitoring blind") or each other scheduled job's. */
  readonly jobs?: 'publish-metrics' | 'other-scheduled';
  /** The contract's "fires when" in words, where firesWhen() cannot say it from the level. */
  readonly firesWhen?: string;
  /** Off unless the deployment config turns it on. */
  readonly optional?: boolean;
  /**
   * The dashboard's threshold line, after the severity: `{threshold}` is the threshold and
   * `{percent}` the threshold of a ratio in percent. No line when absent.
   */
  readonly annotation?: string;
}

export interface SignalLevel {
  readonly severity: Severity;
  readonly threshold: number;
  /** Fails when value > threshold, < threshold, or <= threshold. */
  readonly comparison: 'greater' | 'less' | 'atMost';
  /** The THRESHOLDS key of this level, where code outside the table needs the number. */
  readonly name?: string;
  readonly alarm?: LevelAlarm;
}

/** Where the dashboard graphs a signal: a graph of DASHBOARD_GRAPHS, its place and its legend. */
export interface SignalGraph {
  readonly graph: DashboardGraphId;
  /** Position of the line in its graph. */
  readonly line: number;
  /** Added to the metric name in the legend. */
  readonly label?: string;
}

export interface SignalSpec {
  readonly metric: string;
  /** An AWS metric; absent for ours (namespace AttemptView, dimension Database). */
  readonly source?: 'rds' | 'lambda';
  readonly unit: MetricUnit | 'Percent';
  readonly description: string;
  /** The check whose value this is: its report's value, threshold and status. */
  readonly check?: { readonly name: CheckName; readonly summary: string };
  /** A check that publishes this besides its own value. */
  readonly alsoFrom?: CheckName;
  readonly scope: SignalScope;
  /** The job whose run measures the value, where the scope's job only republishes it (the refresh's verification). */
  readonly measuredBy?: JobName;
  readonly runbook?: RunbookAnchor;
  /** One series per table (dimension Table), and one alarm per table. */
  readonly perTable?: readonly string[];
  /** A fraction from 0 to 1, which the docs show in percent too. */
  readonly ratio?: boolean;
  /** The statistic of AWS's own series (the dashboard and the alarm). */
  readonly statistic?: 'Average';
  /** Most severe first: judge() reports the first level the value breaches. */
  readonly levels?: readonly SignalLevel[];
  readonly dashboard?: SignalGraph;
}

/** The graphs of the dashboard, row by row, each as wide as CloudWatch's 24 columns allow. */
export const DASHBOARD_GRAPHS = [
  { id: 'latency', title: 'p99 latency of the runbook query (ms)', width: 12, row: 1 },
  { id: 'connections', title: 'Connections', width: 6, row: 1 },
  { id: 'cpu', title: 'CPU (%)', width: 6, row: 1 },
  { id: 'data-quality', title: 'Data quality (rows)', width: 12, row: 2 },
  { id: 'mv-staleness', title: 'attempt_mv staleness (s)', width: 6, row: 2 },
  { id: 'mv-fidelity', title: 'attempt_mv fidelity and capture', width: 6, row: 2 },
  // The live signals of the sessions on the watched relations, as publish-metrics samples them.
  { id: 'sessions', title: 'Sessions on the watched relations', width: 12, row: 3 },
  { id: 'table-stats', title: 'Table statistics (ratio)', width: 12, row: 3 },
] as const;
export type DashboardGraphId = (typeof DASHBOARD_GRAPHS)[number]['id'];

/** What a check counts before a row or session is a finding: settings of the checks, not levels. */
export const CHECK_LIMITS = {
  /**
   * Our choice, as autovacuum's analyze and vacuum thresholds: the modified and dead-tuple ratios
   * are taken over at least this many rows, so a tiny table warns only past 200 modified rows or
   * 100 dead tuples, not on a handful.
   */
  modifiedRatioMinRows: 1000,
  /** Our choice: a lock wait this long on the view's relations is an incident. */
  blockedWaitSeconds: 30,
  /** Our choice: a transaction left idle this long while holding a lock on a watched relation. */
  idleInTransactionSeconds: 60,
  /** Runbook section 3: queries on attempt active longer than 5 minutes. */
  longRunningSeconds: 5 * 60,
  /** The runbook's p99 baseline; the warning level is twice it. */
  latencyBaselineMs: 200,
  /** Runbook "Monitoring & Alerts": CPUUtilization > 80 % "for 5 min". */
  cpuMinutes: 5,
} as const;

/** Runbook "Monitoring & Alerts": DatabaseConnections > 100 (baseline 50), as we count them and as RDS does. */
const MAX_CONNECTIONS = 100;

/** How long "view missing" tolerates silence (CONTRACT section 6): ten missed publish-metrics runs. */
export const VIEW_MISSING_SILENCE_SECONDS = 10 * 60;

/** How long publish-metrics may fail or be silent before "monitoring blind" pages. */
export const MONITORING_BLIND_SECONDS = 5 * 60;

const MINUTE = 60;

/**
 * In the order of CONTRACT.md section 6's alarms (the docs' tables follow it), then the signals
 * no check owns.
 */
export const SIGNALS = [
  {
    metric: 'attempt_view_exists', unit: 'Count', description: '1 when the attempt view exists, else 0',
    check: { name: 'view_exists', summary: 'the attempt view exists' }, scope: 'catalog', runbook: RUNBOOK.viewMissing,
    levels: [{
      severity: 'P0', threshold: 1, comparison: 'less', name: 'viewExists',
      // A ten-minute Minimum: any 0 sample fires at once, and ten minutes without a sample breach
      // too once the metric has had its first datapoint (armedFillExpression).
      alarm: {
        id: 'view-missing', title: 'view missing', fillMissingWith: 0,
        window: { period: VIEW_MISSING_SILENCE_SECONDS, evaluationPeriods: 1, datapointsToAlarm: 1 },
      },
    }],
  },
  {
    metric: 'attempt_view_schema_drift', unit: 'Count', description: 'columns that differ from the V1 lock',
    check: { name: 'view_schema', summary: 'the view matches the V1 schema lock' }, scope: 'catalog', runbook: RUNBOOK.viewMissing,
    levels: [{ severity: 'P0', threshold: 0, comparison: 'greater', name: 'schemaDrift', alarm: { id: 'schema-drift', title: 'schema drift' } }],
  },
  {
    metric: 'attempt_poison_rows', unit: 'Count', description: 'source rows that make every query of the view fail',
    check: { name: 'view_queryable', summary: 'no source row makes the view fail' }, scope: 'changes', runbook: RUNBOOK.dataQuality,
    levels: [{ severity: 'P0', threshold: 0, comparison: 'greater', name: 'poisonRows', alarm: { id: 'view-broken', title: 'view broken' } }],
    dashboard: { graph: 'data-quality', line: 1 },
  },
  {
    metric: 'attempt_query_p99_latency', unit: 'Milliseconds', description: "p99 of runbook section 3's query",
    check: { name: 'query_latency', summary: "section 3's query is fast" }, scope: 'live', runbook: RUNBOOK.slowQueries,
    levels: [
      // Runbook section 3: p99 > 2000 ms is critical.
      { severity: 'P1', threshold: 2000, comparison: 'greater', name: 'latencyCriticalMs', alarm: { id: 'p99-latency', title: 'p99 latency', annotation: '{threshold} ms' } },
      // Twice the runbook's 200 ms baseline: degraded, not yet down.
      { severity: 'P2', threshold: 2 * CHECK_LIMITS.latencyBaselineMs, comparison: 'greater', name: 'latencyWarningMs', alarm: { id: 'latency-degraded', title: 'latency degraded', annotation: '{threshold} ms' } },
    ],
    dashboard: { graph: 'latency', line: 1 },
  },
  {
    metric: 'DatabaseConnections', source: 'rds', unit: 'Count', description: 'client connections, as RDS counts them',
    scope: 'aws', runbook: RUNBOOK.monitoring,
    // The runbook means the average: a Sum over the period would multiply it by the sample count.
    statistic: 'Average',
    levels: [{
      severity: 'P1', threshold: MAX_CONNECTIONS, comparison: 'greater',
      // A live signal, at RDS's own one-minute resolution: 2 of 3 one-minute averages.
      alarm: { id: 'connections', title: 'connections', window: { period: MINUTE, evaluationPeriods: 3, datapointsToAlarm: 2 }, annotation: '> {threshold}' },
    }],
    dashboard: { graph: 'connections', line: 1 },
  },
  {
    metric: 'CPUUtilization', source: 'rds', unit: 'Percent', description: 'CPU of the database instance',
    scope: 'aws', runbook: RUNBOOK.monitoring, statistic: 'Average',
    levels: [{
      // Runbook "Monitoring & Alerts": CPUUtilization > 80 % for 5 min.
      severity: 'P1', threshold: 80, comparison: 'greater', name: 'cpuPercent',
      // "for 5 min": five consecutive one-minute datapoints, not one five-minute average.
      alarm: {
        id: 'cpu', title: 'CPU', annotation: `> {threshold} % for ${CHECK_LIMITS.cpuMinutes} min`,
        window: { period: MINUTE, evaluationPeriods: CHECK_LIMITS.cpuMinutes, datapointsToAlarm: CHECK_LIMITS.cpuMinutes },
      },
    }],
    dashboard: { graph: 'cpu', line: 1 },
  },
  {
    metric: 'attempt_permission_missing', unit: 'Count', description: 'SELECT grants the app role lacks',
    check: { name: 'permissions', summary: 'the app role may SELECT what it needs' }, scope: 'catalog', runbook: RUNBOOK.permissionDenied,
    levels: [{ severity: 'P1', threshold: 0, comparison: 'greater', name: 'permissionMissing', alarm: { id: 'permissions', title: 'permissions' } }],
  },
  {
    metric: 'attempt_null_required_fields', unit: 'Count', description: 'view rows with a NULL required field',
    check: { name: 'required_nulls', summary: 'no NULL in a required column' }, scope: 'changes', runbook: RUNBOOK.dataQuality,
    levels: [{ severity: 'P1', threshold: 0, comparison: 'greater', name: 'nullRequiredFields', alarm: { id: 'nulls', title: 'NULLs' } }],
    dashboard: { graph: 'data-quality', line: 2 },
  },
  {
    metric: 'attempt_orphan_results', unit: 'Count', description: 'results whose questionId has no question',
    check: { name: 'orphan_results', summary: 'every questionId has a question' }, scope: 'changes', runbook: RUNBOOK.dataQuality,
    levels: [{ severity: 'P1', threshold: 0, comparison: 'greater', name: 'orphanResults', alarm: { id: 'orphans', title: 'orphans' } }],
    dashboard: { graph: 'data-quality', line: 3 },
  },
  {
    metric: 'blocked_queries', unit: 'Count', description: 'sessions waiting > 30 s for a lock on the watched relations',
    check: { name: 'blocking', summary: 'no query waits long on a lock' }, scope: 'live', runbook: RUNBOOK.slowQueries,
    levels: [{ severity: 'P1', threshold: 0, comparison: 'greater', name: 'blockedQueries', alarm: { id: 'blocked', title: 'blocked' } }],
    dashboard: { graph: 'sessions', line: 1, label: `(waiting > ${CHECK_LIMITS.blockedWaitSeconds} s)` },
  },
  {
    metric: 'attempt_duplicate_ids', unit: 'Count', description: 'surplus rows sharing an attempt id',
    check: { name: 'duplicate_ids', summary: 'attempt ids are unique' }, scope: 'hourly', runbook: RUNBOOK.determinism,
    levels: [{ severity: 'P2', threshold: 0, comparison: 'greater', name: 'duplicateIds', alarm: { id: 'duplicates', title: 'duplicates' } }],
    dashboard: { graph: 'data-quality', line: 4 },
  },
  {
    metric: 'table_stats_age_hours', unit: 'None', description: 'hours since the last (auto)analyze',
    check: { name: 'table_stats', summary: 'statistics are fresh and tables are not bloated' }, scope: 'hourly', runbook: RUNBOOK.slowQueries,
    perTable: ANALYZE_TABLES,
    // Runbook section 3: "last_analyze is old (> 7 days)".
    levels: [{ severity: 'P2', threshold: 7 * 24, comparison: 'greater', name: 'statsAgeHours', alarm: { id: 'stale-statistics', title: 'stale statistics' } }],
  },
  {
    metric: 'table_dead_tuple_ratio', unit: 'None', description: 'dead / (live + dead) tuples, over at least 1,000 tuples, 0 to 1',
    alsoFrom: 'table_stats', scope: 'hourly', runbook: RUNBOOK.slowQueries, perTable: ANALYZE_TABLES, ratio: true,
    // Runbook section 3: "n_dead_tup high (> 10%)", as a ratio.
    levels: [{
      severity: 'P2', threshold: 0.1, comparison: 'greater', name: 'deadTupleRatio',
      alarm: { id: 'dead-tuples', title: 'dead tuples', annotation: 'dead tuples > {percent} %' },
    }],
    dashboard: { graph: 'table-stats', line: 2 },
  },
  {
    metric: 'attempt_mv_staleness_seconds', unit: 'Seconds', description: 'seconds since the last successful refresh',
    check: { name: 'mv_staleness', summary: 'attempt_mv is refreshed' }, scope: 'catalog', runbook: RUNBOOK.mvRefresh,
    // The runbook refreshes attempt_mv hourly; two missed refreshes is stale.
    levels: [{ severity: 'P2', threshold: 2 * 3600, comparison: 'greater', name: 'mvStalenessSeconds', alarm: { id: 'mv-stale', title: 'MV stale', annotation: '> {threshold} s' } }],
    dashboard: { graph: 'mv-staleness', line: 1 },
  },
  {
    metric: 'long_running_queries', unit: 'Count', description: 'queries on attempt running > 5 min',
    check: { name: 'long_running', summary: 'no query on attempt runs > 5 min' }, scope: 'live', runbook: RUNBOOK.slowQueries,
    levels: [{ severity: 'P2', threshold: 0, comparison: 'greater', name: 'longRunningQueries', alarm: { id: 'long-running', title: 'long running' } }],
    dashboard: { graph: 'sessions', line: 3, label: `(> ${CHECK_LIMITS.longRunningSeconds / 60} min)` },
  },
  {
    metric: 'attempt_latest_age_seconds', unit: 'Seconds', description: 'age of the newest completed_at',
    check: { name: 'freshness', summary: 'recent results arrive' }, scope: 'hourly', runbook: RUNBOOK.viewHealth,
    // Our choice: a day without a new result is worth a look, not a page.
    levels: [{ severity: 'P3', threshold: 24 * 3600, comparison: 'greater', name: 'latestAgeSeconds', alarm: { id: 'no-fresh-data', title: 'no fresh data' } }],
  },
  {
    metric: 'attempt_capture_problems', unit: 'Count', description: 'reasons the change capture cannot be trusted (missing, disabled, a table not covered, DDL)',
    check: { name: 'capture', summary: 'the change capture sees every write' }, scope: 'catalog', runbook: RUNBOOK.mvRefresh,
    // Any reason not to trust the change capture is a P1: the copy may silently diverge.
    levels: [{ severity: 'P1', threshold: 0, comparison: 'greater', name: 'captureProblems', alarm: { id: 'capture', title: 'capture' } }],
    dashboard: { graph: 'mv-fidelity', line: 2 },
  },
  {
    metric: 'attempt_mv_divergent_rows', unit: 'Count', description: 'sampled attempt_mv rows that differ from the view (ties as multisets)',
    check: { name: 'mv_fidelity', summary: 'attempt_mv equals the view' }, scope: 'catalog', measuredBy: 'refresh-mv', runbook: RUNBOOK.mvRefresh,
    levels: [{ severity: 'P1', threshold: 0, comparison: 'greater', name: 'mvDivergentRows', alarm: { id: 'copy-differs', title: 'copy differs' } }],
    dashboard: { graph: 'mv-fidelity', line: 1, label: '(rows)' },
  },
  {
    metric: 'attempt_no_tie_groups', unit: 'Count', description: '(student, item) pairs with rows sharing a completed_at: attempt_no not fixed',
    check: { name: 'attempt_no_ties', summary: 'attempt_no is determined by the view' }, scope: 'hourly', runbook: RUNBOOK.determinism,
    levels: [{ severity: 'P2', threshold: 0, comparison: 'greater', name: 'noTieGroups', alarm: { id: 'ties', title: 'ties' } }],
    dashboard: { graph: 'data-quality', line: 5, label: '(pairs)' },
  },
  {
    metric: 'idle_in_transaction_sessions', unit: 'Count', description: 'sessions idle in a transaction > 60 s holding a lock on a watched relation',
    check: { name: 'idle_in_transaction', summary: 'no transaction sits idle holding locks' }, scope: 'live', runbook: RUNBOOK.slowQueries,
    // A live signal: one sample can be a transaction about to commit.
    levels: [{ severity: 'P2', threshold: 0, comparison: 'greater', name: 'idleInTransactionSessions', alarm: { id: 'idle-in-transaction', title: 'idle in transaction' } }],
    dashboard: { graph: 'sessions', line: 2, label: `(idle > ${CHECK_LIMITS.idleInTransactionSeconds} s holding locks)` },
  },
  {
    metric: 'table_modified_ratio', unit: 'None', description: 'rows modified since the last (auto)analyze / live rows, 0 and up',
    alsoFrom: 'table_stats', scope: 'hourly', runbook: RUNBOOK.slowQueries, perTable: ANALYZE_TABLES, ratio: true,
    // Our choice: rows modified since the last (auto)analyze over 20 % of the live rows.
    levels: [{
      severity: 'P2', threshold: 0.2, comparison: 'greater', name: 'modifiedRatio',
      alarm: { id: 'analyze-due', title: 'analyze due', annotation: 'analyze due > {percent} % modified' },
    }],
    dashboard: { graph: 'table-stats', line: 1 },
  },
  {
    metric: 'attempt_query_count', unit: 'Count', description: 'queries on attempt since the previous sample (pg_stat_statements)',
    scope: 'live', runbook: RUNBOOK.monitoring,
    levels: [{
      severity: 'P0', threshold: 0, comparison: 'atMost',
      alarm: {
        id: 'no-queries', title: 'no queries', statistic: 'Sum', window: { period: 3600, evaluationPeriods: 1, datapointsToAlarm: 1 },
        // An hour without samples is publish-metrics being silent, which "monitoring blind" reports.
        treatMissingData: 'notBreaching', firesWhen: 'attempt_query_count = 0 for 1 h',
        // A quiet night is not an outage: only teams with steady traffic turn this on.
        optional: true,
      },
    }],
  },
  {
    metric: 'Errors', source: 'lambda', unit: 'Count', description: "a function's failed invocations",
    scope: 'aws', runbook: RUNBOOK.monitoring,
    levels: [{
      severity: 'P2', threshold: 0, comparison: 'greater',
      // Lambda reports Errors only for periods with invocations, and ops and bootstrap are invoked
      // by hand, so missing data is not breaching: the alarm returns to OK without a new invoke. A
      // scheduled function's window spans one schedule interval (holdForSchedule), so failing on
      // every run is one incident; the heartbeat pages the same failure at P1.
      alarm: {
        id: 'job-failed', title: 'job failed', statistic: 'Sum', treatMissingData: 'notBreaching',
        window: { period: 5 * MINUTE, evaluationPeriods: 1, datapointsToAlarm: 1, holdForSchedule: true },
        firesWhen: 'Errors > 0; returns to OK without a new invoke',
      },
    }],
  },
  {
    metric: 'job_success', unit: 'Count', description: '1 when a job run succeeded, 0 when it failed (dimension Job)',
    scope: 'job', runbook: RUNBOOK.monitoring,
    // Minimum, so a 0 in a period breaches (SampleCount counted it as alive), and an empty period
    // breaches too, but only once the job has published at all: the first runs started at deploy
    // arm the alarm instead of racing it.
    levels: [
      {
        severity: 'P1', threshold: 1, comparison: 'less',
        // One period per run, all breaching, spanning at least 5 minutes: 5 of 5 at one run a minute.
        alarm: {
          id: 'monitoring-blind', title: 'monitoring blind', jobs: 'publish-metrics', fillMissingWith: 0,
          window: { period: 'schedule', evaluationPeriods: 2, datapointsToAlarm: 2, spanAtLeastSeconds: MONITORING_BLIND_SECONDS },
          firesWhen: "publish-metrics' job_success < 1 or missing for 5 consecutive minutes",
        },
      },
      {
        severity: 'P1', threshold: 1, comparison: 'less',
        // One period per run: two runs in a row that failed or did not report.
        alarm: {
          id: 'job-failing-or-silent', title: 'job failing or silent', jobs: 'other-scheduled', fillMissingWith: 0,
          window: { period: 'schedule', evaluationPeriods: 2, datapointsToAlarm: 2 },
          firesWhen: 'job_success < 1 or missing for 2 consecutive runs (periods of its schedule rate)',
        },
      },
    ],
  },
  {
    metric: 'database_connections', unit: 'Count', description: 'client connections',
    check: { name: 'connections', summary: 'connections stay under the limit' }, scope: 'live', runbook: RUNBOOK.monitoring,
    // RDS's own count has the alarm; this one says which sessions they are.
    levels: [{ severity: 'P1', threshold: MAX_CONNECTIONS, comparison: 'greater', name: 'connections' }],
    dashboard: { graph: 'connections', line: 2, label: '(pg_stat_activity)' },
  },
  {
    metric: 'attempt_row_count', unit: 'Count', description: 'rows in the view (an estimate in incremental scope)',
    alsoFrom: 'freshness', scope: 'hourly',
  },
  { metric: 'attempt_query_mean_ms', unit: 'Milliseconds', description: 'mean execution time of those queries', scope: 'live' },
  { metric: 'analyze_duration_ms', unit: 'Milliseconds', description: 'ANALYZE duration', scope: 'job', perTable: ANALYZE_TABLES },
  { metric: 'attempt_mv_refresh_duration_ms', unit: 'Milliseconds', description: 'attempt_mv refresh duration', scope: 'job' },
  { metric: 'attempt_mv_row_count', unit: 'Count', description: 'rows in attempt_mv after a refresh', scope: 'job' },
] as const satisfies readonly SignalSpec[];

type Signal = (typeof SIGNALS)[number];
/** The metrics of our namespace, every one of them published by a job. */
export type MetricName = Exclude<Signal, { source: string }>['metric'];
type NamedLevel = Extract<Extract<Signal, { levels: unknown }>['levels'][number], { name: string }>;
export type ThresholdName = NamedLevel['name'];

/** The signal that carries a check's value. */
export function signalOf(check: CheckName): SignalSpec {
  const found = (SIGNALS as readonly SignalSpec[]).find((s) => s.check?.name === check);
  if (!found) throw new Error(`no signal carries the value of check ${check}`);
  return found;
}

/** The checks publish-metrics runs on every run: those whose signal is sampled every minute. */
export const EVERY_MINUTE_CHECKS: readonly CheckName[] = CHECK_NAMES.filter((name) => EVERY_MINUTE_SCOPES.includes(signalOf(name).scope));

/** Does this value fail this level? */
export function breaches(level: Pick<SignalLevel, 'threshold' | 'comparison'>, value: number): boolean {
  switch (level.comparison) {
    case 'greater':
      return value > level.threshold;
    case 'less':
      return value < level.threshold;
    case 'atMost':
      return value <= level.threshold;
  }
}

/**
 * The verdict on a value: the status of the most severe level it breaches (P0/P1 critical, P2/P3
 * warning, as failureStatus() says), else ok. A check's spec carries its signal's levels, so the
 * health check, the diagnosis and the alarms judge by the same numbers.
 */
export function judge(subject: { readonly levels?: readonly Pick<SignalLevel, 'severity' | 'threshold' | 'comparison'>[] }, value: number): 'ok' | 'warning' | 'critical' {
  const failed = (subject.levels ?? []).find((level) => breaches(level, value));
  return failed ? failureStatus(failed.severity) : 'ok';
}

/** Every level of the table, with the signal it belongs to, in table order. */
export function allLevels(): { signal: SignalSpec; level: SignalLevel }[] {
  return (SIGNALS as readonly SignalSpec[]).flatMap((signal) => (signal.levels ?? []).map((level) => ({ signal, level })));
}

/** Thresholds by name, for the code that needs one number of a level (a probe's timeout, a test). */
export const LEVEL_THRESHOLDS = Object.fromEntries(
  allLevels().flatMap(({ level }) => (level.name ? [[level.name, level.threshold]] : [])),
) as Readonly<Record<ThresholdName, number>>;

/** The window a level's alarm gets when the table names none: fast facts, noisy live samples, hourly samples. */
export function windowFor(signal: Pick<SignalSpec, 'scope'>, level: Pick<SignalLevel, 'severity'>, alarm: Pick<LevelAlarm, 'window'>): SignalWindow {
  if (alarm.window) return alarm.window;
  if (signal.scope === 'live') return 'live';
  const everyMinute = EVERY_MINUTE_SCOPES.includes(signal.scope);
  return everyMinute && (level.severity === 'P0' || level.severity === 'P1') ? 'fast' : 'sample';
}

/** The colour of a threshold line: red where it pages at high urgency, orange at low, blue for info. */
export const TOPIC_COLOURS: Readonly<Record<PagingTopic, string>> = { critical: '#d13212', warning: '#ff9900', info: '#1f77b4' };

/** The dashboard label of a level's threshold line, if it has one. */
export function annotationLabel(level: SignalLevel): string | undefined {
  const text = level.alarm?.annotation;
  if (text === undefined) return undefined;
  return `${level.severity} ${text.replaceAll('{threshold}', String(level.threshold)).replaceAll('{percent}', String(level.threshold * 100))}`;
}

/**
 * The alarms of CONTRACT.md section 6, as plain data. The CDK stack turns each entry into a
 * CloudWatch alarm, the PagerDuty forwarder reads the severity and runbook section back out of
 * the alarm it receives, and docs/DEPLOY.md's table is checked against this list. Thresholds
 * come from THRESHOLDS and CHECK_SPECS, never retyped, so an alarm cannot drift from the check
 * that judges the same metric.
 */
import { CHECK_SPECS, THRESHOLDS } from './checks.ts';
import { DIMENSION_DATABASE, DIMENSION_JOB, DIMENSION_TABLE, type MetricName } from './metrics.ts';
import { ANALYZE_TABLES, RUNBOOK, type RunbookAnchor, type Severity } from './vocabulary.ts';

export type AlarmStatistic = 'Average' | 'Maximum' | 'Minimum' | 'Sum' | 'SampleCount';
export type AlarmComparison =
  | 'GreaterThanThreshold'
  | 'GreaterThanOrEqualToThreshold'
  | 'LessThanThreshold'
  | 'LessThanOrEqualToThreshold';
/** CloudFormation's TreatMissingData values. */
export type TreatMissingData = 'breaching' | 'notBreaching' | 'ignore' | 'missing';

/** AWS metrics an alarm may watch besides our own namespace. */
export const RDS_NAMESPACE = 'AWS/RDS';
export const LAMBDA_NAMESPACE = 'AWS/Lambda';
export type RdsMetricName = 'DatabaseConnections' | 'CPUUtilization';

/**
 * What an alarm watches:
 * - `custom`: a metric of ours with `Database` (and `Table` for each table of `perTable`);
 * - `rds`: an AWS/RDS metric of the database instance or cluster;
 * - `lambda-errors`: AWS/Lambda Errors of one function (one alarm per function);
 * - `heartbeat`: job_success with `Database` and `Job` (one alarm per scheduled job).
 */
export type AlarmSource =
  | { readonly kind: 'custom'; readonly metric: MetricName; readonly perTable?: readonly string[] }
  | { readonly kind: 'rds'; readonly metric: RdsMetricName }
  | { readonly kind: 'lambda-errors'; readonly metric: 'Errors' }
  | { readonly kind: 'heartbeat'; readonly metric: 'job_success' };

export interface AlarmSpec {
  /** Stable kebab-case id: part of the alarm name, so renaming it replaces the alarm. */
  readonly id: string;
  /** The contract's name for the alarm. */
  readonly title: string;
  readonly severity: Severity;
  readonly runbook: RunbookAnchor;
  readonly source: AlarmSource;
  readonly statistic: AlarmStatistic;
  readonly comparison: AlarmComparison;
  readonly threshold: number;
  /** Seconds; `schedule` means the period of the job's own schedule (job silent). */
  readonly period: number | 'schedule';
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly treatMissingData: TreatMissingData;
  /**
   * Count an empty period as this value (metric math FILL). CloudWatch judges missing data over
   * an evaluation range several periods long, so a plain breaching alarm notices silence late;
   * FILL makes "no data for N periods" mean exactly N periods. treatMissingData still covers a
   * metric that has never had a datapoint.
   */
  readonly fillMissingWith?: number;
  /** The contract's "fires when" column, in words, for descriptions and docs. */
  readonly firesWhen: string;
  /** Off unless the deployment config turns it on. */
  readonly optional?: boolean;
}

/** The SNS topic each severity goes to: P0/P1 page at high urgency, P2 at low, P3 never. */
export type PagingTopic = 'critical' | 'warning' | 'info';
export function topicFor(severity: Severity): PagingTopic {
  if (severity === 'P0' || severity === 'P1') return 'critical';
  return severity === 'P2' ? 'warning' : 'info';
}

const FIVE_MINUTES = 300;

/**
 * A check metric is published once per health-check run (hourly) or per publish-metrics run
 * (every minute). A five-minute Maximum catches either. Missing data keeps the current state
 * (`ignore`): between two hourly samples an alarm must neither resolve (which would close the
 * PagerDuty incident while the fault persists) nor fire (the contract says missing data breaches
 * only for "view missing" and "job silent").
 */
function checkAlarm(
  id: string,
  title: string,
  check: keyof typeof CHECK_SPECS,
  overrides: Partial<AlarmSpec> & Pick<AlarmSpec, 'firesWhen'>,
): AlarmSpec {
  const spec = CHECK_SPECS[check];
  return {
    id,
    title,
    severity: spec.severity,
    runbook: spec.runbook,
    source: { kind: 'custom', metric: spec.metric },
    statistic: spec.comparison === 'less' ? 'Minimum' : 'Maximum',
    comparison: spec.comparison === 'less' ? 'LessThanThreshold' : 'GreaterThanThreshold',
    threshold: spec.threshold,
    period: FIVE_MINUTES,
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'ignore',
    ...overrides,
  };
}

/** How long "view missing" tolerates silence: two missed hourly health checks. */
export const VIEW_MISSING_SILENCE_SECONDS = 2 * 3600;

/** The metric alarms, one entry per row of CONTRACT.md section 6 except the per-job rows. */
export const ALARM_SPECS: readonly AlarmSpec[] = [
  // A two-hour Minimum: any 0 sample fires at once, and two hours without a sample breach too.
  checkAlarm('view-missing', 'view missing', 'view_exists', {
    period: VIEW_MISSING_SILENCE_SECONDS,
    treatMissingData: 'breaching',
    fillMissingWith: 0,
    firesWhen: `attempt_view_exists < ${THRESHOLDS.viewExists}, or no data for 2 h`,
  }),
  checkAlarm('schema-drift', 'schema drift', 'view_schema', { firesWhen: `attempt_view_schema_drift > ${THRESHOLDS.schemaDrift}` }),
  checkAlarm('view-broken', 'view broken', 'view_queryable', { firesWhen: `attempt_poison_rows > ${THRESHOLDS.poisonRows}` }),
  checkAlarm('p99-latency', 'p99 latency', 'query_latency', {
    threshold: THRESHOLDS.latencyCriticalMs,
    firesWhen: `attempt_query_p99_latency > ${THRESHOLDS.latencyCriticalMs} ms`,
  }),
  checkAlarm('latency-degraded', 'latency degraded', 'query_latency', {
    severity: 'P2',
    threshold: THRESHOLDS.latencyWarningMs,
    firesWhen: `attempt_query_p99_latency > ${THRESHOLDS.latencyWarningMs} ms`,
  }),
  {
    id: 'connections',
    title: 'connections',
    severity: CHECK_SPECS.connections.severity,
    runbook: CHECK_SPECS.connections.runbook,
    source: { kind: 'rds', metric: 'DatabaseConnections' },
    // The runbook means the average: a Sum over the period would multiply it by the sample count.
    statistic: 'Average',
    comparison: 'GreaterThanThreshold',
    threshold: THRESHOLDS.connections,
    period: FIVE_MINUTES,
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    treatMissingData: 'notBreaching',
    firesWhen: `DatabaseConnections (Average) > ${THRESHOLDS.connections}`,
  },
  {
    id: 'cpu',
    title: 'CPU',
    severity: 'P1',
    runbook: RUNBOOK.monitoring,
    source: { kind: 'rds', metric: 'CPUUtilization' },
    statistic: 'Average',
    comparison: 'GreaterThanThreshold',
    threshold: THRESHOLDS.cpuPercent,
    // "for 5 min": five consecutive one-minute datapoints, not one five-minute average.
    period: 60,
    evaluationPeriods: THRESHOLDS.cpuMinutes,
    datapointsToAlarm: THRESHOLDS.cpuMinutes,
    treatMissingData: 'notBreaching',
    firesWhen: `CPUUtilization (Average) > ${THRESHOLDS.cpuPercent} % for ${THRESHOLDS.cpuMinutes} min`,
  },
  checkAlarm('permissions', 'permissions', 'permissions', { firesWhen: `attempt_permission_missing > ${THRESHOLDS.permissionMissing}` }),
  checkAlarm('nulls', 'NULLs', 'required_nulls', { firesWhen: `attempt_null_required_fields > ${THRESHOLDS.nullRequiredFields}` }),
  checkAlarm('orphans', 'orphans', 'orphan_results', { firesWhen: `attempt_orphan_results > ${THRESHOLDS.orphanResults}` }),
  checkAlarm('blocked', 'blocked', 'blocking', { firesWhen: `blocked_queries > ${THRESHOLDS.blockedQueries}` }),
  checkAlarm('duplicates', 'duplicates', 'duplicate_ids', { firesWhen: `attempt_duplicate_ids > ${THRESHOLDS.duplicateIds}` }),
  checkAlarm('stale-statistics', 'stale statistics', 'table_stats', {
    source: { kind: 'custom', metric: 'table_stats_age_hours', perTable: ANALYZE_TABLES },
    threshold: THRESHOLDS.statsAgeHours,
    firesWhen: `table_stats_age_hours > ${THRESHOLDS.statsAgeHours}`,
  }),
  checkAlarm('dead-tuples', 'dead tuples', 'table_stats', {
    source: { kind: 'custom', metric: 'table_dead_tuple_ratio', perTable: ANALYZE_TABLES },
    threshold: THRESHOLDS.deadTupleRatio,
    firesWhen: `table_dead_tuple_ratio > ${THRESHOLDS.deadTupleRatio} (${THRESHOLDS.deadTupleRatio * 100} %)`,
  }),
  checkAlarm('mv-stale', 'MV stale', 'mv_staleness', { firesWhen: `attempt_mv_staleness_seconds > ${THRESHOLDS.mvStalenessSeconds}` }),
  checkAlarm('long-running', 'long running', 'long_running', { firesWhen: `long_running_queries > ${THRESHOLDS.longRunningQueries}` }),
  checkAlarm('no-fresh-data', 'no fresh data', 'freshness', { firesWhen: `attempt_latest_age_seconds > ${THRESHOLDS.latestAgeSeconds}` }),
  checkAlarm('capture', 'capture', 'capture', { firesWhen: `attempt_capture_problems > ${THRESHOLDS.captureProblems}` }),
  checkAlarm('copy-differs', 'copy differs', 'mv_fidelity', { firesWhen: `attempt_mv_divergent_rows > ${THRESHOLDS.mvDivergentRows}` }),
  checkAlarm('ties', 'ties', 'attempt_no_ties', { firesWhen: `attempt_no_tie_groups > ${THRESHOLDS.noTieGroups}` }),
  {
    id: 'no-queries',
    title: 'no queries',
    severity: 'P0',
    runbook: RUNBOOK.monitoring,
    source: { kind: 'custom', metric: 'attempt_query_count' },
    statistic: 'Sum',
    comparison: 'LessThanOrEqualToThreshold',
    threshold: 0,
    period: 3600,
    evaluationPeriods: 1,
    datapointsToAlarm: 1,
    // An hour without samples is publish-metrics being silent, which "job silent" reports.
    treatMissingData: 'notBreaching',
    firesWhen: 'attempt_query_count = 0 for 1 h',
    // A quiet night is not an outage: only teams with steady traffic turn this on.
    optional: true,
  },
];

/** "job failed": one per function, on AWS/Lambda Errors. */
export const JOB_FAILED_ALARM: AlarmSpec = {
  id: 'job-failed',
  title: 'job failed',
  severity: 'P2',
  runbook: RUNBOOK.monitoring,
  source: { kind: 'lambda-errors', metric: 'Errors' },
  statistic: 'Sum',
  comparison: 'GreaterThanThreshold',
  threshold: 0,
  period: FIVE_MINUTES,
  evaluationPeriods: 1,
  datapointsToAlarm: 1,
  // Lambda reports Errors only for periods with invocations. Ignoring the gaps keeps a failed
  // daily job in ALARM until its next run reports Errors = 0, which resolves the incident.
  treatMissingData: 'ignore',
  firesWhen: 'Errors > 0',
};

/** "job silent": one per scheduled job, on the job_success heartbeat. */
export const JOB_SILENT_ALARM: AlarmSpec = {
  id: 'job-silent',
  title: 'job silent',
  severity: 'P1',
  runbook: RUNBOOK.monitoring,
  source: { kind: 'heartbeat', metric: 'job_success' },
  // SampleCount < 1 never holds when a datapoint exists: only missing data can breach.
  statistic: 'SampleCount',
  comparison: 'LessThanThreshold',
  threshold: 1,
  period: 'schedule',
  evaluationPeriods: 2,
  datapointsToAlarm: 2,
  treatMissingData: 'breaching',
  fillMissingWith: 0,
  firesWhen: 'job_success missing for 2 of its schedule periods',
};

/** Every alarm kind, in contract order, for docs and tests. */
export const ALL_ALARM_SPECS: readonly AlarmSpec[] = [...ALARM_SPECS, JOB_FAILED_ALARM, JOB_SILENT_ALARM];

/** The dimensions a custom or heartbeat alarm uses; RDS and Lambda dimensions come from the stack. */
export function customDimensions(target: string, extra: { table?: string; job?: string } = {}): Record<string, string> {
  return {
    [DIMENSION_DATABASE]: target,
    ...(extra.table ? { [DIMENSION_TABLE]: extra.table } : {}),
    ...(extra.job ? { [DIMENSION_JOB]: extra.job } : {}),
  };
}

/**
 * Alarm names carry the severity, so whoever receives the alarm (the PagerDuty forwarder, an
 * email reader) knows it without a lookup: `attempt-ops-<target>-<P0..P3>-<id>[-<qualifier>]`.
 */
export function alarmName(target: string, spec: Pick<AlarmSpec, 'id' | 'severity'>, qualifier?: string): string {
  return `attempt-ops-${target}-${spec.severity}-${spec.id}${qualifier ? `-${qualifier}` : ''}`;
}

const DESCRIPTION_SEVERITY = /^\[(P[0-3])\]/;

/** The severity an alarm was given: from its description, which we write, else from its name. */
export function alarmSeverity(name: string, description?: string | null): Severity | undefined {
  const fromDescription = description ? DESCRIPTION_SEVERITY.exec(description)?.[1] : undefined;
  if (fromDescription) return fromDescription as Severity;
  // Matched from the end with the known ids, so a target name that contains "-P1-" cannot fool it.
  const ids = ALL_ALARM_SPECS.map((s) => s.id.replace(/[-]/g, '\\-')).join('|');
  const m = new RegExp(`^attempt-ops-.+-(P[0-3])-(?:${ids})(?:-[A-Za-z0-9_-]+)?$`).exec(name);
  return m?.[1] as Severity | undefined;
}

/**
 * The description CloudWatch shows and SNS forwards: severity, what fired, on which database,
 * and the runbook section (the anchor appended to the configured runbook URL).
 */
export function alarmDescription(
  spec: Pick<AlarmSpec, 'severity' | 'title' | 'firesWhen' | 'runbook'>,
  options: { target: string; runbookUrl: string; qualifier?: string },
): string {
  const what = options.qualifier ? `${spec.title} (${options.qualifier})` : spec.title;
  return `[${spec.severity}] ${what} on ${options.target}: ${spec.firesWhen}. Runbook section ${spec.runbook}: ${runbookLink(options.runbookUrl, spec.runbook)}`;
}

const DESCRIPTION_RUNBOOK = /Runbook section (#[A-Za-z0-9_-]+)/;

/** The runbook anchor an alarm description names, if any. */
export function runbookAnchorOf(description: string | null | undefined): string | undefined {
  return description ? DESCRIPTION_RUNBOOK.exec(description)?.[1] : undefined;
}

/** Base URL plus anchor; a base that already ends in an anchor has it replaced. */
export function runbookLink(runbookUrl: string, anchor: string): string {
  const base = runbookUrl.split('#')[0] ?? runbookUrl;
  return `${base}${anchor}`;
}

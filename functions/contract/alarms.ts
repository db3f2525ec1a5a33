/**
 * The alarms of CONTRACT.md section 6, as plain data: one per level of SIGNALS (signals.ts) that
 * has an alarm, so an alarm's threshold, severity and runbook section are the level's, the same
 * the check judges by. The CDK stack turns each entry into a CloudWatch alarm, the PagerDuty
 * forwarder reads the severity and runbook section back out of the alarm it receives, and the
 * docs' tables are rendered from this list.
 */
import { DIMENSION_DATABASE, DIMENSION_JOB, DIMENSION_TABLE } from './metrics.ts';
import { allLevels, windowFor, type LevelAlarm, type MetricName, type SignalLevel, type SignalSpec, type SignalWindow } from './signals.ts';
import type { JobName, RunbookAnchor, Severity } from './vocabulary.ts';

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
 * - `heartbeat`: job_success with `Database` and `Job`, one alarm per scheduled job: publish-metrics
 *   ("monitoring blind") or each of the other scheduled jobs ("job failing or silent").
 */
export type AlarmSource =
  | { readonly kind: 'custom'; readonly metric: MetricName; readonly perTable?: readonly string[] }
  | { readonly kind: 'rds'; readonly metric: RdsMetricName }
  | { readonly kind: 'lambda-errors'; readonly metric: 'Errors' }
  | { readonly kind: 'heartbeat'; readonly metric: 'job_success'; readonly jobs: 'publish-metrics' | 'other-scheduled' };

/** The job whose schedule publishes the live signals (CONTRACT section 6: "live signals"). */
export const LIVE_SIGNAL_PUBLISHER = 'publish-metrics' satisfies JobName;

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
  /**
   * Seconds, or `schedule`: the schedule rate of the job that publishes the datapoints, which is
   * the alarm's own job (heartbeats) or `cadence`. alarmWindow() turns it into seconds.
   */
  readonly period: number | 'schedule';
  /** With `period: 'schedule'`: the job whose schedule rate is the period. @default the alarm's own job */
  readonly cadence?: typeof LIVE_SIGNAL_PUBLISHER;
  /**
   * With `period: 'schedule'` and every evaluated datapoint required (M = N): add periods until
   * the N periods span at least this long ("missing for 5 consecutive minutes" at any rate).
   */
  readonly spanAtLeastSeconds?: number;
  /**
   * "job failed" on a scheduled function: the window is one schedule interval long, so a job that
   * fails on every run stays in one incident instead of one per run (jobFailedWindow()).
   */
  readonly holdForSchedule?: boolean;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
  readonly treatMissingData: TreatMissingData;
  /**
   * Count an empty period as this value, once the metric has had a datapoint: the alarm watches
   * the metric math of armedFillExpression(). CloudWatch judges missing data over an evaluation
   * range several periods long, so a plain breaching alarm notices silence late; FILL makes "no
   * data for N periods" mean exactly N periods. Before the metric's first datapoint the
   * expression is empty and treatMissingData decides (these alarms use `ignore`: no page).
   */
  readonly fillMissingWith?: number;
  /** The topic INSUFFICIENT_DATA goes to (the metric never arrived, or stopped). @default none */
  readonly insufficientDataTopic?: PagingTopic;
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

const MINUTE = 60;
const FIVE_MINUTES = 300;
const HOUR = 3600;

/**
 * The metric math of an alarm with `fillMissingWith`, over the metric `id`:
 * `IF(DATAPOINT_COUNT(m) > 0, FILL(m, v))`. Why each part, by CloudWatch's documented rules
 * (AlarmThatSendsEmail "How alarm state is evaluated when data is missing", using-metric-math):
 *
 * - `FILL(m, v)` gives every period of the evaluation range a value, so N empty periods are N
 *   breaching datapoints and silence is noticed after exactly N periods, not after CloudWatch's
 *   longer evaluation range ("CloudWatch attempts to retrieve a higher number of data points than
 *   specified by Evaluation Periods").
 * - `DATAPOINT_COUNT(m)` is a scalar over the whole range the alarm retrieved. While the metric
 *   has no datapoint there (a fresh deploy before the first runs publish), `IF(S, TS)` with a
 *   false S and no third argument is documented as an empty time series. All the alarm's
 *   datapoints are then missing and treatMissingData `ignore` keeps the state: a new alarm stays
 *   in INSUFFICIENT_DATA, which has no action, so a fresh deploy cannot page, whatever FILL would
 *   make of a range with no datapoint at all.
 * - Because the evaluation range is longer than N periods, the last real datapoint is still in
 *   it when the N-th empty period after it is evaluated: silence reaches ALARM. Silence longer
 *   than the range empties the expression again and `ignore` keeps that ALARM; it resolves when a
 *   datapoint at or above the threshold arrives, never in a gap.
 * - A late datapoint can make the newest period look empty (the FILL caveat in the docs): every
 *   such alarm needs at least 2 periods in a row, so one late period never fires it.
 */
export function armedFillExpression(value: number, id = 'm'): string {
  return `IF(DATAPOINT_COUNT(${id}) > 0, FILL(${id}, ${value}))`;
}

/** Period, evaluation periods and datapoints to alarm of one deployed alarm. */
export interface AlarmWindow {
  readonly period: number;
  readonly evaluationPeriods: number;
  readonly datapointsToAlarm: number;
}

/** Schedule rates in minutes: the alarm's own job's (undefined for manual-invoke functions) and publish-metrics'. */
export interface ScheduleRates {
  readonly own?: number;
  readonly publishMetrics: number;
}

/**
 * "job failed" on a scheduled function: 1 breaching datapoint within one schedule interval plus
 * one period. Missing data is not breaching, so the alarm returns to OK one interval after the
 * last failed run without a new invoke, and a job failing on every run stays in ALARM (one
 * incident) instead of opening one per run. Periods of an hour for hourly and slower jobs keep
 * the window within CloudWatch's limits (7 days for periods of an hour or more).
 */
export function jobFailedWindow(rateMinutes: number): AlarmWindow {
  if (rateMinutes < 60) {
    return { period: FIVE_MINUTES, evaluationPeriods: Math.ceil((rateMinutes * MINUTE) / FIVE_MINUTES) + 1, datapointsToAlarm: 1 };
  }
  return { period: HOUR, evaluationPeriods: Math.ceil(rateMinutes / 60) + 1, datapointsToAlarm: 1 };
}

/** PutMetricAlarm's limits: the alarm is refused at deploy time otherwise. */
export function checkAlarmWindow(id: string, w: AlarmWindow): void {
  const problems: string[] = [];
  if (![10, 20, 30].includes(w.period) && (w.period <= 0 || w.period % 60 !== 0)) problems.push(`period ${w.period} s is not 10, 20, 30 or a multiple of 60`);
  const span = w.period * w.evaluationPeriods;
  const limit = w.period >= HOUR ? 7 * 24 * HOUR : 24 * HOUR;
  if (span > limit) problems.push(`period x evaluation periods = ${span} s exceeds ${limit} s`);
  if (w.datapointsToAlarm < 1 || w.datapointsToAlarm > w.evaluationPeriods) problems.push(`datapoints to alarm ${w.datapointsToAlarm} not within 1..${w.evaluationPeriods}`);
  if (problems.length > 0) throw new Error(`alarm ${id}: ${problems.join('; ')}`);
}

/** The window an alarm is deployed with, given the schedule rates of the target. */
export function alarmWindow(spec: AlarmSpec, rates: ScheduleRates): AlarmWindow {
  let w: AlarmWindow;
  if (spec.holdForSchedule && rates.own !== undefined) {
    w = jobFailedWindow(rates.own);
  } else if (spec.period === 'schedule') {
    const minutes = spec.cadence === LIVE_SIGNAL_PUBLISHER ? rates.publishMetrics : rates.own;
    if (minutes === undefined) throw new Error(`alarm ${spec.id} needs a schedule period`);
    const period = minutes * MINUTE;
    const consecutive = spec.datapointsToAlarm === spec.evaluationPeriods;
    const n = consecutive ? Math.max(spec.evaluationPeriods, Math.ceil((spec.spanAtLeastSeconds ?? 0) / period)) : spec.evaluationPeriods;
    w = { period, evaluationPeriods: n, datapointsToAlarm: consecutive ? n : spec.datapointsToAlarm };
  } else {
    w = { period: spec.period, evaluationPeriods: spec.evaluationPeriods, datapointsToAlarm: spec.datapointsToAlarm };
  }
  checkAlarmWindow(spec.id, w);
  return w;
}

/** "5 min", "1 h", "90 s": a duration as the docs and the alarm descriptions write it. */
export function formatDuration(seconds: number): string {
  return seconds % HOUR === 0 ? `${seconds / HOUR} h` : seconds % MINUTE === 0 ? `${seconds / MINUTE} min` : `${seconds} s`;
}

/**
 * The windows a level names (signals.ts, windowFor()). A check metric is published once per
 * health-check run (hourly) or per publish-metrics run (every minute).
 */
const WINDOWS: Record<Exclude<SignalWindow, object>, Pick<AlarmSpec, 'period' | 'cadence' | 'evaluationPeriods' | 'datapointsToAlarm'>> = {
  /**
   * The P0 and P1 facts that publish-metrics samples every minute: one period per run, one
   * breaching datapoint. They are facts of the catalog and the data, not noisy samples, and P0's
   * bound is 5 minutes: with the default rate of one minute the worst case is about 2 to 3
   * minutes (the next run's sample, then publishing and evaluation).
   */
  fast: { period: 'schedule', cadence: LIVE_SIGNAL_PUBLISHER, evaluationPeriods: 1, datapointsToAlarm: 1 },
  /**
   * A live signal (CONTRACT section 6): sampled by publish-metrics on every run, where one sample
   * can be noise (a lock wait that just ended, one slow run of the query, a burst of sessions).
   * One period per publish-metrics run and 2 breaching datapoints of 3: one bad sample never
   * pages, two in three runs do. With the default rate of one minute the worst case from the
   * condition holding to the page is about 3 minutes (two samples, then publishing and evaluation).
   */
  live: { period: 'schedule', cadence: LIVE_SIGNAL_PUBLISHER, evaluationPeriods: 3, datapointsToAlarm: 2 },
  /** A sample of the hourly run: a five-minute Maximum catches it. */
  sample: { period: FIVE_MINUTES, evaluationPeriods: 1, datapointsToAlarm: 1 },
};

/** The operator CloudWatch compares with, and the one the docs write. */
const COMPARISONS: Record<SignalLevel['comparison'], { alarm: AlarmComparison; words: string }> = {
  greater: { alarm: 'GreaterThanThreshold', words: '>' },
  less: { alarm: 'LessThanThreshold', words: '<' },
  atMost: { alarm: 'LessThanOrEqualToThreshold', words: '<=' },
};

function sourceOf(signal: SignalSpec, alarm: LevelAlarm): AlarmSource {
  if (signal.source === 'rds') return { kind: 'rds', metric: signal.metric as RdsMetricName };
  if (signal.source === 'lambda') return { kind: 'lambda-errors', metric: 'Errors' };
  if (alarm.jobs) return { kind: 'heartbeat', metric: 'job_success', jobs: alarm.jobs };
  const metric = signal.metric as MetricName;
  return signal.perTable ? { kind: 'custom', metric, perTable: signal.perTable } : { kind: 'custom', metric };
}

/**
 * The contract's "fires when", said from the level: the metric (and AWS's statistic), the
 * comparison and the threshold in the signal's unit, then what the window adds: silence that
 * counts (fillMissingWith) or every datapoint of a span ("for 5 min").
 */
export function firesWhen(signal: SignalSpec, level: SignalLevel, spec: Pick<AlarmSpec, 'statistic' | 'period' | 'evaluationPeriods' | 'datapointsToAlarm' | 'fillMissingWith'>): string {
  if (level.alarm?.firesWhen) return level.alarm.firesWhen;
  const subject = signal.source ? `${signal.metric} (${spec.statistic})` : signal.metric;
  const t = level.threshold;
  const value = signal.unit === 'Milliseconds' ? `${t} ms` : signal.unit === 'Percent' ? `${t} %` : signal.ratio ? `${t} (${t * 100} %)` : `${t}`;
  let words = `${subject} ${COMPARISONS[level.comparison].words} ${value}`;
  if (typeof spec.period === 'number') {
    if (spec.fillMissingWith !== undefined) words += `, or no data for ${formatDuration(spec.period)}`;
    else if (spec.evaluationPeriods > 1 && spec.datapointsToAlarm === spec.evaluationPeriods) words += ` for ${formatDuration(spec.period * spec.evaluationPeriods)}`;
  }
  return words;
}

/**
 * The alarm of one level. Missing data keeps the current state (`ignore`) unless the level says
 * otherwise: between two hourly samples an alarm must neither resolve (which would close the
 * PagerDuty incident while the fault persists) nor fire. AWS/RDS metrics arrive every minute for
 * as long as the instance (or cluster) named in the config exists: `missing` lets an alarm whose
 * metric never arrives (a mistyped identifier) or stops (the instance was renamed or replaced) go
 * to INSUFFICIENT_DATA, which the dashboard shows and the info topic mails, instead of sitting in
 * OK forever as `notBreaching` did.
 */
export function alarmSpecOf(signal: SignalSpec, level: SignalLevel): AlarmSpec {
  const alarm = level.alarm;
  if (!alarm || !signal.runbook) throw new Error(`signal ${signal.metric}: a level with an alarm needs one, and a runbook section`);
  const w = windowFor(signal, level, alarm);
  const { spanAtLeastSeconds, holdForSchedule, ...window } = typeof w === 'string' ? { ...WINDOWS[w], spanAtLeastSeconds: undefined, holdForSchedule: undefined } : w;
  const rds = signal.source === 'rds';
  const spec = {
    id: alarm.id,
    title: alarm.title,
    severity: level.severity,
    runbook: signal.runbook,
    source: sourceOf(signal, alarm),
    statistic: alarm.statistic ?? signal.statistic ?? (level.comparison === 'greater' ? 'Maximum' : 'Minimum'),
    comparison: COMPARISONS[level.comparison].alarm,
    threshold: level.threshold,
    ...window,
    ...(spanAtLeastSeconds !== undefined ? { spanAtLeastSeconds } : {}),
    ...(holdForSchedule ? { holdForSchedule } : {}),
    treatMissingData: alarm.treatMissingData ?? (rds ? 'missing' : 'ignore'),
    ...(alarm.fillMissingWith !== undefined ? { fillMissingWith: alarm.fillMissingWith } : {}),
    ...(rds ? { insufficientDataTopic: 'info' as const } : {}),
    ...(alarm.optional ? { optional: true } : {}),
  } satisfies Omit<AlarmSpec, 'firesWhen'>;
  return { ...spec, firesWhen: firesWhen(signal, level, spec) };
}

/** Every alarm of the table, in table order: CONTRACT.md section 6's. */
const TABLE_ALARMS: readonly AlarmSpec[] = allLevels().flatMap(({ signal, level }) => (level.alarm ? [alarmSpecOf(signal, level)] : []));

function tableAlarm(id: string): AlarmSpec {
  const found = TABLE_ALARMS.find((s) => s.id === id);
  if (!found) throw new Error(`no level of SIGNALS has the alarm ${id}`);
  return found;
}

/** The metric alarms, one per row of CONTRACT.md section 6 except the per-job rows (Lambda Errors, heartbeats). */
export const ALARM_SPECS: readonly AlarmSpec[] = TABLE_ALARMS.filter((s) => s.source.kind === 'custom' || s.source.kind === 'rds');

/** "job failed": one per function, on AWS/Lambda Errors. */
export const JOB_FAILED_ALARM: AlarmSpec = tableAlarm('job-failed');

/** "monitoring blind": publish-metrics, whose every-minute samples all live signals depend on. */
export const MONITORING_BLIND_ALARM: AlarmSpec = tableAlarm('monitoring-blind');

/** "job failing or silent": each other scheduled job (health-check, analyze, refresh-mv). */
export const JOB_FAILING_ALARM: AlarmSpec = tableAlarm('job-failing-or-silent');

/** @deprecated The old name of the per-job heartbeat; use JOB_FAILING_ALARM (or MONITORING_BLIND_ALARM). */
export const JOB_SILENT_ALARM: AlarmSpec = JOB_FAILING_ALARM;

/** The heartbeat alarm of a scheduled job. */
export function heartbeatAlarmFor(job: JobName): AlarmSpec {
  return job === LIVE_SIGNAL_PUBLISHER ? MONITORING_BLIND_ALARM : JOB_FAILING_ALARM;
}

/** Every alarm kind, in contract order (the optional one last), for docs and tests. */
export const ALL_ALARM_SPECS: readonly AlarmSpec[] = [
  ...ALARM_SPECS.filter((s) => !s.optional),
  JOB_FAILED_ALARM,
  MONITORING_BLIND_ALARM,
  JOB_FAILING_ALARM,
  ...ALARM_SPECS.filter((s) => s.optional),
];

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

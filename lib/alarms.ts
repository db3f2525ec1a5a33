/**
 * The CloudWatch alarms of CONTRACT.md section 6, built from the contract's data
 * (functions/contract/alarms.ts): this file decides only dimensions, the schedule rates the
 * windows follow, and actions. Every alarm notifies the same topic on ALARM and on OK, so
 * PagerDuty resolves what it opened; an entry with `insufficientDataTopic` (the AWS/RDS alarms)
 * also sends INSUFFICIENT_DATA there (info: mailed, never paged).
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as sns from 'aws-cdk-lib/aws-sns';
import { Construct } from 'constructs';
import {
  ALARM_SPECS,
  alarmDescription,
  alarmName,
  alarmWindow,
  armedFillExpression,
  customDimensions,
  heartbeatAlarmFor,
  JOB_FAILED_ALARM,
  LAMBDA_NAMESPACE,
  LIVE_SIGNAL_PUBLISHER,
  RDS_NAMESPACE,
  RUNBOOK,
  type AlarmSpec,
  type AlarmWindow,
  type JobName,
  type ScheduleRates,
} from '../functions/contract/index.ts';
import type { Paging } from './paging.ts';

export interface RdsDimension {
  readonly name: 'DBInstanceIdentifier' | 'DBClusterIdentifier';
  readonly value: string;
}

export interface ScheduledJob {
  readonly job: JobName;
  /** The job's shortest schedule rate: the heartbeat's expected interval. */
  readonly periodMinutes: number;
}

export interface AttemptAlarmsProps {
  readonly target: string;
  readonly namespace: string;
  readonly runbookUrl: string;
  readonly paging: Paging;
  readonly rds: RdsDimension;
  /** Functions whose Errors each get a "job failed" alarm, keyed by name. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  /** Jobs with a schedule, each with a heartbeat alarm ("monitoring blind" or "job failing or silent"). */
  readonly scheduledJobs: readonly ScheduledJob[];
  /** The optional "no queries" alarm. @default false */
  readonly enableNoQueries?: boolean;
}

/** What add() needs of an alarm: a contract entry, or paging's own alarm, which has no contract metric. */
export type AlarmShape = Omit<AlarmSpec, 'source'>;

/** An alarm together with the contract entry it came from and the window it was deployed with. */
export interface BuiltAlarm {
  readonly spec: AlarmShape;
  readonly window: AlarmWindow;
  readonly qualifier?: string;
  readonly alarm: cloudwatch.Alarm;
}

function idOf(...parts: string[]): string {
  return parts
    .join('-')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((p) => p[0]!.toUpperCase() + p.slice(1))
    .join('');
}

/** publish-metrics runs every minute unless the target's config says otherwise. */
const DEFAULT_PUBLISH_METRICS_MINUTES = 1;

export class AttemptAlarms extends Construct {
  readonly built: BuiltAlarm[] = [];
  private readonly props: AttemptAlarmsProps;
  private readonly rates: ReadonlyMap<string, number>;

  constructor(scope: Construct, id: string, props: AttemptAlarmsProps) {
    super(scope, id);
    this.props = props;
    this.rates = new Map(props.scheduledJobs.map((j) => [j.job, j.periodMinutes]));

    for (const spec of ALARM_SPECS) {
      if (spec.optional && !props.enableNoQueries) continue;
      const source = spec.source;
      const window = this.windowOf(spec);
      if (source.kind === 'custom' && source.perTable) {
        for (const table of source.perTable) {
          this.add(spec, this.metric(spec, window, props.namespace, source.metric, customDimensions(props.target, { table })), table, [], window);
        }
      } else if (source.kind === 'custom') {
        this.add(spec, this.metric(spec, window, props.namespace, source.metric, customDimensions(props.target)), undefined, [], window);
      } else if (source.kind === 'rds') {
        this.add(spec, this.metric(spec, window, RDS_NAMESPACE, source.metric, { [props.rds.name]: props.rds.value }), undefined, [], window);
      }
    }

    for (const [name, fn] of Object.entries(props.functions)) {
      // Scheduled functions hold a failure for one schedule interval; ops and bootstrap have none.
      const window = this.windowOf(JOB_FAILED_ALARM, name);
      this.add(JOB_FAILED_ALARM, this.metric(JOB_FAILED_ALARM, window, LAMBDA_NAMESPACE, 'Errors', { FunctionName: fn.functionName }), name, [], window);
    }

    for (const { job } of props.scheduledJobs) {
      const spec = heartbeatAlarmFor(job);
      const window = this.windowOf(spec, job);
      this.add(spec, this.metric(spec, window, props.namespace, 'job_success', customDimensions(props.target, { job })), job, [], window);
    }
  }

  /** The window of one alarm: its own job's schedule (if any) and publish-metrics' rate. */
  private windowOf(spec: AlarmSpec, job?: string): AlarmWindow {
    const rates: ScheduleRates = {
      own: job === undefined ? undefined : this.rates.get(job),
      publishMetrics: this.rates.get(LIVE_SIGNAL_PUBLISHER) ?? DEFAULT_PUBLISH_METRICS_MINUTES,
    };
    return alarmWindow(spec, rates);
  }

  private metric(spec: AlarmSpec, window: AlarmWindow, namespace: string, metricName: string, dimensionsMap: Record<string, string>): cloudwatch.IMetric {
    const period = Duration.seconds(window.period);
    const metric = new cloudwatch.Metric({ namespace, metricName, dimensionsMap, statistic: spec.statistic, period });
    if (spec.fillMissingWith === undefined) return metric;
    // Empty periods count as fillMissingWith once the metric has a datapoint in the evaluation
    // range; before that the expression is empty and treatMissingData (ignore) keeps the state.
    return new cloudwatch.MathExpression({
      expression: armedFillExpression(spec.fillMissingWith, 'm'),
      usingMetrics: { m: metric },
      period,
      label: `${metricName} (${spec.statistic}, empty periods = ${spec.fillMissingWith} once it has data)`,
    });
  }

  /**
   * Create one alarm from its contract entry. `extraTopics` adds destinations beyond the
   * severity's own topic (used for paging's own failures, which must not rely on paging alone).
   */
  add(spec: AlarmShape, metric: cloudwatch.IMetric, qualifier?: string, extraTopics: readonly sns.ITopic[] = [], window?: AlarmWindow): cloudwatch.Alarm {
    const w: AlarmWindow = window ?? {
      period: typeof spec.period === 'number' ? spec.period : Number.NaN,
      evaluationPeriods: spec.evaluationPeriods,
      datapointsToAlarm: spec.datapointsToAlarm,
    };
    const alarm = new cloudwatch.Alarm(this, idOf(spec.id, qualifier ?? ''), {
      alarmName: alarmName(this.props.target, spec, qualifier),
      alarmDescription: alarmDescription(spec, { target: this.props.target, runbookUrl: this.props.runbookUrl, qualifier }),
      metric,
      threshold: spec.threshold,
      comparisonOperator: spec.comparison as cloudwatch.ComparisonOperator,
      evaluationPeriods: w.evaluationPeriods,
      datapointsToAlarm: w.datapointsToAlarm,
      treatMissingData: spec.treatMissingData as cloudwatch.TreatMissingData,
      actionsEnabled: true,
    });
    for (const topic of [this.props.paging.topicFor(spec.severity), ...extraTopics]) {
      const action = new SnsAction(topic);
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
    if (spec.insufficientDataTopic) alarm.addInsufficientDataAction(new SnsAction(this.props.paging.topics[spec.insufficientDataTopic]));
    this.built.push({ spec, window: w, qualifier, alarm });
    return alarm;
  }

  /**
   * Paging's own health: the forwarder failing (job failed, also mailed to info) and pages it
   * gave up on (a P1, on critical, so a direct PagerDuty subscription still hears of it).
   */
  addPagingAlarms(paging: Paging): void {
    if (paging.forwarder) {
      const fn = paging.forwarder.function;
      // Invoked by SNS, not by a schedule: the plain five-minute window, OK again without an invoke.
      const window = this.windowOf(JOB_FAILED_ALARM);
      const errors = this.metric(JOB_FAILED_ALARM, window, LAMBDA_NAMESPACE, 'Errors', { FunctionName: fn.functionName });
      this.add(JOB_FAILED_ALARM, errors, 'pagerduty-forwarder', [paging.topics.info], window);
    }
    if (paging.undelivered) {
      const spec: AlarmShape = {
        id: 'undelivered-pages',
        title: 'undelivered pages',
        severity: 'P1',
        runbook: RUNBOOK.monitoring,
        statistic: 'Maximum',
        comparison: 'GreaterThanThreshold',
        threshold: 0,
        period: 300,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        treatMissingData: 'notBreaching',
        firesWhen: 'an alarm could not be sent to PagerDuty after retries (see the undelivered-pages queue)',
      };
      this.add(spec, paging.undelivered.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: Duration.minutes(5) }), undefined, [paging.topics.info]);
    }
  }
}

/**
 * The CloudWatch alarms of CONTRACT.md section 6, built from the contract's data
 * (functions/contract/alarms.ts): this file decides only dimensions and actions. Every alarm
 * notifies the same topic on ALARM and on OK, so PagerDuty resolves what it opened.
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
  customDimensions,
  JOB_FAILED_ALARM,
  JOB_SILENT_ALARM,
  LAMBDA_NAMESPACE,
  RDS_NAMESPACE,
  RUNBOOK,
  type AlarmSpec,
  type JobName,
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
  /** Jobs with a schedule, each with a "job silent" alarm. */
  readonly scheduledJobs: readonly ScheduledJob[];
  /** The optional "no queries" alarm. @default false */
  readonly enableNoQueries?: boolean;
}

/** What add() needs of an alarm: a contract entry, or paging's own alarm, which has no contract metric. */
export type AlarmShape = Omit<AlarmSpec, 'source'>;

/** An alarm together with the contract entry it came from, for dashboards and tests. */
export interface BuiltAlarm {
  readonly spec: AlarmShape;
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

export class AttemptAlarms extends Construct {
  readonly built: BuiltAlarm[] = [];
  private readonly props: AttemptAlarmsProps;

  constructor(scope: Construct, id: string, props: AttemptAlarmsProps) {
    super(scope, id);
    this.props = props;

    for (const spec of ALARM_SPECS) {
      if (spec.optional && !props.enableNoQueries) continue;
      const source = spec.source;
      if (source.kind === 'custom' && source.perTable) {
        for (const table of source.perTable) {
          this.add(spec, this.metric(spec, props.namespace, source.metric, customDimensions(props.target, { table })), table);
        }
      } else if (source.kind === 'custom') {
        this.add(spec, this.metric(spec, props.namespace, source.metric, customDimensions(props.target)));
      } else if (source.kind === 'rds') {
        this.add(spec, this.metric(spec, RDS_NAMESPACE, source.metric, { [props.rds.name]: props.rds.value }));
      }
    }

    for (const [name, fn] of Object.entries(props.functions)) {
      this.add(JOB_FAILED_ALARM, this.metric(JOB_FAILED_ALARM, LAMBDA_NAMESPACE, 'Errors', { FunctionName: fn.functionName }), name);
    }

    for (const { job, periodMinutes } of props.scheduledJobs) {
      const metric = this.metric(JOB_SILENT_ALARM, props.namespace, 'job_success', customDimensions(props.target, { job }), periodMinutes * 60);
      this.add(JOB_SILENT_ALARM, metric, job);
    }
  }

  private metric(spec: AlarmSpec, namespace: string, metricName: string, dimensionsMap: Record<string, string>, periodSeconds?: number) {
    const period = periodSeconds ?? (spec.period === 'schedule' ? undefined : spec.period);
    if (period === undefined) throw new Error(`alarm ${spec.id} needs a schedule period`);
    const metric = new cloudwatch.Metric({ namespace, metricName, dimensionsMap, statistic: spec.statistic, period: Duration.seconds(period) });
    if (spec.fillMissingWith === undefined) return metric;
    return new cloudwatch.MathExpression({
      expression: `FILL(m, ${spec.fillMissingWith})`,
      usingMetrics: { m: metric },
      period: Duration.seconds(period),
      label: `${metricName} (${spec.statistic}, empty periods = ${spec.fillMissingWith})`,
    });
  }

  /**
   * Create one alarm from its contract entry. `extraTopics` adds destinations beyond the
   * severity's own topic (used for paging's own failures, which must not rely on paging alone).
   */
  add(spec: AlarmShape, metric: cloudwatch.IMetric, qualifier?: string, extraTopics: readonly sns.ITopic[] = []): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, idOf(spec.id, qualifier ?? ''), {
      alarmName: alarmName(this.props.target, spec, qualifier),
      alarmDescription: alarmDescription(spec, { target: this.props.target, runbookUrl: this.props.runbookUrl, qualifier }),
      metric,
      threshold: spec.threshold,
      comparisonOperator: spec.comparison as cloudwatch.ComparisonOperator,
      evaluationPeriods: spec.evaluationPeriods,
      datapointsToAlarm: spec.datapointsToAlarm,
      treatMissingData: spec.treatMissingData as cloudwatch.TreatMissingData,
      actionsEnabled: true,
    });
    for (const topic of [this.props.paging.topicFor(spec.severity), ...extraTopics]) {
      const action = new SnsAction(topic);
      alarm.addAlarmAction(action);
      alarm.addOkAction(action);
    }
    this.built.push({ spec, qualifier, alarm });
    return alarm;
  }

  /**
   * Paging's own health: the forwarder failing (job failed, also mailed to info) and pages it
   * gave up on (a P1, on critical, so a direct PagerDuty subscription still hears of it).
   */
  addPagingAlarms(paging: Paging): void {
    if (paging.forwarder) {
      const fn = paging.forwarder.function;
      const errors = this.metric(JOB_FAILED_ALARM, LAMBDA_NAMESPACE, 'Errors', { FunctionName: fn.functionName });
      this.add(JOB_FAILED_ALARM, errors, 'pagerduty-forwarder', [paging.topics.info]);
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

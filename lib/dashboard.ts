/**
 * One CloudWatch dashboard per database: what on-call looks at first. Its graphs, their lines and
 * their threshold lines are read off SIGNALS, like the alarms, so the graph and the page agree.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import {
  annotationLabel, customDimensions, DASHBOARD_GRAPHS, RDS_NAMESPACE, SIGNALS, TOPIC_COLOURS, topicFor,
  type DashboardGraphId, type SignalSpec,
} from '../functions/contract/index.ts';
import type { RdsDimension } from './alarms.ts';

export interface AttemptDashboardProps {
  readonly target: string;
  readonly namespace: string;
  readonly rds: RdsDimension;
  /** Functions whose duration and errors are graphed, keyed by name. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  readonly alarms: readonly cloudwatch.IAlarm[];
}

/** The signals a graph shows, in their line order. */
export function signalsOf(graph: DashboardGraphId): SignalSpec[] {
  return (SIGNALS as readonly SignalSpec[]).filter((s) => s.dashboard?.graph === graph).sort((a, b) => a.dashboard!.line - b.dashboard!.line);
}

/** The threshold lines of a graph: each level of its signals that names one. */
export function annotationsOf(graph: DashboardGraphId): cloudwatch.HorizontalAnnotation[] {
  return signalsOf(graph).flatMap((s) =>
    (s.levels ?? []).flatMap((level) => {
      const label = annotationLabel(level);
      return label === undefined ? [] : [{ value: level.threshold, label, color: TOPIC_COLOURS[topicFor(level.severity)] }];
    }),
  );
}

export class AttemptDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: AttemptDashboardProps) {
    super(scope, id);
    // Our metrics at five minutes, which holds an hourly sample and a minute's alike; AWS/RDS at its own minute.
    const line = (s: SignalSpec, table?: string): cloudwatch.Metric => {
      if (s.source === 'rds') {
        return new cloudwatch.Metric({ namespace: RDS_NAMESPACE, metricName: s.metric, dimensionsMap: { [props.rds.name]: props.rds.value }, statistic: s.statistic ?? 'Average', period: Duration.minutes(1) });
      }
      const label = table ? `${s.metric} ${table}` : s.dashboard?.label ? `${s.metric} ${s.dashboard.label}` : s.metric;
      return new cloudwatch.Metric({
        namespace: props.namespace,
        metricName: s.metric,
        dimensionsMap: customDimensions(props.target, table ? { table } : {}),
        statistic: 'Maximum',
        period: Duration.minutes(5),
        label,
      });
    };
    // A graph of per-table signals goes table by table, so each table's lines sit together.
    const lines = (graph: DashboardGraphId): cloudwatch.Metric[] => {
      const signals = signalsOf(graph);
      const tables = [...new Set(signals.flatMap((s) => s.perTable ?? []))];
      return [...signals.filter((s) => !s.perTable).map((s) => line(s)), ...tables.flatMap((t) => signals.filter((s) => s.perTable?.includes(t)).map((s) => line(s, t)))];
    };
    const fns = Object.entries(props.functions);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `attempt-ops-${props.target}`,
      defaultInterval: Duration.days(1),
    });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...props.alarms], width: 24, height: 6, sortBy: cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP }),
    );
    for (const row of [...new Set(DASHBOARD_GRAPHS.map((g) => g.row))]) {
      this.dashboard.addWidgets(
        ...DASHBOARD_GRAPHS.filter((g) => g.row === row).map((g) => {
          const annotations = annotationsOf(g.id);
          return new cloudwatch.GraphWidget({ title: g.title, left: lines(g.id), ...(annotations.length > 0 ? { leftAnnotations: annotations } : {}), width: g.width });
        }),
      );
    }
    // Per function, from the functions themselves: Duration is judged by nobody, and Errors' alarm is "job failed".
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Job duration (ms, max)',
        left: fns.map(([name, fn]) => fn.metricDuration({ statistic: 'Maximum', period: Duration.minutes(5), label: name })),
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Job errors',
        left: fns.map(([name, fn]) => fn.metricErrors({ statistic: 'Sum', period: Duration.minutes(5), label: name })),
        width: 12,
      }),
    );
  }
}

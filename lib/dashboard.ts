/**
 * One CloudWatch dashboard per database: what on-call looks at first. The threshold lines come
 * from the contract's THRESHOLDS, like the alarms, so the graph and the page agree.
 */
import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct } from 'constructs';
import { ANALYZE_TABLES, customDimensions, RDS_NAMESPACE, THRESHOLDS, type MetricName } from '../functions/contract/index.ts';
import type { RdsDimension } from './alarms.ts';

export interface AttemptDashboardProps {
  readonly target: string;
  readonly namespace: string;
  readonly rds: RdsDimension;
  /** Functions whose duration and errors are graphed, keyed by name. */
  readonly functions: Readonly<Record<string, lambda.IFunction>>;
  readonly alarms: readonly cloudwatch.IAlarm[];
}

export class AttemptDashboard extends Construct {
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: AttemptDashboardProps) {
    super(scope, id);
    const custom = (name: MetricName, statistic = 'Maximum', label: string = name) =>
      new cloudwatch.Metric({
        namespace: props.namespace,
        metricName: name,
        dimensionsMap: customDimensions(props.target),
        statistic,
        period: Duration.minutes(5),
        label,
      });
    const perTable = (name: MetricName, table: string) =>
      new cloudwatch.Metric({
        namespace: props.namespace,
        metricName: name,
        dimensionsMap: customDimensions(props.target, { table }),
        statistic: 'Maximum',
        period: Duration.minutes(5),
        label: `${name} ${table}`,
      });
    const rds = (name: string) =>
      new cloudwatch.Metric({ namespace: RDS_NAMESPACE, metricName: name, dimensionsMap: { [props.rds.name]: props.rds.value }, statistic: 'Average', period: Duration.minutes(1) });
    const fns = Object.entries(props.functions);

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `attempt-ops-${props.target}`,
      defaultInterval: Duration.days(1),
    });
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: [...props.alarms], width: 24, height: 6, sortBy: cloudwatch.AlarmStatusWidgetSortBy.STATE_UPDATED_TIMESTAMP }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'p99 latency of the runbook query (ms)',
        left: [custom('attempt_query_p99_latency')],
        leftAnnotations: [
          { value: THRESHOLDS.latencyCriticalMs, label: `P1 ${THRESHOLDS.latencyCriticalMs} ms`, color: '#d13212' },
          { value: THRESHOLDS.latencyWarningMs, label: `P2 ${THRESHOLDS.latencyWarningMs} ms`, color: '#ff9900' },
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Connections',
        left: [rds('DatabaseConnections'), custom('database_connections', 'Maximum', 'database_connections (pg_stat_activity)')],
        leftAnnotations: [{ value: THRESHOLDS.connections, label: `P1 > ${THRESHOLDS.connections}`, color: '#d13212' }],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'CPU (%)',
        left: [rds('CPUUtilization')],
        leftAnnotations: [{ value: THRESHOLDS.cpuPercent, label: `P1 > ${THRESHOLDS.cpuPercent} % for ${THRESHOLDS.cpuMinutes} min`, color: '#d13212' }],
        width: 6,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Data quality (rows)',
        left: [
          custom('attempt_poison_rows'),
          custom('attempt_null_required_fields'),
          custom('attempt_orphan_results'),
          custom('attempt_duplicate_ids'),
          custom('attempt_no_tie_groups', 'Maximum', 'attempt_no_tie_groups (pairs)'),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'attempt_mv staleness (s)',
        left: [custom('attempt_mv_staleness_seconds')],
        leftAnnotations: [{ value: THRESHOLDS.mvStalenessSeconds, label: `P2 > ${THRESHOLDS.mvStalenessSeconds} s`, color: '#ff9900' }],
        width: 6,
      }),
      new cloudwatch.GraphWidget({
        title: 'attempt_mv fidelity and capture',
        left: [
          custom('attempt_mv_divergent_rows', 'Maximum', 'attempt_mv_divergent_rows (rows)'),
          custom('attempt_capture_problems', 'Maximum', 'attempt_capture_problems'),
        ],
        width: 6,
      }),
    );
    this.dashboard.addWidgets(
      // The live signals of the sessions on the watched relations, as publish-metrics samples them.
      new cloudwatch.GraphWidget({
        title: 'Sessions on the watched relations',
        left: [
          custom('blocked_queries', 'Maximum', `blocked_queries (waiting > ${THRESHOLDS.blockedWaitSeconds} s)`),
          custom('idle_in_transaction_sessions', 'Maximum', `idle_in_transaction_sessions (idle > ${THRESHOLDS.idleInTransactionSeconds} s holding locks)`),
          custom('long_running_queries', 'Maximum', `long_running_queries (> ${THRESHOLDS.longRunningSeconds / 60} min)`),
        ],
        width: 12,
      }),
      new cloudwatch.GraphWidget({
        title: 'Table statistics (ratio)',
        left: ANALYZE_TABLES.flatMap((table) => [perTable('table_modified_ratio', table), perTable('table_dead_tuple_ratio', table)]),
        leftAnnotations: [
          { value: THRESHOLDS.modifiedRatio, label: `P2 analyze due > ${THRESHOLDS.modifiedRatio * 100} % modified`, color: '#ff9900' },
          { value: THRESHOLDS.deadTupleRatio, label: `P2 dead tuples > ${THRESHOLDS.deadTupleRatio * 100} %`, color: '#ff9900' },
        ],
        width: 12,
      }),
    );
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

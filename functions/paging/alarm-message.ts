/**
 * The two envelopes around an alarm: the SNS event Lambda receives, and the CloudWatch alarm
 * JSON inside each record's Message. Validated with zod, loosely where AWS adds fields over time
 * (unknown keys pass), strictly where we act on a value (the state, the ARN).
 */
import { z } from 'zod';

const dimension = z.object({ name: z.string(), value: z.string() });

const metricStat = z
  .object({
    Metric: z.object({ MetricName: z.string(), Namespace: z.string().optional(), Dimensions: z.array(dimension).nullish() }).loose(),
    Period: z.number().optional(),
    Stat: z.string().optional(),
  })
  .loose();

/** Single-metric alarms carry MetricName; metric-math alarms (FILL) carry Metrics instead. */
const trigger = z
  .object({
    MetricName: z.string().optional(),
    Namespace: z.string().optional(),
    Statistic: z.string().nullish(),
    ExtendedStatistic: z.string().nullish(),
    Unit: z.string().nullish(),
    Dimensions: z.array(dimension).nullish(),
    Period: z.number().optional(),
    EvaluationPeriods: z.number().optional(),
    DatapointsToAlarm: z.number().nullish(),
    ComparisonOperator: z.string().optional(),
    Threshold: z.number().optional(),
    TreatMissingData: z.string().nullish(),
    Metrics: z
      .array(z.object({ Id: z.string(), Expression: z.string().optional(), MetricStat: metricStat.optional() }).loose())
      .nullish(),
  })
  .loose();

export interface WatchedMetric {
  name: string | null;
  namespace: string | null;
  dimensions: Record<string, string>;
  statistic: string | null;
  expression: string | null;
}

/** The metric an alarm watches, whether it is a plain metric or a math expression over one. */
export function watchedMetric(alarm: CloudWatchAlarmMessage): WatchedMetric {
  const t = alarm.Trigger;
  const stat = t?.Metrics?.find((m) => m.MetricStat)?.MetricStat;
  const dims = t?.MetricName ? t.Dimensions : stat?.Metric.Dimensions;
  return {
    name: t?.MetricName ?? stat?.Metric.MetricName ?? null,
    namespace: t?.Namespace ?? stat?.Metric.Namespace ?? null,
    dimensions: Object.fromEntries((dims ?? []).map((d) => [d.name, d.value])),
    statistic: t?.Statistic ?? t?.ExtendedStatistic ?? stat?.Stat ?? null,
    expression: t?.Metrics?.find((m) => m.Expression)?.Expression ?? null,
  };
}

export const cloudWatchAlarmMessage = z
  .object({
    AlarmName: z.string().min(1),
    AlarmDescription: z.string().nullish(),
    AWSAccountId: z.string().optional(),
    NewStateValue: z.enum(['ALARM', 'OK', 'INSUFFICIENT_DATA']),
    NewStateReason: z.string().optional().default(''),
    StateChangeTime: z.string().optional(),
    Region: z.string().optional(),
    AlarmArn: z.string().regex(/^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.+$/, 'must be a CloudWatch alarm ARN'),
    OldStateValue: z.string().optional(),
    Trigger: trigger.optional(),
  })
  .loose();
export type CloudWatchAlarmMessage = z.infer<typeof cloudWatchAlarmMessage>;

export const snsEvent = z.object({
  Records: z
    .array(
      z
        .object({
          EventSource: z.literal('aws:sns'),
          Sns: z.object({ Message: z.string(), TopicArn: z.string().optional(), MessageId: z.string().optional() }).loose(),
        })
        .loose(),
    )
    .min(1),
});
export type SnsEvent = z.infer<typeof snsEvent>;

/** The first datapoint CloudWatch quotes in a state reason: "... [1234.0 (06/03/15 17:43:27)] ...". */
const REASON_VALUE = /\[([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?) \(/;

/** The value that crossed the threshold, or null when the reason quotes none (missing data). */
export function valueFromReason(reason: string): number | null {
  const m = REASON_VALUE.exec(reason);
  if (!m?.[1]) return null;
  const n = Number(m[1]);
  return Number.isFinite(n) ? n : null;
}

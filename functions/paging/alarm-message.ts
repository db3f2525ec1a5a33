/**
 * The two envelopes around an alarm: the SNS event Lambda receives, and the CloudWatch alarm
 * JSON inside each record's Message. Validated with zod, loosely where AWS adds fields over time
 * (unknown keys pass), strictly where we act on a value (the state, the ARN).
 */
import * as z from 'zod/mini';

const dimension = z.object({ name: z.string(), value: z.string() });

const metricStat = z.looseObject({
  Metric: z.looseObject({ MetricName: z.string(), Namespace: z.optional(z.string()), Dimensions: z.nullish(z.array(dimension)) }),
  Period: z.optional(z.number()),
  Stat: z.optional(z.string()),
});

/** Single-metric alarms carry MetricName; metric-math alarms (FILL) carry Metrics instead. */
const trigger = z.looseObject({
  MetricName: z.optional(z.string()),
  Namespace: z.optional(z.string()),
  Statistic: z.nullish(z.string()),
  ExtendedStatistic: z.nullish(z.string()),
  Unit: z.nullish(z.string()),
  Dimensions: z.nullish(z.array(dimension)),
  Period: z.optional(z.number()),
  EvaluationPeriods: z.optional(z.number()),
  DatapointsToAlarm: z.nullish(z.number()),
  ComparisonOperator: z.optional(z.string()),
  Threshold: z.optional(z.number()),
  TreatMissingData: z.nullish(z.string()),
  Metrics: z.nullish(z.array(z.looseObject({ Id: z.string(), Expression: z.optional(z.string()), MetricStat: z.optional(metricStat) }))),
});

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

export const cloudWatchAlarmMessage = z.looseObject({
  AlarmName: z.string().check(z.minLength(1)),
  AlarmDescription: z.nullish(z.string()),
  AWSAccountId: z.optional(z.string()),
  NewStateValue: z.enum(['ALARM', 'OK', 'INSUFFICIENT_DATA']),
  NewStateReason: z._default(z.optional(z.string()), ''),
  StateChangeTime: z.optional(z.string()),
  Region: z.optional(z.string()),
  AlarmArn: z.string().check(z.regex(/^arn:aws[a-z-]*:cloudwatch:[a-z0-9-]+:\d{12}:alarm:.+$/, 'must be a CloudWatch alarm ARN')),
  OldStateValue: z.optional(z.string()),
  Trigger: z.optional(trigger),
});
export type CloudWatchAlarmMessage = z.infer<typeof cloudWatchAlarmMessage>;

export const snsEvent = z.object({
  Records: z
    .array(
      z.looseObject({
        EventSource: z.literal('aws:sns'),
        Sns: z.looseObject({ Message: z.string(), TopicArn: z.optional(z.string()), MessageId: z.optional(z.string()) }),
      }),
    )
    .check(z.minLength(1)),
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

/**
 * A small evaluator of one synthesized AWS::CloudWatch::Alarm, after CloudWatch's documented rules
 * (CloudWatch User Guide, "Evaluating an alarm" and "How alarm state is evaluated when data is
 * missing"; using-metric-math for FILL, DATAPOINT_COUNT and IF):
 *
 * - each period's datapoint is the statistic over the samples in it; a period without samples
 *   is missing;
 * - the alarm retrieves an evaluation range longer than its evaluation periods (the guide's
 *   example: 5 datapoints for 3); we take N + 2, the shortest the guide shows;
 * - no datapoint in the range: treatMissingData decides (missing: INSUFFICIENT_DATA, ignore: keep
 *   the state, breaching: ALARM, notBreaching: OK);
 * - at least N datapoints: the N most recent existing ones are judged, missing ones ignored;
 * - fewer: every existing one is judged, and missing ones fill the rest with the treatment
 *   (breaching or not); with missing/ignore, fewer than M breaching among a non-breaching one is
 *   OK, otherwise there is not enough to decide (INSUFFICIENT_DATA, or the state kept);
 * - M breaching of the N judged is ALARM, else OK.
 *
 * Metric math is supported only in the one form the stack emits, armedFillExpression():
 * `IF(DATAPOINT_COUNT(m) > 0, FILL(m, v))` is empty while m has no datapoint in the range, and
 * otherwise m with every missing period set to v. Alarm windows slide with the evaluation time,
 * which is evaluated once a minute. Anything else throws rather than guess.
 */
export type AlarmState = 'OK' | 'ALARM' | 'INSUFFICIENT_DATA';

/** One published value: seconds since an arbitrary start, and the value. */
export interface Sample {
  readonly t: number;
  readonly v: number;
}

interface Shape {
  stat: string;
  period: number;
  fill?: number;
  n: number;
  m: number;
  breaches: (v: number) => boolean;
  treat: string;
}

const ARMED_FILL = /^IF\(DATAPOINT_COUNT\(m\) > 0, FILL\(m, (-?\d+(?:\.\d+)?)\)\)$/;

function shapeOf(alarm: any): Shape {
  let stat: string;
  let period: number;
  let fill: number | undefined;
  if (alarm.MetricName) {
    stat = alarm.Statistic;
    period = alarm.Period;
  } else {
    const expr = alarm.Metrics.find((x: any) => x.Expression);
    const metric = alarm.Metrics.find((x: any) => x.MetricStat);
    const match = ARMED_FILL.exec(expr?.Expression ?? '');
    if (!match || metric?.Id !== 'm') throw new Error(`unsupported metric math: ${expr?.Expression}`);
    fill = Number(match[1]);
    stat = metric.MetricStat.Stat;
    period = metric.MetricStat.Period;
  }
  const threshold: number = alarm.Threshold;
  const breaches = {
    GreaterThanThreshold: (v: number) => v > threshold,
    GreaterThanOrEqualToThreshold: (v: number) => v >= threshold,
    LessThanThreshold: (v: number) => v < threshold,
    LessThanOrEqualToThreshold: (v: number) => v <= threshold,
  }[alarm.ComparisonOperator as string];
  if (!breaches) throw new Error(`unsupported comparison ${alarm.ComparisonOperator}`);
  return { stat, period, fill, n: alarm.EvaluationPeriods, m: alarm.DatapointsToAlarm ?? alarm.EvaluationPeriods, breaches, treat: alarm.TreatMissingData ?? 'missing' };
}

function aggregate(stat: string, values: number[]): number | undefined {
  if (values.length === 0) return undefined;
  switch (stat) {
    case 'Minimum':
      return Math.min(...values);
    case 'Maximum':
      return Math.max(...values);
    case 'Sum':
      return values.reduce((a, b) => a + b, 0);
    case 'Average':
      return values.reduce((a, b) => a + b, 0) / values.length;
    case 'SampleCount':
      return values.length;
    default:
      throw new Error(`unsupported statistic ${stat}`);
  }
}

/** The datapoints of the evaluation range at time `at`, most recent first (undefined = missing). */
export function datapoints(alarm: any, samples: readonly Sample[], at: number): (number | undefined)[] {
  const s = shapeOf(alarm);
  const range = s.n + 2;
  const points: (number | undefined)[] = [];
  for (let i = 0; i < range; i++) {
    const end = at - i * s.period;
    const start = end - s.period;
    points.push(aggregate(s.stat, samples.filter((x) => x.t >= start && x.t < end).map((x) => x.v)));
  }
  if (s.fill === undefined) return points;
  // IF(DATAPOINT_COUNT(m) > 0, ...): empty while the range holds no datapoint of m.
  if (points.every((p) => p === undefined)) return points;
  return points.map((p) => p ?? s.fill);
}

/** The state after one evaluation at time `at`, given the state before it. */
export function evaluate(alarm: any, samples: readonly Sample[], at: number, previous: AlarmState): AlarmState {
  const s = shapeOf(alarm);
  const points = datapoints(alarm, samples, at);
  const existing = points.filter((p): p is number => p !== undefined);
  if (existing.length === 0) {
    if (s.treat === 'missing') return 'INSUFFICIENT_DATA';
    if (s.treat === 'ignore') return previous;
    return s.treat === 'breaching' ? 'ALARM' : 'OK';
  }
  if (existing.length >= s.n) return existing.slice(0, s.n).filter(s.breaches).length >= s.m ? 'ALARM' : 'OK';
  const breaching = existing.filter(s.breaches).length;
  const filler = s.n - existing.length;
  if (s.treat === 'breaching') return breaching + filler >= s.m ? 'ALARM' : 'OK';
  if (s.treat === 'notBreaching') return breaching >= s.m ? 'ALARM' : 'OK';
  if (breaching >= s.m) return 'ALARM';
  if (breaching < existing.length) return 'OK';
  return s.treat === 'missing' ? 'INSUFFICIENT_DATA' : previous;
}

/** Evaluate once a minute from `from` to `to` (seconds), starting in `initial`; the state changes. */
export function timeline(
  alarm: any,
  samples: readonly Sample[],
  from: number,
  to: number,
  initial: AlarmState = 'INSUFFICIENT_DATA',
): { at: number; state: AlarmState }[] {
  const changes: { at: number; state: AlarmState }[] = [];
  let state = initial;
  for (let at = from; at <= to; at += 60) {
    const next = evaluate(alarm, samples, at, state);
    if (next !== state) changes.push({ at, state: next });
    state = next;
  }
  return changes;
}

/** Samples every `everySeconds` from `from` (inclusive) to `to` (exclusive), all with value `v`. */
export function every(everySeconds: number, from: number, to: number, v: number): Sample[] {
  const out: Sample[] = [];
  for (let t = from; t < to; t += everySeconds) out.push({ t, v });
  return out;
}

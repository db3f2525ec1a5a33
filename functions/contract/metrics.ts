/** Metric names, units and dimensions (CONTRACT.md section 4). */
import { SIGNALS, type MetricName, type SignalSpec } from './signals.ts';

export const METRIC_UNITS = ['Count', 'Milliseconds', 'Seconds', 'None'] as const;
export type MetricUnit = (typeof METRIC_UNITS)[number];

export const DIMENSION_DATABASE = 'Database';
export const DIMENSION_TABLE = 'Table';
export const DIMENSION_JOB = 'Job';

export interface MetricSpec {
  readonly unit: MetricUnit;
  /** Dimensions besides Database (every custom metric carries Database, except job_success). */
  readonly extraDimensions?: readonly string[];
  readonly description: string;
}

/** Our namespace's metrics, as SIGNALS (signals.ts) lists them: the AWS ones are CloudWatch's. */
export const METRICS = Object.fromEntries(
  (SIGNALS as readonly SignalSpec[])
    .filter((s) => s.source === undefined)
    .map((s) => [s.metric, { unit: s.unit as MetricUnit, ...(s.perTable ? { extraDimensions: [DIMENSION_TABLE] } : {}), description: s.description }]),
) as Readonly<Record<MetricName, MetricSpec>>;

export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];

export interface MetricDatum {
  name: MetricName;
  value: number;
  unit: MetricUnit;
  dimensions: Record<string, string>;
}

export function datum(name: MetricName, value: number, target: string, extra: Record<string, string> = {}): MetricDatum {
  return { name, value, unit: METRICS[name].unit, dimensions: { [DIMENSION_DATABASE]: target, ...extra } };
}

/** The heartbeat every job publishes; alarms watch it for missing data. */
export function jobSuccessDatum(job: string, ok: boolean, target: string): MetricDatum {
  return { name: 'job_success', value: ok ? 1 : 0, unit: 'Count', dimensions: { [DIMENSION_DATABASE]: target, [DIMENSION_JOB]: job } };
}

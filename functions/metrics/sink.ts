/** Where a run's metric datums go: CloudWatch in Lambda, stdout or nowhere on a laptop. */
import type { MetricDatum } from '../contract/index.ts';

export interface PublishResult {
  /** API calls made (0 for sinks that call nothing). */
  calls: number;
  datums: number;
}

export interface MetricSink {
  readonly kind: 'none' | 'stdout' | 'cloudwatch';
  publish(data: readonly MetricDatum[]): Promise<PublishResult>;
}

export const noneSink: MetricSink = {
  kind: 'none',
  async publish(data) {
    return { calls: 0, datums: data.length };
  },
};

/** One JSON line per datum on stdout, for piping into another collector. */
export function stdoutSink(write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): MetricSink {
  return {
    kind: 'stdout',
    async publish(data) {
      for (const d of data) write(JSON.stringify({ metric: d.name, value: d.value, unit: d.unit, dimensions: d.dimensions }));
      return { calls: 0, datums: data.length };
    },
  };
}

/**
 * PutMetricData, batched. The API takes at most 1,000 datums and 1 MB per call (2023 limits);
 * a run sends ceil(n / 1000) calls, and a batch is split further only if it would pass 1 MB.
 */
import type { CloudWatchClient, MetricDatum as CwDatum } from '@aws-sdk/client-cloudwatch';
import type { MetricDatum } from '../contract/index.ts';
import { AttemptOpsError } from '../db/errors.ts';
import { isUnreachableEndpoint, nameUnreachableEndpoint, sdkClientConfig } from '../runtime/aws.ts';
import type { MetricSink } from './sink.ts';

export const MAX_DATUMS_PER_CALL = 1000;
/** Payload ceiling with headroom for the request envelope. */
export const MAX_BYTES_PER_CALL = 1_000_000 - 50_000;

/**
 * The SDK module is loaded on first use, not at cold start: about 100 ms of module loading that a
 * dry run, a CLI run with --metrics none, or a failed connection never needs.
 */
const sdk = () => import('@aws-sdk/client-cloudwatch');

let client: CloudWatchClient | undefined;
/**
 * One client per container, made on first use. Retries are ours (below), so they are testable;
 * the connect and request timeouts are the shared ones.
 */
export async function cloudWatchClient(): Promise<CloudWatchClient> {
  client ??= nameUnreachableEndpoint(new (await sdk()).CloudWatchClient(sdkClientConfig({ maxAttempts: 1 })), 'CloudWatch');
  return client;
}

/** For tests: forget the client, as a new container would. */
export function resetCloudWatchClient(): void {
  client = undefined;
}

export interface RetryPolicy {
  attempts: number;
  baseDelayMs: number;
  sleep: (ms: number) => Promise<void>;
}

export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 4,
  baseDelayMs: 200,
  sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
};

/**
 * Throttling and server-side faults are worth another try; a bad request is not, and neither is
 * an endpoint that cannot be reached: a missing route does not appear in a second.
 */
export function isRetryable(err: unknown): boolean {
  if (isUnreachableEndpoint(err)) return false;
  const e = err as { name?: string; $retryable?: unknown; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode ?? 0;
  return Boolean(e.$retryable) || status >= 500 || status === 429 || /Throttl|RequestLimitExceeded|ServiceUnavailable|InternalFailure|TimeoutError|NetworkingError|ECONNRESET/.test(e.name ?? '');
}

function toCloudWatch(d: MetricDatum, timestamp: Date): CwDatum {
  return {
    MetricName: d.name,
    Value: d.value,
    Unit: d.unit,
    Timestamp: timestamp,
    Dimensions: Object.entries(d.dimensions).map(([Name, Value]) => ({ Name, Value })),
  };
}

/** Split datums into the fewest batches the API's count and size limits allow. */
export function batchDatums<T>(items: readonly T[], size: (item: T) => number = () => 0): T[][] {
  const batches: T[][] = [];
  let current: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const b = size(item);
    if (current.length > 0 && (current.length >= MAX_DATUMS_PER_CALL || bytes + b > MAX_BYTES_PER_CALL)) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(item);
    bytes += b;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

export function cloudWatchSink(options: { namespace: string; client?: CloudWatchClient; now?: () => Date; retry?: Partial<RetryPolicy> }): MetricSink {
  const retry = { ...DEFAULT_RETRY, ...options.retry };
  return {
    kind: 'cloudwatch',
    async publish(data) {
      if (data.length === 0) return { calls: 0, datums: 0 };
      const cw = options.client ?? (await cloudWatchClient());
      const { PutMetricDataCommand } = await sdk();
      const timestamp = (options.now ?? (() => new Date()))();
      const datums = data.map((d) => toCloudWatch(d, timestamp));
      const batches = batchDatums(datums, (d) => JSON.stringify(d).length);
      for (const batch of batches) {
        for (let attempt = 1; ; attempt++) {
          try {
            await cw.send(new PutMetricDataCommand({ Namespace: options.namespace, MetricData: batch }));
            break;
          } catch (err) {
            const why = isUnreachableEndpoint(err) ? (err as Error).message : ((err as { name?: string }).name ?? 'Error');
            if (attempt < retry.attempts && isRetryable(err)) {
              // Exponential backoff with full jitter, as AWS recommends for throttling.
              await retry.sleep(Math.random() * retry.baseDelayMs * 2 ** (attempt - 1));
              continue;
            }
            // Fail the job loudly rather than drop a metric silently.
            throw new AttemptOpsError('metrics', `PutMetricData failed after ${attempt} attempt(s) (${why}): ${batch.length} datum(s) not published`, { cause: err });
          }
        }
      }
      return { calls: batches.length, datums: data.length };
    },
  };
}

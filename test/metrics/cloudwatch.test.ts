import { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { datum, type MetricDatum } from '../../functions/contract/index.ts';
import { MAX_BYTES_PER_CALL, MAX_DATUMS_PER_CALL, batchDatums, cloudWatchSink } from '../../functions/metrics/cloudwatch.ts';

const cw = mockClient(CloudWatchClient);

beforeEach(() => {
  cw.reset();
  cw.on(PutMetricDataCommand).resolves({});
});

describe('PutMetricData batching', () => {
  it('sends 2,500 datums in three calls of at most 1,000', async () => {
    const data: MetricDatum[] = Array.from({ length: 2500 }, (_, i) => datum('table_stats_age_hours', i, 'prod', { Table: `t${i}` }));
    const sink = cloudWatchSink({ namespace: 'AttemptView', client: new CloudWatchClient({ region: 'eu-west-1' }) });
    const result = await sink.publish(data);
    const calls = cw.commandCalls(PutMetricDataCommand);
    expect(result).toEqual({ calls: 3, datums: 2500 });
    expect(calls.map((c) => c.args[0].input.MetricData!.length)).toEqual([1000, 1000, 500]);
    expect(calls.every((c) => c.args[0].input.Namespace === 'AttemptView')).toBe(true);
    expect(calls.flatMap((c) => c.args[0].input.MetricData!.map((d) => d.Value))).toEqual(data.map((d) => d.value));
  });

  it('sends a small run in exactly one call', async () => {
    const sink = cloudWatchSink({ namespace: 'AttemptView', client: new CloudWatchClient({ region: 'eu-west-1' }) });
    expect(await sink.publish([datum('blocked_queries', 0, 'x'), datum('database_connections', 7, 'x')])).toEqual({ calls: 1, datums: 2 });
    expect(await sink.publish([])).toEqual({ calls: 0, datums: 0 });
  });

  it('splits by payload size before the 1 MB limit', () => {
    const big = Math.floor(MAX_BYTES_PER_CALL / 3) + 1;
    const batches = batchDatums(Array.from({ length: 7 }, (_, i) => i), () => big);
    expect(batches.map((b) => b.length)).toEqual([2, 2, 2, 1]);
    expect(batchDatums(Array.from({ length: MAX_DATUMS_PER_CALL + 1 }, (_, i) => i)).map((b) => b.length)).toEqual([MAX_DATUMS_PER_CALL, 1]);
  });

  it('retries throttling with backoff, then succeeds', async () => {
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } });
    cw.on(PutMetricDataCommand).rejectsOnce(throttled).rejectsOnce(throttled).resolves({});
    const sleeps: number[] = [];
    const sink = cloudWatchSink({ namespace: 'AttemptView', client: new CloudWatchClient({ region: 'eu-west-1' }), retry: { sleep: async (ms) => void sleeps.push(ms) } });
    expect(await sink.publish([datum('blocked_queries', 1, 'x')])).toEqual({ calls: 1, datums: 1 });
    expect(cw.commandCalls(PutMetricDataCommand)).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it('fails loudly once the retries are spent, and at once on a bad request', async () => {
    cw.on(PutMetricDataCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const sink = cloudWatchSink({ namespace: 'AttemptView', client: new CloudWatchClient({ region: 'eu-west-1' }), retry: { sleep: async () => undefined } });
    await expect(sink.publish([datum('blocked_queries', 1, 'x')])).rejects.toMatchObject({ kind: 'metrics', message: expect.stringMatching(/after 4 attempt\(s\) \(ThrottlingException\): 1 datum/) });
    cw.reset();
    cw.on(PutMetricDataCommand).rejects(Object.assign(new Error('bad'), { name: 'InvalidParameterValueException', $metadata: { httpStatusCode: 400 } }));
    await expect(sink.publish([datum('blocked_queries', 1, 'x')])).rejects.toMatchObject({ message: expect.stringMatching(/after 1 attempt/) });
    expect(cw.commandCalls(PutMetricDataCommand)).toHaveLength(1);
  });
});

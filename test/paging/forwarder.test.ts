/**
 * The PagerDuty forwarder end to end: the Lambda handler, Secrets Manager through
 * aws-sdk-client-mock, and a real HTTP server on 127.0.0.1 standing in for the Events API.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ENV, alarmDescription, alarmName, ALARM_SPECS, JOB_SILENT_ALARM } from '../../functions/contract/index.ts';
import { handler, resetForwarder } from '../../functions/handlers/pagerduty-forwarder.ts';
import { PagerDutyError } from '../../functions/paging/pagerduty.ts';
import { resetRoutingKey } from '../../functions/paging/routing-key.ts';
import { readBody, ROUTING_KEY, SECRET_ARN } from '../support/pagerduty.ts';

const RUNBOOK = 'https://runbooks.example.com/attempt-view-runbook.md';

interface Received {
  method: string;
  path: string;
  contentType: string | undefined;
  body: any;
}

let server: Server;
let url: string;
let received: Received[] = [];
/** What the stand-in answers next: status and body. */
let answers: { status: number; body: string }[] = [];
const sm = mockClient(SecretsManagerClient);
let stderr: string[] = [];
const realWrite = process.stderr.write.bind(process.stderr);

beforeAll(async () => {
  server = createServer(async (req, res) => {
    const body = await readBody(req);
    received.push({ method: req.method ?? '', path: req.url ?? '', contentType: req.headers['content-type'], body: JSON.parse(body) });
    const answer = answers.shift() ?? { status: 202, body: JSON.stringify({ status: 'success', message: 'Event processed' }) };
    res.writeHead(answer.status, { 'content-type': 'application/json' });
    res.end(answer.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/enqueue`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  received = [];
  answers = [];
  stderr = [];
  sm.reset();
  sm.on(GetSecretValueCommand, { SecretId: SECRET_ARN }).resolves({ SecretString: JSON.stringify({ routing_key: ROUTING_KEY }) });
  process.env[ENV.pagerDutySecretArn] = SECRET_ARN;
  process.env[ENV.pagerDutyEventsUrl] = url;
  process.env[ENV.runbookUrl] = RUNBOOK;
  resetForwarder();
  resetRoutingKey();
  // Capture the log lines: they must never carry the routing key.
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
});

afterEach(() => {
  process.stderr.write = realWrite;
  for (const k of [ENV.pagerDutySecretArn, ENV.pagerDutyEventsUrl, ENV.runbookUrl]) delete process.env[k];
  expect(stderr.join('')).not.toContain(ROUTING_KEY);
});

const viewMissing = ALARM_SPECS.find((a) => a.id === 'view-missing')!;
const duplicates = ALARM_SPECS.find((a) => a.id === 'duplicates')!;
const freshness = ALARM_SPECS.find((a) => a.id === 'no-fresh-data')!;
const permissions = ALARM_SPECS.find((a) => a.id === 'permissions')!;

function alarmMessage(spec: typeof viewMissing, state: 'ALARM' | 'OK' | 'INSUFFICIENT_DATA', overrides: Record<string, unknown> = {}) {
  const name = alarmName('prod', spec);
  return {
    AlarmName: name,
    AlarmDescription: alarmDescription(spec, { target: 'prod', runbookUrl: 'https://deployed.example.com/runbook.md' }),
    AWSAccountId: '123456789012',
    NewStateValue: state,
    NewStateReason:
      state === 'ALARM'
        ? 'Threshold Crossed: 1 out of the last 1 datapoints [3.0 (25/11/26 03:00:00)] was greater than the threshold (0.0) (minimum 1 datapoint for OK -> ALARM transition).'
        : 'Threshold Crossed: 1 out of the last 1 datapoints [0.0 (25/11/26 04:00:00)] was not greater than the threshold (0.0).',
    StateChangeTime: '2026-11-25T03:00:12.345+0000',
    Region: 'EU (Ireland)',
    AlarmArn: `arn:aws:cloudwatch:eu-west-1:123456789012:alarm:${name}`,
    OldStateValue: state === 'ALARM' ? 'OK' : 'ALARM',
    Trigger: {
      MetricName: spec.source.metric,
      Namespace: 'AttemptView',
      StatisticType: 'Statistic',
      Statistic: 'MAXIMUM',
      Unit: null,
      Dimensions: [{ value: 'prod', name: 'Database' }],
      Period: 300,
      EvaluationPeriods: 1,
      ComparisonOperator: spec.comparison,
      Threshold: spec.threshold,
      TreatMissingData: '',
      EvaluateLowSampleCountPercentile: '',
    },
    ...overrides,
  };
}

function snsEvent(...messages: object[]) {
  return {
    Records: messages.map((m, i) => ({
      EventSource: 'aws:sns',
      EventVersion: '1.0',
      EventSubscriptionArn: 'arn:aws:sns:eu-west-1:123456789012:attempt-ops-prod-critical:sub',
      Sns: {
        Type: 'Notification',
        MessageId: `m-${i}`,
        TopicArn: 'arn:aws:sns:eu-west-1:123456789012:attempt-ops-prod-critical',
        Subject: 'ALARM',
        Message: JSON.stringify(m),
        Timestamp: '2026-11-25T03:00:12.400Z',
      },
    })),
  };
}

const context = {} as Context;

describe('PagerDuty forwarder', () => {
  it('triggers on ALARM with the alarm ARN as dedup_key, mapped severity, runbook link and details', async () => {
    const msg = alarmMessage(duplicates, 'ALARM');
    const result = await handler(snsEvent(msg), context);

    expect(result.sent).toEqual([{ alarm: msg.AlarmName, action: 'trigger', dedupKey: msg.AlarmArn }]);
    expect(received).toHaveLength(1);
    const req = received[0]!;
    expect(req.method).toBe('POST');
    expect(req.path).toBe('/v2/enqueue');
    expect(req.contentType).toBe('application/json');
    expect(req.body).toMatchObject({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: msg.AlarmArn,
      payload: {
        severity: 'warning',
        source: 'attempt-ops/prod',
        component: 'attempt_duplicate_ids',
        group: 'prod',
        class: 'P2',
        timestamp: '2026-11-25T03:00:12.345Z',
        custom_details: {
          alarm: 'attempt-ops-prod-P2-duplicates',
          metric: 'attempt_duplicate_ids',
          namespace: 'AttemptView',
          dimensions: { Database: 'prod' },
          threshold: 0,
          value: 3,
          comparison: 'GreaterThanThreshold',
        },
      },
      // The configured runbook base plus the section the description names.
      links: [{ href: `${RUNBOOK}#5-determinism-violation-p2`, text: 'Runbook #5-determinism-violation-p2' }],
    });
    expect(req.body.payload.summary).toMatch(/^\[P2\] attempt-ops-prod-P2-duplicates: Threshold Crossed/);
    expect(req.body.payload.summary.length).toBeLessThanOrEqual(1024);
  });

  it('resolves on OK with the same dedup_key', async () => {
    const open = alarmMessage(permissions, 'ALARM');
    const close = alarmMessage(permissions, 'OK');
    await handler(snsEvent(open), context);
    await handler(snsEvent(close), context);

    expect(received.map((r) => [r.body.event_action, r.body.dedup_key])).toEqual([
      ['trigger', open.AlarmArn],
      ['resolve', open.AlarmArn],
    ]);
    expect(received[1]!.body).toEqual({ routing_key: ROUTING_KEY, event_action: 'resolve', dedup_key: open.AlarmArn });
  });

  it.each([
    [viewMissing, 'critical'],
    [permissions, 'critical'],
    [duplicates, 'warning'],
    [freshness, 'info'],
  ] as const)('maps %s to PagerDuty severity %s', async (spec, severity) => {
    await handler(snsEvent(alarmMessage(spec, 'ALARM')), context);
    expect(received[0]!.body.payload.severity).toBe(severity);
    expect(received[0]!.body.payload.class).toBe(spec.severity);
  });

  it('reads the severity from the alarm name when the description does not carry it', async () => {
    const msg = alarmMessage(viewMissing, 'ALARM', { AlarmDescription: null });
    await handler(snsEvent(msg), context);
    expect(received[0]!.body.payload.severity).toBe('critical');
    expect(received[0]!.body.links).toBeUndefined();
  });

  it('pages an alarm it cannot place at "error" rather than dropping it', async () => {
    await handler(snsEvent(alarmMessage(duplicates, 'ALARM', { AlarmName: 'someone-elses-alarm', AlarmDescription: 'disk full' })), context);
    expect(received[0]!.body.payload.severity).toBe('error');
  });

  it('describes a FILL heartbeat alarm by the metric inside the expression, with no value on missing data', async () => {
    const msg = alarmMessage(JOB_SILENT_ALARM, 'ALARM', {
      AlarmName: alarmName('prod', JOB_SILENT_ALARM, 'publish-metrics'),
      AlarmDescription: alarmDescription(JOB_SILENT_ALARM, { target: 'prod', runbookUrl: RUNBOOK, qualifier: 'publish-metrics' }),
      NewStateReason: 'Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching].',
      Trigger: {
        Period: 60,
        EvaluationPeriods: 2,
        ComparisonOperator: 'LessThanThreshold',
        Threshold: 1,
        TreatMissingData: 'breaching',
        Metrics: [
          { Expression: 'FILL(m, 0)', Id: 'expr_1', ReturnData: true },
          {
            Id: 'm',
            MetricStat: {
              Metric: { Dimensions: [{ value: 'prod', name: 'Database' }, { value: 'publish-metrics', name: 'Job' }], MetricName: 'job_success', Namespace: 'AttemptView' },
              Period: 60,
              Stat: 'SampleCount',
            },
            ReturnData: false,
          },
        ],
      },
    });
    await handler(snsEvent(msg), context);
    expect(received[0]!.body.payload).toMatchObject({
      severity: 'critical',
      component: 'job_success',
      custom_details: { metric: 'job_success', statistic: 'SampleCount', expression: 'FILL(m, 0)', threshold: 1, value: null, dimensions: { Database: 'prod', Job: 'publish-metrics' } },
    });
  });

  it('sends nothing for INSUFFICIENT_DATA', async () => {
    const result = await handler(snsEvent(alarmMessage(duplicates, 'INSUFFICIENT_DATA')), context);
    expect(received).toEqual([]);
    expect(result.skipped).toEqual([{ alarm: 'attempt-ops-prod-P2-duplicates', state: 'INSUFFICIENT_DATA' }]);
  });

  it.each([
    [400, '{"status":"invalid event","message":"Event object is invalid","errors":["\'routing_key\' is invalid"]}'],
    [429, '{"status":"throttle event","message":"Requests for this service are arriving too quickly."}'],
    [500, 'upstream failure'],
  ])('throws on a %i answer, so the delivery is retried', async (status, body) => {
    answers.push({ status, body });
    const err = await handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PagerDutyError);
    expect((err as PagerDutyError).status).toBe(status);
    expect((err as Error).message).toContain(`PagerDuty answered ${status} to trigger`);
    expect((err as Error).message).not.toContain(ROUTING_KEY);
    expect(received).toHaveLength(1);
  });

  it('scrubs the routing key from an error body that echoes it', async () => {
    answers.push({ status: 400, body: `{"message":"bad key ${ROUTING_KEY}"}` });
    const err = (await handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain('[routing key]');
    expect(err.message).not.toContain(ROUTING_KEY);
  });

  it('throws when PagerDuty cannot be reached', async () => {
    process.env[ENV.pagerDutyEventsUrl] = 'http://127.0.0.1:9/v2/enqueue';
    resetForwarder();
    await expect(handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context)).rejects.toThrow(/PagerDuty trigger for .* failed/);
  });

  it('fetches the routing key once per container', async () => {
    await handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context);
    await handler(snsEvent(alarmMessage(duplicates, 'OK'), alarmMessage(permissions, 'ALARM')), context);
    expect(sm.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(received).toHaveLength(3);
  });

  it('accepts the routing key as the whole secret string', async () => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: ROUTING_KEY });
    await handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context);
    expect(received[0]!.body.routing_key).toBe(ROUTING_KEY);
  });

  it.each([
    ['not a key', 'does not hold a 32-character PagerDuty routing key'],
    ['{"routing_key": "short"}', 'does not hold a 32-character PagerDuty routing key'],
    ['{"key": "R0utingKey0123456789abcdefABCDEF"}', 'has no routing_key field'],
    ['{not json', 'is not valid JSON'],
    ['', 'has no SecretString'],
  ])('rejects a malformed secret (%s) without sending or echoing it', async (secret, message) => {
    sm.on(GetSecretValueCommand).resolves({ SecretString: secret });
    const err = (await handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context).catch((e: unknown) => e)) as Error;
    expect(err.message).toContain(message);
    expect(err.message).toContain(SECRET_ARN);
    if (secret.length > 2) expect(err.message).not.toContain(secret);
    expect(received).toEqual([]);
  });

  it('retries the secret on the next invocation after a failed read', async () => {
    sm.on(GetSecretValueCommand).rejectsOnce(Object.assign(new Error('boom'), { name: 'InternalServiceError' })).resolves({ SecretString: ROUTING_KEY });
    await expect(handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context)).rejects.toThrow(/cannot read secret .* \(InternalServiceError\)/);
    await handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context);
    expect(received).toHaveLength(1);
  });

  it('rejects what is not an SNS event or not an alarm', async () => {
    await expect(handler({ source: 'aws.events' }, context)).rejects.toThrow(/not an SNS event/);
    await expect(handler(snsEvent({ hello: 'world' }), context)).rejects.toThrow(/not a CloudWatch alarm: AlarmName/);
    const bad = snsEvent(alarmMessage(duplicates, 'ALARM'));
    bad.Records[0]!.Sns.Message = '{oops';
    await expect(handler(bad, context)).rejects.toThrow(/SNS message m-0 is not JSON/);
    expect(received).toEqual([]);
  });

  it.each([
    [{ [ENV.pagerDutySecretArn]: '' }, `${ENV.pagerDutySecretArn} is not set`],
    [{ [ENV.pagerDutySecretArn]: 'my-secret' }, `${ENV.pagerDutySecretArn} is not a Secrets Manager secret ARN`],
    [{ [ENV.pagerDutyEventsUrl]: 'http://events.pagerduty.com/v2/enqueue' }, `${ENV.pagerDutyEventsUrl} must be an https:// URL`],
    [{ [ENV.pagerDutyEventsUrl]: 'not a url' }, `${ENV.pagerDutyEventsUrl} is not a valid URL`],
  ])('fails fast on bad configuration %j', async (env, message) => {
    Object.assign(process.env, env);
    resetForwarder();
    await expect(handler(snsEvent(alarmMessage(duplicates, 'ALARM')), context)).rejects.toThrow(message);
  });
});

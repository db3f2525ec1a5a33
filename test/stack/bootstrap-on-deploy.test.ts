/**
 * The deploy-time invoker: CloudFormation's custom-resource event in, bootstrap invoked with exactly
 * the contract payload, and a failed bootstrap failing the deployment.
 */
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { bootstrapPayload } from '../../functions/contract/index.ts';
import { DEPLOY_BOOTSTRAP_PAYLOAD } from '../../functions/contract/schedules.ts';
import { bootstrapOnDeploy, PHYSICAL_ID, type CustomResourceEvent } from '../../functions/deploy/bootstrap-on-deploy.ts';

const VERSION_ARN = 'arn:aws:lambda:eu-west-1:123456789012:function:attempt-ops-prod-bootstrap:7';
const lambda = mockClient(LambdaClient);
const client = new LambdaClient({ region: 'eu-west-1' });
const encode = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

function event(type: CustomResourceEvent['RequestType'], props: Record<string, unknown> = {}): CustomResourceEvent {
  return {
    RequestType: type,
    ...(type === 'Create' ? {} : { PhysicalResourceId: PHYSICAL_ID }),
    ResourceProperties: { ServiceToken: 'arn:aws:lambda:...:provider', FunctionName: VERSION_ARN, Payload: JSON.stringify(DEPLOY_BOOTSTRAP_PAYLOAD), ...props },
  };
}

beforeEach(() => lambda.reset());

describe('bootstrap at deploy', () => {
  it('is the payload bootstrap accepts, with apply on', () => {
    expect(DEPLOY_BOOTSTRAP_PAYLOAD).toEqual({ apply: true });
    expect(bootstrapPayload.parse(DEPLOY_BOOTSTRAP_PAYLOAD)).toEqual({ apply: true });
  });

  it.each(['Create', 'Update'] as const)('on %s invokes bootstrap synchronously with exactly {"apply":true}', async (type) => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: encode({ version: 1, job: 'bootstrap', status: 'ok' }) } as never);
    const result = await bootstrapOnDeploy(event(type), client);
    expect(result).toEqual({ PhysicalResourceId: PHYSICAL_ID, Data: { Status: 'ok', FirstRuns: '' } });
    const calls = lambda.commandCalls(InvokeCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    expect(input.FunctionName).toBe(VERSION_ARN);
    expect(input.InvocationType).toBe('RequestResponse');
    expect(new TextDecoder().decode(input.Payload as Uint8Array)).toBe('{"apply":true}');
  });

  it('fails the deployment with bootstrap\'s own message when bootstrap throws', async () => {
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: encode({ errorType: 'AttemptOpsError', errorMessage: 'database: cannot connect (ECONNREFUSED)', trace: ['at x'] }),
    } as never);
    await expect(bootstrapOnDeploy(event('Create'), client)).rejects.toThrow('bootstrap failed (Unhandled): AttemptOpsError: database: cannot connect (ECONNREFUSED)');
  });

  const FIRST_RUNS = [
    { job: 'health-check', functionName: 'attempt-ops-prod-health-check', payload: { scope: 'incremental' } },
    { job: 'publish-metrics', functionName: 'attempt-ops-prod-publish-metrics', payload: {} },
  ];

  it('starts the first runs asynchronously, after bootstrap succeeded', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: encode({ status: 'ok' }) } as never);
    const result = await bootstrapOnDeploy(event('Create', { FirstRuns: JSON.stringify(FIRST_RUNS) }), client);
    const calls = lambda.commandCalls(InvokeCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => [c.FunctionName, c.InvocationType, new TextDecoder().decode(c.Payload as Uint8Array)])).toEqual([
      [VERSION_ARN, 'RequestResponse', '{"apply":true}'],
      ['attempt-ops-prod-health-check', 'Event', '{"scope":"incremental"}'],
      ['attempt-ops-prod-publish-metrics', 'Event', '{}'],
    ]);
    expect(result.Data).toEqual({ Status: 'ok', FirstRuns: 'health-check,publish-metrics' });
  });

  it('starts no run when bootstrap failed', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, FunctionError: 'Unhandled', Payload: encode({ errorMessage: 'no' }) } as never);
    await expect(bootstrapOnDeploy(event('Create', { FirstRuns: JSON.stringify(FIRST_RUNS) }), client)).rejects.toThrow('bootstrap failed');
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(1);
  });

  it.each([
    [[{ job: 'health-check', functionName: 'f', payload: { scope: 'everything' } }], 'invalid health-check payload'],
    [[{ job: 'vacuum', functionName: 'f', payload: {} }], 'FirstRuns'],
    ['{', 'FirstRuns is not JSON'],
  ])('refuses first runs %j before running bootstrap', async (runs, message) => {
    await expect(bootstrapOnDeploy(event('Update', { FirstRuns: typeof runs === 'string' ? runs : JSON.stringify(runs) }), client)).rejects.toThrow(message);
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
  });

  it('never touches the database when the stack is deleted', async () => {
    expect(await bootstrapOnDeploy(event('Delete'), client)).toEqual({ PhysicalResourceId: PHYSICAL_ID });
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
  });

  it.each([
    [{ Payload: '{"apply":true,"force":1}' }, 'invalid payload'],
    [{ Payload: 'apply' }, 'Payload is not JSON'],
    [{ FunctionName: undefined }, 'FunctionName'],
  ])('refuses resource properties %j before invoking anything', async (props, message) => {
    await expect(bootstrapOnDeploy(event('Update', props), client)).rejects.toThrow(message);
    expect(lambda.commandCalls(InvokeCommand)).toHaveLength(0);
  });
});

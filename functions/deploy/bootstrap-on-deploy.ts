/**
 * Runs bootstrap during `cdk deploy`, so a deploy leaves the database ready. The CDK provider
 * framework calls this with a CloudFormation custom-resource event; bootstrap itself only accepts
 * its strict payload ({ "apply": true }), so this function translates: it invokes bootstrap
 * synchronously with exactly that payload and fails the deployment when bootstrap fails.
 *
 * Then it starts one run of each scheduled job (asynchronously, with its schedule's payload), so
 * the heartbeat alarms get their first datapoint soon: until then they stay in INSUFFICIENT_DATA
 * (they count silence only after a first datapoint), which pages nobody but shows on the dashboard.
 */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import * as z from 'zod/mini';
import { bootstrapPayload, describeIssues, PAYLOAD_SCHEMAS, type PayloadFunction } from '../contract/index.ts';
import { ConfigError } from '../db/errors.ts';

/** The resource properties the stack sets (CloudFormation passes every value as a string). */
const properties = z.object({
  FunctionName: z.string().check(z.minLength(1)),
  Payload: z.string().check(z.minLength(1)),
  /** JSON: [{ "job", "functionName", "payload" }], the first runs to start after bootstrap. */
  FirstRuns: z.optional(z.string()),
});

const firstRuns = z.array(
  z.strictObject({
    job: z.enum(Object.keys(PAYLOAD_SCHEMAS) as [PayloadFunction, ...PayloadFunction[]]),
    functionName: z.string().check(z.minLength(1)),
    payload: z.unknown(),
  }),
);

export interface FirstRun {
  job: PayloadFunction;
  functionName: string;
  payload: unknown;
}

/** Parse and check the first runs before anything runs: each payload must satisfy its job's schema. */
function parseFirstRuns(text: string | undefined): FirstRun[] {
  if (text === undefined) return [];
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ConfigError('bootstrap resource: FirstRuns is not JSON');
  }
  const runs = firstRuns.safeParse(json);
  if (!runs.success) throw new ConfigError(`bootstrap resource: FirstRuns: ${describeIssues(runs.error)}`);
  for (const run of runs.data) {
    const ok = PAYLOAD_SCHEMAS[run.job].safeParse(run.payload);
    if (!ok.success) throw new ConfigError(`bootstrap resource: FirstRuns: invalid ${run.job} payload: ${describeIssues(ok.error)}`);
  }
  return runs.data as FirstRun[];
}

export interface CustomResourceEvent {
  RequestType: 'Create' | 'Update' | 'Delete';
  PhysicalResourceId?: string;
  ResourceProperties: Record<string, unknown>;
}

export interface CustomResourceResult {
  PhysicalResourceId: string;
  Data?: Record<string, string>;
}

export const PHYSICAL_ID = 'attempt-ops-bootstrap';

export async function bootstrapOnDeploy(event: CustomResourceEvent, lambda: LambdaClient): Promise<CustomResourceResult> {
  const physicalId = event.PhysicalResourceId ?? PHYSICAL_ID;
  // Removing the stack must never drop the schema, attempt_mv or the grants the app relies on.
  if (event.RequestType === 'Delete') return { PhysicalResourceId: physicalId };
  const props = properties.safeParse(event.ResourceProperties);
  if (!props.success) throw new ConfigError(`bootstrap resource: ${describeIssues(props.error)}`);
  let payload: unknown;
  try {
    payload = JSON.parse(props.data.Payload);
  } catch {
    throw new ConfigError('bootstrap resource: Payload is not JSON');
  }
  const checked = bootstrapPayload.safeParse(payload);
  if (!checked.success) throw new ConfigError(`bootstrap resource: invalid payload: ${describeIssues(checked.error)}`);
  const runs = parseFirstRuns(props.data.FirstRuns);

  const { InvokeCommand } = await import('@aws-sdk/client-lambda');
  const out = await lambda.send(
    new InvokeCommand({
      FunctionName: props.data.FunctionName,
      InvocationType: 'RequestResponse',
      Payload: new TextEncoder().encode(JSON.stringify(checked.data)),
    }),
  );
  const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
  if (out.FunctionError) {
    // Lambda's error payload is {errorType, errorMessage, trace}; the message is the job's one line.
    let message = text.slice(0, 500);
    try {
      const e = JSON.parse(text) as { errorType?: string; errorMessage?: string };
      if (e.errorMessage) message = `${e.errorType ?? 'Error'}: ${e.errorMessage}`;
    } catch {
      // not JSON: keep the raw text, already truncated
    }
    throw new Error(`bootstrap failed (${out.FunctionError}): ${message}`);
  }
  // Only a database that bootstrap left ready is worth a first run. An invoke Lambda refuses
  // (permissions, a missing function) is a broken stack: it fails the deploy like bootstrap would.
  for (const run of runs) {
    await lambda.send(
      new InvokeCommand({ FunctionName: run.functionName, InvocationType: 'Event', Payload: new TextEncoder().encode(JSON.stringify(run.payload)) }),
    );
  }
  let status = 'unknown';
  try {
    status = String((JSON.parse(text) as { status?: unknown }).status ?? 'unknown');
  } catch {
    // a report that is not JSON still means bootstrap returned without error
  }
  return { PhysicalResourceId: physicalId, Data: { Status: status, FirstRuns: runs.map((r) => r.job).join(',') } };
}

/**
 * Runs bootstrap during `cdk deploy`, so a deploy leaves the database ready. The CDK provider
 * framework calls this with a CloudFormation custom-resource event; bootstrap itself only accepts
 * its strict payload ({ "apply": true }), so this function translates: it invokes bootstrap
 * synchronously with exactly that payload and fails the deployment when bootstrap fails.
 */
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import { z } from 'zod';
import { bootstrapPayload, describeIssues } from '../contract/index.ts';
import { ConfigError } from '../db/errors.ts';

/** The resource properties the stack sets (CloudFormation passes every value as a string). */
const properties = z.object({
  FunctionName: z.string().min(1),
  Payload: z.string().min(1),
});

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
  let status = 'unknown';
  try {
    status = String((JSON.parse(text) as { status?: unknown }).status ?? 'unknown');
  } catch {
    // a report that is not JSON still means bootstrap returned without error
  }
  return { PhysicalResourceId: physicalId, Data: { Status: status } };
}

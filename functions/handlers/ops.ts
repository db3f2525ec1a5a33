/**
 * Lambda entry point for incident tooling: `{ "action": "diagnose", "incident": ... }` or
 * `{ "action": "remediate", "fix": ..., "apply"?: true }`. A diagnosis and a remediation without
 * `apply` publish nothing and change nothing.
 */
import type { MiddlewareObj } from '@middy/core';
import type { Context } from 'aws-lambda';
import { opsPayload, type OpsPayload, type OpsReport } from '../contract/index.ts';
import { runDiagnose } from '../jobs/diagnose.ts';
import { runRemediation } from '../jobs/remediate.ts';
import { createJobHandler } from './runtime.ts';

/** The caller of each validated payload, keyed by the payload object the job receives. */
const callers = new WeakMap<object, string>();

function clean(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '').slice(0, 120);
}

/**
 * Who invoked the function, for the audit row. Lambda passes the IAM caller to no one but
 * CloudTrail; what reaches the handler is a Cognito identity, or the client context a caller
 * chose to send (`attempt-ops invoke` sends the OS user there). Both are claims, so they are
 * recorded as such, next to the request id that CloudTrail can resolve.
 */
export function invokerOf(context: Context | undefined): string {
  // The runtime hands over the client context as the caller sent it: `custom` from the SDK's
  // ClientContext, `Custom` in the aws-lambda typings (the mobile SDKs' spelling).
  const cc = context?.clientContext as { custom?: Record<string, unknown>; Custom?: Record<string, unknown> } | undefined;
  const claimed = cc?.custom?.invokedBy ?? cc?.Custom?.invokedBy;
  const cognito = context?.identity?.cognitoIdentityId;
  const who = typeof claimed === 'string' && claimed.trim() !== '' ? clean(claimed) : cognito ? `cognito:${clean(cognito)}` : '';
  const request = context?.awsRequestId ? ` request ${clean(context.awsRequestId)}` : '';
  return `lambda${who ? `:${who}` : ''}${request}`;
}

const captureInvoker: MiddlewareObj<OpsPayload, unknown, Error, Context> = {
  // Runs after payload validation, so the key is the very object the job is handed.
  before: (request) => {
    if (typeof request.event === 'object' && request.event !== null) callers.set(request.event, invokerOf(request.context));
  },
};

export const handler = createJobHandler({
  job: 'ops',
  schema: opsPayload,
  isDryRun: (p) => p.action === 'diagnose' || p.apply !== true,
  run: (deps, p): Promise<OpsReport> =>
    p.action === 'diagnose'
      ? runDiagnose(deps, { incident: p.incident })
      : runRemediation(deps, { fix: p.fix, apply: p.apply === true, invokedBy: callers.get(p) ?? 'lambda' }),
}).use(captureInvoker as MiddlewareObj<unknown>);

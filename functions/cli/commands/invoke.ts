/**
 * `invoke <function> [--payload JSON]`: runs a deployed function and prints its answer exactly as
 * the local command would print its own report (same JSON, same table, same exit code).
 *
 * The payload is validated with the handler's own schema before any AWS call, so a typo costs
 * nothing and is reported like any bad argument (exit 3).
 *
 * Which function, in this order:
 * 1. ATTEMPT_OPS_FUNCTION_<NAME> (HEALTH_CHECK, ANALYZE, REFRESH_MV, PUBLISH_METRICS, BOOTSTRAP,
 *    OPS): a name or ARN, for stacks deployed under other names;
 * 2. --outputs FILE, the file `cdk deploy --outputs-file FILE` writes: the output whose key names
 *    the function (`Function<name>`, or `...<Name>FunctionName`), from the stack of --target when
 *    the file holds several;
 * 3. the name the stack gives it: attempt-ops-<target>-<function>.
 */
import { readFileSync } from 'node:fs';
import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import {
  EXIT_CODES, PAYLOAD_SCHEMAS, describeIssues,
  type ActionsReport, type DiagnoseReport, type HealthReport, type OpsReport, type PayloadFunction, type RemediateReport,
} from '../../contract/index.ts';
import { deployedFunctionName } from '../../contract/schedules.ts';
import { AttemptOpsError, ConfigError, oneLine } from '../../db/errors.ts';
import type { Command } from '../command.ts';
import { renderActionsReport, renderDiagnoseReport, renderHealthReport, renderMetricsReport, renderRemediateReport } from '../render.ts';
import { runbookBase } from './check.ts';
import { cliInvoker, remediateExitCode } from './remediate.ts';

const FUNCTIONS = Object.keys(PAYLOAD_SCHEMAS) as PayloadFunction[];

export function functionEnvVar(fn: PayloadFunction): string {
  return `ATTEMPT_OPS_FUNCTION_${fn.toUpperCase().replace(/-/g, '_')}`;
}

const squash = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, '');

/** Lambda accepts a name, a partial ARN or a full ARN, optionally with a version or alias. */
const FUNCTION_REF = /^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:)?[A-Za-z0-9_-]{1,140}(:[A-Za-z0-9$_-]+)?$/;

/** The function's output in a `cdk deploy --outputs-file` file: { stack: { key: value } }, or flat. */
export function functionFromOutputs(outputs: unknown, fn: PayloadFunction, target: string, file: string): string {
  if (typeof outputs !== 'object' || outputs === null) throw new ConfigError(`--outputs ${file}: not a JSON object of stack outputs`);
  const entries: { stack: string; key: string; value: unknown }[] = [];
  for (const [k, v] of Object.entries(outputs)) {
    if (typeof v === 'object' && v !== null) for (const [key, value] of Object.entries(v)) entries.push({ stack: k, key, value });
    else entries.push({ stack: '', key: k, value: v });
  }
  const f = squash(fn);
  // `Function-health-check` becomes the key Functionhealthcheck (a nested construct adds a hash);
  // other stacks name theirs ProdHealthCheckFunctionName.
  const matches = entries.filter(({ key, value }) => {
    const k = squash(key);
    return typeof value === 'string' && (k.endsWith(`${f}functionname`) || new RegExp(`function${f}([0-9a-f]{8})?$`).test(k));
  });
  if (matches.length === 0) {
    throw new ConfigError(`--outputs ${file}: no output names the ${fn} function (expected a key like Function${f} or <Target>${fn.replace(/(^|-)([a-z])/g, (_, __, c: string) => c.toUpperCase())}FunctionName)`);
  }
  const t = squash(target);
  const picked = matches.length === 1 ? matches : matches.filter((m) => squash(m.stack).includes(t) || squash(m.key).startsWith(t) || String(m.value).includes(`-${target}-`));
  if (picked.length !== 1) {
    throw new ConfigError(`--outputs ${file}: several outputs name the ${fn} function (${(picked.length > 1 ? picked : matches).map((p) => `${p.stack}.${p.key}`).join(', ')}); pick one with --target`);
  }
  return picked[0]!.value as string;
}

export function resolveFunctionName(fn: PayloadFunction, o: { env: NodeJS.ProcessEnv; outputs?: string; target: string }): string {
  const fromEnv = o.env[functionEnvVar(fn)];
  let name: string;
  let where: string;
  if (fromEnv) {
    name = fromEnv.trim();
    where = functionEnvVar(fn);
  } else if (o.outputs !== undefined) {
    let text: string;
    try {
      text = readFileSync(o.outputs, 'utf8');
    } catch {
      throw new ConfigError(`--outputs: cannot read ${o.outputs}`);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ConfigError(`--outputs ${o.outputs}: not valid JSON`);
    }
    name = functionFromOutputs(json, fn, o.target, o.outputs);
    where = `--outputs ${o.outputs}`;
  } else {
    return deployedFunctionName(o.target, fn);
  }
  if (!FUNCTION_REF.test(name)) throw new ConfigError(`${where}: ${JSON.stringify(name.slice(0, 80))} is not a Lambda function name or ARN`);
  return name;
}

/** The payload as the handler will see it: parsed and validated with the handler's own schema. */
export function validatedPayload(fn: PayloadFunction, raw: string | undefined): unknown {
  let json: unknown = {};
  if (raw !== undefined) {
    try {
      json = JSON.parse(raw);
    } catch {
      throw new ConfigError('--payload is not valid JSON');
    }
  }
  const parsed = PAYLOAD_SCHEMAS[fn].safeParse(json);
  if (!parsed.success) throw new ConfigError(`invalid ${fn} payload: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** What the local command prints for the same report, and the exit code it returns. */
export function renderAnswer(fn: PayloadFunction, report: unknown, o: { json: boolean; color: boolean; env: NodeJS.ProcessEnv }): { text: string; code: number } {
  const r = report as { job?: unknown; status?: unknown; action?: unknown };
  if (typeof r !== 'object' || r === null || typeof r.status !== 'string' || !(r.status in EXIT_CODES) || typeof r.job !== 'string') {
    throw new AttemptOpsError('job', `${fn} answered something that is not a report: ${oneLine(JSON.stringify(report) ?? 'nothing').slice(0, 200)}`);
  }
  const json = `${JSON.stringify(report, null, 2)}\n`;
  const status = EXIT_CODES[r.status as keyof typeof EXIT_CODES];
  switch (fn) {
    case 'health-check':
      return { text: o.json ? json : renderHealthReport(report as HealthReport, o.color, runbookBase(o.env)), code: status };
    case 'analyze':
      return { text: o.json ? json : renderActionsReport(report as ActionsReport, 'analyze', o.color), code: status };
    case 'refresh-mv':
      return { text: o.json ? json : renderActionsReport(report as ActionsReport, 'refresh', o.color), code: status };
    case 'publish-metrics':
      return { text: o.json ? json : renderMetricsReport(report as ActionsReport, 'metrics', o.color), code: status };
    case 'bootstrap':
      return { text: o.json ? json : renderActionsReport(report as ActionsReport, 'bootstrap', o.color), code: status };
    case 'ops': {
      const ops = report as OpsReport;
      if (ops.action === 'remediate') {
        return { text: o.json ? json : renderRemediateReport(ops as RemediateReport, o.color), code: remediateExitCode(ops as RemediateReport) };
      }
      return { text: o.json ? json : renderDiagnoseReport(ops as DiagnoseReport, o.color, runbookBase(o.env)), code: status };
    }
  }
}

/** SDK failures before the function ran: nothing is known about the database, so exit 3. */
function classifyAwsError(err: unknown, fn: PayloadFunction, name: string): AttemptOpsError {
  const e = err as { name?: string; message?: string };
  const kind = e.name ?? 'Error';
  const what = `invoke ${fn} (${name})`;
  if (kind === 'ResourceNotFoundException') {
    return new ConfigError(`${what}: no such function; set ${functionEnvVar(fn)}, pass --outputs FILE, or check --target`, { cause: err });
  }
  if (/Credentials|AccessDenied|UnrecognizedClient|ExpiredToken|InvalidSignature|InvalidClientTokenId|Region/i.test(`${kind} ${e.message ?? ''}`)) {
    return new ConfigError(`${what}: ${kind}: ${oneLine(e.message ?? '')}`, { cause: err });
  }
  return new AttemptOpsError('connection', `${what}: ${kind}: ${oneLine(e.message ?? '')}`, { cause: err });
}

export const invoke: Command = {
  name: 'invoke',
  usage: 'invoke <function> [--payload JSON] [--outputs FILE] [--region R] [--json]',
  summary: 'the deployed Lambda, printed as the local command prints',
  options: { payload: { type: 'string' }, outputs: { type: 'string' }, region: { type: 'string' } },
  positionals: 1,
  async run({ global, values, positionals, io }) {
    const fn = FUNCTIONS.find((f) => f === positionals[0]);
    if (!fn) throw new ConfigError(`invoke: unknown function ${JSON.stringify(positionals[0])} (functions: ${FUNCTIONS.join(', ')})`);
    const payload = validatedPayload(fn, values.payload as string | undefined);
    const region = values.region as string | undefined;
    if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d$/.test(region)) throw new ConfigError('--region must be an AWS region such as eu-west-1');
    const name = resolveFunctionName(fn, { env: io.env, outputs: values.outputs as string | undefined, target: global.target });

    const client = new LambdaClient(region ? { region } : {});
    let out;
    try {
      out = await client.send(new InvokeCommand({
        FunctionName: name,
        InvocationType: 'RequestResponse',
        Payload: new TextEncoder().encode(JSON.stringify(payload)),
        // The ops function records this as who asked (its audit row); the IAM caller is in CloudTrail.
        ClientContext: Buffer.from(JSON.stringify({ custom: { invokedBy: cliInvoker(io.env) } })).toString('base64'),
        ...(global.verbose ? { LogType: 'Tail' as const } : {}),
      }));
    } catch (err) {
      throw classifyAwsError(err, fn, name);
    } finally {
      client.destroy();
    }
    if (global.verbose && out.LogResult) io.stderr(Buffer.from(out.LogResult, 'base64').toString('utf8'));
    const text = out.Payload ? new TextDecoder().decode(out.Payload) : '';
    let answer: unknown;
    try {
      answer = text === '' ? null : JSON.parse(text);
    } catch {
      answer = text;
    }
    if (out.FunctionError) {
      const a = (answer ?? {}) as { errorType?: string; errorMessage?: string };
      const message = typeof a.errorMessage === 'string' ? a.errorMessage : typeof answer === 'string' ? answer : out.FunctionError;
      throw new AttemptOpsError('job', `${fn} (${name}) failed: ${a.errorType ? `${a.errorType}: ` : ''}${oneLine(message)}`);
    }
    const { text: rendered, code } = renderAnswer(fn, answer, { json: global.json, color: io.color, env: io.env });
    io.stdout(rendered);
    return code;
  },
};

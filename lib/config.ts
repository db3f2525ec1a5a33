/**
 * The deployment config: typed, validated with zod, and frozen. Every rule a deploy would
 * otherwise discover an hour later in CloudFormation (a partial secret ARN, a schedule CloudWatch
 * cannot alarm on, a statement timeout longer than its Lambda) fails synth here, with a message
 * that names the field.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { DEFAULT_APP_ROLE, DEFAULT_NAMESPACE, DEFAULT_SCHEMA, JOBS, type JobName } from '../functions/contract/index.ts';
import { SCHEDULES, type ScheduleId } from '../functions/contract/schedules.ts';

/** Log retention values CloudWatch Logs accepts (days). */
const RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] as const;

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const secretArn = z
  .string()
  .regex(SECRET_ARN, 'must be the complete Secrets Manager ARN, including the 6-character suffix (…:secret:name-AbCdEf)');
const roleArn = z.string().regex(/^arn:aws[a-z-]*:iam::\d{12}:role\/[A-Za-z0-9+=,.@_/-]+$/, 'must be an IAM role ARN');
const kmsKeyArn = z.string().regex(/^arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:key\/[A-Za-z0-9-]+$/, 'must be a KMS key ARN');
const httpsUrl = z.url({ protocol: /^https$/, error: 'must be an https:// URL' });
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_$]{0,62}$/, 'must be a plain PostgreSQL identifier');

/**
 * A schedule rate: "1 minute", "5 minutes", "1 hour", "1 day". Parsed to minutes. At most one
 * day, because the "job failing or silent" alarm's period is the rate and it looks at two periods.
 */
const rate = z
  .string()
  .regex(/^(1 (minute|hour|day)|([2-9]|[1-9]\d+) (minutes|hours|days))$/, 'must look like "1 minute", "15 minutes", "1 hour" or "1 day"')
  .transform((value) => {
    const [n, unit] = value.split(' ') as [string, string];
    const factor = unit.startsWith('minute') ? 1 : unit.startsWith('hour') ? 60 : 24 * 60;
    return Number(n) * factor;
  })
  .refine((minutes) => minutes <= 24 * 60, 'must be at most 1 day');

/** Per-function overrides of the defaults in FUNCTION_DEFAULTS. */
const functionSettings = z.strictObject({
  timeoutSeconds: z.int().min(10).max(900).optional(),
  memoryMb: z.int().min(128).max(10240).optional(),
  statementTimeoutMs: z.int().min(100).optional(),
  lockTimeoutMs: z.int().min(100).optional(),
  connectTimeoutMs: z.int().min(100).optional(),
});

const jobRecord = <T extends z.ZodType>(value: T) =>
  z.strictObject(Object.fromEntries(JOBS.map((j) => [j, value.optional()])) as Record<JobName, z.ZodOptional<T>>);

const scheduleRecord = z.strictObject(
  Object.fromEntries(SCHEDULES.map((s) => [s.id, rate.optional()])) as Record<ScheduleId, z.ZodOptional<typeof rate>>,
);

const target = z.strictObject({
  /**
   * The Database dimension; also part of stack, function, rule and alarm names (Lambda's
   * charset). 27 at most: EventBridge rule names ("AttemptOps-<name>-Schedules…") stop at 64.
   */
  name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,26}$/, 'must be 1 to 27 letters, digits, "_" or "-" (EventBridge rule names stop at 64 characters)'),
  vpc: z.strictObject({
    vpcId: z.string().regex(/^vpc-[0-9a-f]{8,17}$/, 'must be a VPC id (vpc-…)'),
    /** Private subnets that can reach the database (and Secrets Manager / CloudWatch). */
    subnets: z
      .array(
        z.strictObject({
          subnetId: z.string().regex(/^subnet-[0-9a-f]{8,17}$/, 'must be a subnet id (subnet-…)'),
          availabilityZone: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d[a-z]$/, 'must be an availability zone name'),
        }),
      )
      .min(1),
  }),
  database: z.strictObject({
    /** The RDS-format secret (host, port, username, password, dbname) every function falls back to. */
    secretArn,
    /** When the secrets are encrypted with a customer managed key. */
    secretKmsKeyArn: kmsKeyArn.optional(),
    /** The database's security group: the functions' group gets egress to it on `port`. */
    securityGroupId: z.string().regex(/^sg-[0-9a-f]{8,17}$/, 'must be a security group id (sg-…)'),
    port: z.int().min(1).max(65535).default(5432),
    /** Add the ingress rule on the database's group; false when another team owns that group. */
    manageIngress: z.boolean().default(true),
    /** AWS/RDS metrics: the instance (DBInstanceIdentifier) or Aurora cluster (DBClusterIdentifier). */
    instanceIdentifier: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/, 'must be an RDS instance identifier').optional(),
    clusterIdentifier: z.string().regex(/^[A-Za-z][A-Za-z0-9-]{0,62}$/, 'must be an RDS cluster identifier').optional(),
    tls: z.enum(['verify-full', 'require', 'disable']).default('verify-full'),
    schema: identifier.default(DEFAULT_SCHEMA),
    appRole: identifier.default(DEFAULT_APP_ROLE),
  }),
  /** A secret per function (least privilege in the database); unset ones use database.secretArn. */
  functionSecrets: jobRecord(secretArn).default({}),
  schedules: scheduleRecord.default({}),
  functions: jobRecord(functionSettings).default({}),
  alarms: z.strictObject({ noQueries: z.boolean().default(false) }).default({ noQueries: false }),
  /**
   * The hourly refresh-mv mode. `incremental` recomputes only the students a change touched (its
   * first run converts attempt_mv into a table fed by triggers: docs/INCREMENTAL_REFRESH.md).
   * @default 'concurrent' (REFRESH MATERIALIZED VIEW CONCURRENTLY, as the runbook does)
   */
  refreshMode: z.enum(['concurrent', 'incremental']).default('concurrent'),
  /**
   * Whether bootstrap installs the change capture (statement-level triggers on exam_results and
   * questions that log what each write touches). Off: the data-quality checks read recent rows,
   * and there is no incremental refresh.
   * @default true
   */
  capture: z.boolean().default(true),
});

export const configSchema = z.strictObject({
  /** Account and region to deploy to; unset means the CLI's current credentials decide. */
  env: z
    .strictObject({
      account: z.string().regex(/^\d{12}$/, 'must be a 12-digit account id').optional(),
      region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be a region name').optional(),
    })
    .default({}),
  namespace: z
    .string()
    .regex(/^[A-Za-z0-9._/#:-]{1,255}$/, 'must be a CloudWatch namespace')
    .refine((v) => !v.startsWith('AWS/'), 'must not start with AWS/')
    .default(DEFAULT_NAMESPACE),
  /** The runbook page; alarm descriptions and PagerDuty links append the section anchor. */
  runbookUrl: httpsUrl,
  logRetentionDays: z
    .int()
    .refine((d) => (RETENTION_DAYS as readonly number[]).includes(d), `must be one of ${RETENTION_DAYS.join(', ')}`)
    .default(30),
  paging: z
    .strictObject({
      /** Secret holding the Events API v2 routing key; without it no forwarder is deployed. */
      pagerDutyRoutingKeySecretArn: secretArn.optional(),
      /** When that secret is encrypted with a customer managed key. */
      pagerDutyRoutingKeySecretKmsKeyArn: kmsKeyArn.optional(),
      /** A PagerDuty "Amazon CloudWatch" integration URL, subscribed directly to critical and warning. */
      pagerDutyCloudWatchUrl: httpsUrl.optional(),
      /** Addresses subscribed to the info topic (P3), and told when paging itself fails. */
      infoEmails: z.array(z.email({ error: 'must be an email address' })).default([]),
    })
    .default({ infoEmails: [] }),
  /** Roles allowed to invoke the ops function (diagnose, remediate); nobody else is granted it. */
  opsInvokerRoleArns: z.array(roleArn).default([]),
  targets: z.array(target).min(1, 'must name at least one database'),
});

export type AttemptOpsConfig = z.infer<typeof configSchema>;
export type TargetConfig = AttemptOpsConfig['targets'][number];
export type FunctionSettings = Required<z.infer<typeof functionSettings>>;

/**
 * Defaults per job. Each statement timeout leaves the connect timeout plus headroom inside the
 * Lambda timeout, so a slow statement is cancelled by PostgreSQL (and reported) rather than the
 * function being killed mid-report. publish-metrics runs every minute, so it must finish well
 * within one; maintenance jobs may run long on large tables but never beyond Lambda's 15 minutes.
 */
export const FUNCTION_DEFAULTS: Record<JobName, FunctionSettings> = {
  'health-check': { timeoutSeconds: 900, memoryMb: 256, statementTimeoutMs: 120_000, lockTimeoutMs: 3_000, connectTimeoutMs: 5_000 },
  'publish-metrics': { timeoutSeconds: 55, memoryMb: 256, statementTimeoutMs: 20_000, lockTimeoutMs: 2_000, connectTimeoutMs: 5_000 },
  'refresh-mv': { timeoutSeconds: 900, memoryMb: 256, statementTimeoutMs: 780_000, lockTimeoutMs: 10_000, connectTimeoutMs: 5_000 },
  analyze: { timeoutSeconds: 900, memoryMb: 256, statementTimeoutMs: 780_000, lockTimeoutMs: 10_000, connectTimeoutMs: 5_000 },
  // Below 15 minutes so the deploy-time invoker (limited to 15 minutes) outlives it.
  bootstrap: { timeoutSeconds: 840, memoryMb: 256, statementTimeoutMs: 600_000, lockTimeoutMs: 10_000, connectTimeoutMs: 5_000 },
  ops: { timeoutSeconds: 300, memoryMb: 256, statementTimeoutMs: 120_000, lockTimeoutMs: 5_000, connectTimeoutMs: 5_000 },
};

/** The deploy-time invoker needs a minute more than bootstrap to report back. */
export const BOOTSTRAP_MAX_SECONDS = 840;

/** What the handlers keep between their last statement and Lambda's hard stop. */
export const LAMBDA_HEADROOM_MS = 5_000;

export function functionSettingsFor(t: TargetConfig, job: JobName): FunctionSettings {
  return { ...FUNCTION_DEFAULTS[job], ...t.functions[job] };
}

export function scheduleRateMinutes(t: TargetConfig, id: ScheduleId): number {
  return t.schedules[id] ?? SCHEDULES.find((s) => s.id === id)!.defaultRateMinutes;
}

export function secretArnFor(t: TargetConfig, job: JobName): string {
  return t.functionSecrets[job] ?? t.database.secretArn;
}

export class ConfigValidationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigValidationError';
  }
}

function pathOf(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, p) => (typeof p === 'number' ? `${acc}[${p}]` : acc ? `${acc}.${String(p)}` : String(p)), '');
}

/** Cross-field rules zod's shape cannot say. Returns [path, message] pairs. */
function crossCheck(config: AttemptOpsConfig): [string, string][] {
  const problems: [string, string][] = [];
  const seen = new Set<string>();
  config.targets.forEach((t, i) => {
    const at = `targets[${i}]`;
    // Stack names turn "_" into "-" (lib/app.ts), so a_b and a-b would be one stack.
    const key = t.name.toLowerCase().replace(/_/g, '-');
    if (seen.has(key)) problems.push([`${at}.name`, `"${t.name}" is used by another target (names differing only in case or "_" against "-" are one stack)`]);
    seen.add(key);
    if (!t.capture && t.refreshMode === 'incremental') {
      problems.push([`${at}.refreshMode`, 'incremental needs the change capture: set capture to true, or refreshMode to concurrent']);
    }
    const db = t.database;
    if (!db.instanceIdentifier === !db.clusterIdentifier) {
      problems.push([`${at}.database`, 'must set exactly one of instanceIdentifier and clusterIdentifier (the AWS/RDS alarms need it)']);
    }
    for (const job of JOBS) {
      const s = functionSettingsFor(t, job);
      const budget = s.statementTimeoutMs + s.connectTimeoutMs + LAMBDA_HEADROOM_MS;
      if (budget > s.timeoutSeconds * 1000) {
        problems.push([
          `${at}.functions.${job}`,
          `statementTimeoutMs (${s.statementTimeoutMs}) + connectTimeoutMs (${s.connectTimeoutMs}) + ${LAMBDA_HEADROOM_MS} ms headroom must fit in timeoutSeconds (${s.timeoutSeconds})`,
        ]);
      }
      if (s.lockTimeoutMs > s.statementTimeoutMs) {
        problems.push([`${at}.functions.${job}.lockTimeoutMs`, 'must not exceed statementTimeoutMs']);
      }
    }
    if (functionSettingsFor(t, 'bootstrap').timeoutSeconds > BOOTSTRAP_MAX_SECONDS) {
      problems.push([`${at}.functions.bootstrap.timeoutSeconds`, `must be at most ${BOOTSTRAP_MAX_SECONDS}: the deploy-time invoker waits for it within Lambda's 15 minutes`]);
    }
    const publish = scheduleRateMinutes(t, 'publish-metrics') * 60;
    if (functionSettingsFor(t, 'publish-metrics').timeoutSeconds >= publish) {
      problems.push([`${at}.functions.publish-metrics.timeoutSeconds`, 'must be shorter than the publish-metrics rate, or runs overlap']);
    }
  });
  return problems;
}

/** Validate raw config. `source` names where it came from, for the message. */
export function parseConfig(raw: unknown, source = 'config'): Readonly<AttemptOpsConfig> {
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${pathOf(issue.path) || '(root)'}: ${issue.message}`);
    throw new ConfigValidationError(`invalid attempt-ops config (${source}):\n${lines.join('\n')}`);
  }
  const problems = crossCheck(parsed.data);
  if (problems.length > 0) {
    throw new ConfigValidationError(`invalid attempt-ops config (${source}):\n${problems.map(([p, m]) => `  ${p}: ${m}`).join('\n')}`);
  }
  return Object.freeze(parsed.data);
}

/** Read and validate a JSON config file. */
export function loadConfigFile(path: string): Readonly<AttemptOpsConfig> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new ConfigValidationError(`cannot read attempt-ops config file ${path}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigValidationError(`attempt-ops config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return parseConfig(json, path);
}

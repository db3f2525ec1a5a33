/**
 * Runtime configuration, read once (at cold start in Lambda) into a frozen object. A missing or
 * malformed value fails with a message that names the variable, never its value.
 */
import { DEFAULT_APP_ROLE, DEFAULT_NAMESPACE, DEFAULT_SCHEMA, DEFAULT_TARGET, ENV } from '../contract/index.ts';
import { ConfigError } from '../db/errors.ts';
import { validateIdentifier } from '../db/identifiers.ts';
import type { TlsMode } from '../db/connection.ts';
import type { SessionTimeouts } from '../db/pool.ts';
import type { LogLevel } from './log.ts';

export type MetricsMode = 'none' | 'stdout' | 'cloudwatch';

export interface RuntimeConfig {
  readonly secretArn?: string;
  readonly tls: TlsMode;
  readonly caFile?: string;
  readonly target: string;
  readonly namespace: string;
  readonly schema: string;
  readonly appRole: string;
  readonly metrics: MetricsMode;
  readonly timeouts: Partial<SessionTimeouts>;
  readonly logLevel: LogLevel;
  /** bootstrap installs the change capture (true) or turns it off. */
  readonly capture: boolean;
}

function oneOf<T extends string>(env: NodeJS.ProcessEnv, name: string, allowed: readonly T[], fallback: T): T {
  const v = env[name];
  if (v === undefined || v === '') return fallback;
  if (!(allowed as readonly string[]).includes(v)) throw new ConfigError(`${name} must be one of ${allowed.join(', ')}`);
  return v as T;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  if (!/^\d{1,9}$/.test(v) || Number(v) <= 0) throw new ConfigError(`${name} must be a positive whole number of milliseconds`);
  return Number(v);
}

export function validateTarget(value: string, what: string): string {
  // CloudWatch dimension values: 1 to 255 characters; we keep to a readable subset.
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(value)) throw new ConfigError(`${what} must be 1 to 64 letters, digits, '.', '_' or '-'`);
  return value;
}

export function validateNamespace(value: string, what: string): string {
  if (!/^[A-Za-z0-9._\/#:-]{1,255}$/.test(value) || value.startsWith('AWS/')) throw new ConfigError(`${what} is not a valid CloudWatch namespace`);
  return value;
}

/** Lambda configuration from the environment the stack sets. */
export function readLambdaConfig(env: NodeJS.ProcessEnv = process.env): RuntimeConfig {
  const secretArn = env[ENV.dbSecretArn];
  if (!secretArn) throw new ConfigError(`${ENV.dbSecretArn} is not set`);
  if (!/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/.test(secretArn)) {
    throw new ConfigError(`${ENV.dbSecretArn} is not a Secrets Manager secret ARN`);
  }
  return Object.freeze({
    secretArn,
    tls: oneOf(env, ENV.dbTls, ['disable', 'require', 'verify-full'] as const, 'verify-full'),
    caFile: env[ENV.dbCaFile] || undefined,
    target: validateTarget(env[ENV.target] || DEFAULT_TARGET, ENV.target),
    namespace: validateNamespace(env[ENV.namespace] || DEFAULT_NAMESPACE, ENV.namespace),
    schema: validateIdentifier(env[ENV.schema] || DEFAULT_SCHEMA, ENV.schema),
    appRole: validateIdentifier(env[ENV.appRole] || DEFAULT_APP_ROLE, ENV.appRole),
    metrics: oneOf(env, ENV.metrics, ['none', 'stdout', 'cloudwatch'] as const, 'cloudwatch'),
    timeouts: Object.freeze({
      statementTimeoutMs: positiveInt(env, ENV.statementTimeoutMs),
      lockTimeoutMs: positiveInt(env, ENV.lockTimeoutMs),
      connectTimeoutMs: positiveInt(env, ENV.connectTimeoutMs),
    }),
    logLevel: oneOf(env, ENV.logLevel, ['debug', 'info', 'warn', 'error'] as const, 'info'),
    capture: oneOf(env, ENV.capture, ['on', 'off'] as const, 'on') === 'on',
  });
}

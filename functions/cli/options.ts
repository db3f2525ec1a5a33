/**
 * Global options (CONTRACT.md section 2), validated into one frozen object. Every value from
 * outside is checked here, before a command opens a connection.
 */
import { DEFAULT_APP_ROLE, DEFAULT_NAMESPACE, DEFAULT_SCHEMA, DEFAULT_TARGET, ENV } from '../contract/index.ts';
import { fromPgEnv, fromUrl, type ConnectionSettings } from '../db/connection.ts';
import { ConfigError } from '../db/errors.ts';
import { validateIdentifier } from '../db/identifiers.ts';
import { validateNamespace, validateTarget, type MetricsMode } from '../runtime/config.ts';
import { didYouMean } from './suggest.ts';

export const GLOBAL_OPTIONS = {
  'database-url': { type: 'string' },
  'app-role': { type: 'string' },
  schema: { type: 'string' },
  metrics: { type: 'string' },
  target: { type: 'string' },
  namespace: { type: 'string' },
  json: { type: 'boolean' },
  verbose: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export interface GlobalOptions {
  readonly appRole: string;
  readonly schema: string;
  readonly metrics: MetricsMode;
  readonly target: string;
  readonly namespace: string;
  readonly json: boolean;
  readonly verbose: boolean;
  /** Resolved lazily: `demo` and `invoke` need no database URL. */
  readonly connection: () => ConnectionSettings;
}

export function readGlobalOptions(values: Record<string, unknown>, env: NodeJS.ProcessEnv): GlobalOptions {
  const str = (k: string) => (typeof values[k] === 'string' ? (values[k] as string) : undefined);
  const metrics = str('metrics') ?? 'none';
  if (!['none', 'stdout', 'cloudwatch'].includes(metrics)) throw new ConfigError('--metrics must be none, stdout or cloudwatch');
  const url = str('database-url');
  return Object.freeze({
    appRole: validateIdentifier(str('app-role') ?? DEFAULT_APP_ROLE, '--app-role'),
    schema: validateIdentifier(str('schema') ?? DEFAULT_SCHEMA, '--schema'),
    metrics: metrics as MetricsMode,
    target: validateTarget(str('target') ?? DEFAULT_TARGET, '--target'),
    namespace: validateNamespace(str('namespace') ?? env[ENV.namespace] ?? DEFAULT_NAMESPACE, '--namespace'),
    json: values.json === true,
    verbose: values.verbose === true,
    connection: () => {
      if (url !== undefined) return fromUrl(url, '--database-url');
      if (env.DATABASE_URL) return fromUrl(env.DATABASE_URL, 'DATABASE_URL');
      return fromPgEnv(env);
    },
  });
}

/** "a,b,c" into a list, each item checked against the allowed names. */
export function listOption<T extends string>(value: string | undefined, flag: string, allowed: readonly T[]): T[] | undefined {
  if (value === undefined) return undefined;
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  if (items.length === 0) throw new ConfigError(`${flag} needs at least one name`);
  const unknown = items.filter((i) => !(allowed as readonly string[]).includes(i));
  if (unknown.length > 0) {
    const hint = unknown.length === 1 ? didYouMean(unknown[0]!, allowed) : '';
    throw new ConfigError(`${flag}: unknown name ${unknown.join(', ')}${hint} (known: ${allowed.join(', ')})`);
  }
  return [...new Set(items)] as T[];
}

export function oneOfOption<T extends string>(value: string | undefined, flag: string, allowed: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(value)) throw new ConfigError(`${flag} must be one of ${allowed.join(', ')}${didYouMean(value, allowed)}`);
  return value as T;
}

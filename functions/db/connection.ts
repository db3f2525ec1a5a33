/**
 * Where the database is: a URL (flag or DATABASE_URL), the standard PG* variables, or, in Lambda,
 * a Secrets Manager secret in the RDS format. Every path is validated, and no message ever
 * repeats a password or a whole URL.
 */
import { readFileSync } from 'node:fs';
import { parse as parseConnectionString } from 'pg-connection-string';
import * as z from 'zod/mini';
import { ConfigError } from './errors.ts';

export interface TlsSettings {
  /** Verify the server certificate against the CA (the RDS bundle in Lambda). */
  rejectUnauthorized: boolean;
  ca?: string;
  servername?: string;
}

export interface ConnectionSettings {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  database?: string;
  ssl?: TlsSettings | false;
  /** libpq's connect_timeout (URL parameter or PGCONNECT_TIMEOUT), in ms. */
  connectTimeoutMs?: number;
  /** How the settings were found, for messages: never the settings themselves. */
  source: 'url' | 'env' | 'secret';
}

export type TlsMode = 'disable' | 'require' | 'verify-full';

function tlsFor(mode: TlsMode | undefined, caFile: string | undefined): TlsSettings | false | undefined {
  if (mode === undefined) return undefined;
  if (mode === 'disable') return false;
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile, 'utf8');
    } catch {
      throw new ConfigError(`DB_CA_FILE: cannot read the CA bundle at ${caFile}`);
    }
  }
  // 'require' encrypts without verifying; verify-full is the default in Lambda.
  return { rejectUnauthorized: mode === 'verify-full', ...(ca ? { ca } : {}) };
}

/** Parse and validate a postgres:// URL. The error never echoes the URL: it may hold a password. */
export function fromUrl(url: string, what: string, tls?: TlsMode, caFile?: string): ConnectionSettings {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new ConfigError(`${what} is not a valid URL (expected postgres://user:password@host:port/database)`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new ConfigError(`${what} must start with postgres:// or postgresql://`);
  }
  if (!parsed.hostname && !parsed.searchParams.get('host')) throw new ConfigError(`${what} names no host`);
  if (parsed.port && !/^\d{1,5}$/.test(parsed.port)) throw new ConfigError(`${what} has an invalid port`);
  const cs = parseConnectionString(url);
  const sslmode = parsed.searchParams.get('sslmode');
  let ssl: TlsSettings | false | undefined = tlsFor(tls, caFile);
  if (ssl === undefined && sslmode) {
    if (sslmode === 'disable') ssl = false;
    else if (sslmode === 'verify-full' || sslmode === 'verify-ca') ssl = { rejectUnauthorized: true };
    else if (sslmode === 'require' || sslmode === 'prefer' || sslmode === 'no-verify') ssl = { rejectUnauthorized: false };
    else throw new ConfigError(`${what} has an unknown sslmode`);
  }
  const connectTimeout = parsed.searchParams.get('connect_timeout');
  if (connectTimeout !== null && !/^\d{1,4}$/.test(connectTimeout)) throw new ConfigError(`${what} has an invalid connect_timeout (whole seconds)`);
  return {
    ...(connectTimeout ? { connectTimeoutMs: Number(connectTimeout) * 1000 } : {}),
    host: cs.host ?? undefined,
    port: cs.port ? Number(cs.port) : undefined,
    user: cs.user ?? undefined,
    password: cs.password ?? undefined,
    database: cs.database ?? undefined,
    ...(ssl !== undefined ? { ssl } : {}),
    source: 'url',
  };
}

/** The standard libpq variables, validated where they can be wrong. */
export function fromPgEnv(env: NodeJS.ProcessEnv): ConnectionSettings {
  const port = env.PGPORT;
  if (port !== undefined && port !== '' && !/^\d{1,5}$/.test(port)) throw new ConfigError('PGPORT must be a port number');
  const mode = env.PGSSLMODE;
  let ssl: TlsSettings | false | undefined;
  if (mode) {
    if (mode === 'disable') ssl = false;
    else if (mode === 'verify-full' || mode === 'verify-ca') ssl = { rejectUnauthorized: true };
    else if (mode === 'require' || mode === 'prefer') ssl = { rejectUnauthorized: false };
    else throw new ConfigError('PGSSLMODE has an unknown value');
    if (ssl && env.PGSSLROOTCERT) {
      try {
        ssl.ca = readFileSync(env.PGSSLROOTCERT, 'utf8');
      } catch {
        throw new ConfigError(`PGSSLROOTCERT: cannot read ${env.PGSSLROOTCERT}`);
      }
    }
  }
  const connectTimeout = env.PGCONNECT_TIMEOUT;
  if (connectTimeout && !/^\d{1,4}$/.test(connectTimeout)) throw new ConfigError('PGCONNECT_TIMEOUT must be whole seconds');
  return {
    ...(connectTimeout ? { connectTimeoutMs: Number(connectTimeout) * 1000 } : {}),
    host: env.PGHOST || undefined,
    port: port ? Number(port) : undefined,
    user: env.PGUSER || undefined,
    password: env.PGPASSWORD || undefined,
    database: env.PGDATABASE || undefined,
    ...(ssl !== undefined ? { ssl } : {}),
    source: 'env',
  };
}

/** The RDS secret format. `dbname` is optional in RDS-generated secrets. */
const rdsSecret = z.object({
  host: z.string().check(z.minLength(1)),
  port: z.optional(z.union([z.int().check(z.gte(1), z.lte(65535)), z.string().check(z.regex(/^\d{1,5}$/))])),
  username: z.string().check(z.minLength(1)),
  password: z.string().check(z.minLength(1)),
  dbname: z.optional(z.string().check(z.minLength(1))),
});

/** Validate a secret string. Messages name the missing or malformed field, never a value. */
export function fromSecretString(secretString: string | undefined, secretId: string, tls: TlsMode, caFile?: string): ConnectionSettings {
  if (secretString === undefined || secretString === '') {
    throw new ConfigError(`secret ${secretId} has no SecretString`);
  }
  let json: unknown;
  try {
    json = JSON.parse(secretString);
  } catch {
    throw new ConfigError(`secret ${secretId} is not valid JSON`);
  }
  const parsed = rdsSecret.safeParse(json);
  if (!parsed.success) {
    const fields = [...new Set(parsed.error.issues.map((i) => String(i.path[0] ?? 'secret')))];
    throw new ConfigError(`secret ${secretId} is missing or has a malformed field: ${fields.join(', ')}`);
  }
  const s = parsed.data;
  const ssl = tlsFor(tls, caFile);
  return {
    host: s.host,
    port: s.port === undefined ? 5432 : Number(s.port),
    user: s.username,
    password: s.password,
    database: s.dbname ?? 'postgres',
    ...(ssl !== undefined ? { ssl } : {}),
    source: 'secret',
  };
}

/** Where a connection points, for messages: host, port and database, never credentials. */
export function describeTarget(s: ConnectionSettings): string {
  const host = s.host ?? 'localhost';
  return `${host}:${s.port ?? 5432}/${s.database ?? s.user ?? ''}`;
}

/**
 * The only place a pg pool is made. One pool per process (per Lambda container), created lazily;
 * every session carries explicit timeouts and application_name = attempt-ops/<job>, so our
 * sessions are recognisable in pg_stat_activity and never wait longer than the job may.
 */
import pg from 'pg';
import type { ConnectionSettings } from './connection.ts';
import { classifyDbError } from './errors.ts';
import { quoteIdent } from './identifiers.ts';
import { OWN_SESSION_JOBS, OWN_SESSION_REGISTER_SQL, isMissingRegistry } from '../sql/own-sessions.ts';

export interface SessionTimeouts {
  /** statement_timeout for every statement of the session (ms). */
  statementTimeoutMs: number;
  /** lock_timeout: we never queue behind DDL for long (ms). */
  lockTimeoutMs: number;
  /** How long to wait for a connection before calling the database unreachable (ms). */
  connectTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: SessionTimeouts = {
  statementTimeoutMs: 30_000,
  lockTimeoutMs: 3_000,
  connectTimeoutMs: 5_000,
};

export interface PoolOptions {
  job: string;
  timeouts?: Partial<SessionTimeouts>;
  /** Small on purpose: the checks must not become the load they watch. */
  max?: number;
  /** Where pool-level errors go (an idle client whose backend died); never a secret. */
  onError?: (message: string) => void;
}

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export function createPool(settings: ConnectionSettings, options: PoolOptions): pg.Pool {
  const timeouts: SessionTimeouts = {
    statementTimeoutMs: options.timeouts?.statementTimeoutMs ?? DEFAULT_TIMEOUTS.statementTimeoutMs,
    lockTimeoutMs: options.timeouts?.lockTimeoutMs ?? DEFAULT_TIMEOUTS.lockTimeoutMs,
    connectTimeoutMs: options.timeouts?.connectTimeoutMs ?? settings.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectTimeoutMs,
  };
  const pool = new pg.Pool({
    host: settings.host,
    port: settings.port,
    user: settings.user,
    password: settings.password,
    database: settings.database,
    ...(settings.ssl !== undefined ? { ssl: settings.ssl } : {}),
    application_name: `attempt-ops/${options.job}`,
    statement_timeout: timeouts.statementTimeoutMs,
    lock_timeout: timeouts.lockTimeoutMs,
    // A session left idle in a transaction by a bug must not hold locks on the view's tables.
    idle_in_transaction_session_timeout: Math.max(timeouts.statementTimeoutMs, 10_000),
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    // Guards against a server that accepted the connection and then went silent: pg gives up a
    // little after the server-side timeout would have fired.
    query_timeout: timeouts.statementTimeoutMs + QUERY_GUARD_MARGIN_MS,
    max: options.max ?? 3,
    // The long jobs' sessions register as ours (functions/sql/own-sessions.ts), so long_running
    // and cancel-long-running leave them alone: application_name alone proves nothing. Done before
    // the pool hands a new session out; it never fails the session (a database without the
    // registry yet, not bootstrapped with it, is fine; anything else is reported).
    ...(OWN_SESSION_JOBS.includes(options.job) ? { verify: registerOwnSession(options.job, options.onError) } : {}),
    idleTimeoutMillis: 10_000,
    keepAlive: true,
    allowExitOnIdle: true,
  });
  // An idle client whose backend was terminated emits here; without a listener it would crash
  // the process. The pool drops that client by itself.
  pool.on('error', (err) => options.onError?.(`idle database client dropped: ${classifyDbError(err).message}`));
  return pool;
}

function registerOwnSession(job: string, onError?: (message: string) => void) {
  return (client: pg.PoolClient, done: (err?: Error) => void): void => {
    client.query(OWN_SESSION_REGISTER_SQL, [job]).then(
      () => done(),
      (err: unknown) => {
        if (!isMissingRegistry(err)) onError?.(`session not registered as ${job}'s own: ${classifyDbError(err).message}`);
        done();
      },
    );
  };
}

export interface TransactionOptions {
  readOnly?: boolean;
  statementTimeoutMs?: number;
  lockTimeoutMs?: number;
}

/**
 * Run fn on one dedicated client outside any transaction (CREATE INDEX CONCURRENTLY, advisory
 * locks). A client whose backend died, or that fn says is spoilt, is destroyed rather than
 * returned to the pool.
 */
export async function withClient<T>(pool: pg.Pool, fn: (client: pg.PoolClient, spoil: (err: Error) => void) => Promise<T>): Promise<T> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw classifyDbError(err);
  }
  let broken: Error | undefined;
  // A checked-out client whose backend dies emits 'error'; unheard, it would crash the process.
  // The failing query rejects anyway, so the error is only remembered to destroy the client.
  const spoil = (err: Error) => {
    broken ??= err;
  };
  client.on('error', spoil);
  try {
    return await fn(client, spoil);
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    // A connection-level failure leaves the session in an unknown state: never reuse it.
    if (code.startsWith('08') || code.startsWith('57P') || !code) spoil(err as Error);
    throw err;
  } finally {
    client.off('error', spoil);
    client.release(broken);
  }
}

/** How long after statement_timeout would have fired pg gives up on a silent server. */
const QUERY_GUARD_MARGIN_MS = 5_000;

/** Run fn in one transaction on one client, with SET LOCAL timeouts that end with it. */
export async function inTransaction<T>(
  pool: pg.Pool,
  options: TransactionOptions,
  fn: (client: pg.PoolClient) => Promise<T>,
): Promise<T> {
  return withClient(pool, async (client, spoil) => {
    // The client-side guard against a silent server (query_timeout) follows this transaction's
    // statement_timeout: a full check given 2 minutes must not be cut at the session's 30 s + 5 s.
    const params = (client as unknown as { connectionParameters: { query_timeout?: number } }).connectionParameters;
    const sessionGuard = params.query_timeout;
    if (options.statementTimeoutMs !== undefined && sessionGuard !== undefined) {
      params.query_timeout = Math.max(sessionGuard, Math.round(options.statementTimeoutMs) + QUERY_GUARD_MARGIN_MS);
    }
    try {
      await client.query(options.readOnly ? 'BEGIN READ ONLY' : 'BEGIN');
      if (options.statementTimeoutMs !== undefined) {
        await client.query(`SET LOCAL statement_timeout = ${Math.max(1, Math.round(options.statementTimeoutMs))}`);
      }
      if (options.lockTimeoutMs !== undefined) {
        await client.query(`SET LOCAL lock_timeout = ${Math.max(1, Math.round(options.lockTimeoutMs))}`);
      }
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (err) {
      // A session that cannot even roll back is not handed out again.
      await client.query('ROLLBACK').catch(spoil);
      throw err;
    } finally {
      params.query_timeout = sessionGuard;
    }
  });
}

/**
 * A single client for setup work outside any job (the demo seeding its own database). Jobs use the
 * pool; this exists so that pg clients are still made in one place.
 */
export async function connectClient(settings: ConnectionSettings, applicationName = 'attempt-ops/setup'): Promise<pg.Client> {
  const client = new pg.Client({
    host: settings.host, port: settings.port, user: settings.user, password: settings.password, database: settings.database,
    ...(settings.ssl !== undefined ? { ssl: settings.ssl } : {}),
    application_name: applicationName,
    connectionTimeoutMillis: settings.connectTimeoutMs ?? DEFAULT_TIMEOUTS.connectTimeoutMs,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
  } catch (err) {
    throw classifyDbError(err);
  }
  return client;
}

/** SET ROLE for a session, quoted. */
export function setRoleSql(role: string): string {
  return `SET ROLE ${quoteIdent(role)}`;
}

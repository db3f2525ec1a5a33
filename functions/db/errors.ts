/**
 * The few named errors attempt-ops raises. Errors from pg and the AWS SDK are classified here, at
 * the boundary, so jobs, the CLI and the handlers decide on a class, never on a message string.
 * Messages name what is wrong and never a secret's value.
 */

export type ErrorKind =
  | 'config' // bad configuration, arguments or payload: exit 3
  | 'connection' // database unreachable or the connection was lost: exit 3
  | 'authentication' // wrong password or role: exit 3
  | 'timeout' // statement_timeout (SQLSTATE 57014)
  | 'lock-timeout' // lock_timeout (SQLSTATE 55P03)
  | 'permission' // insufficient privilege (SQLSTATE 42501)
  | 'missing-object' // a relation the job needs is absent: names the fix
  | 'metrics' // publishing metrics failed after retries
  | 'job'; // anything else a job could not do: exit 2

export class AttemptOpsError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = 'AttemptOpsError';
  }
  /** Exit codes from CONTRACT.md section 2: unreachable or misconfigured is unknown (3). */
  get exitCode(): 2 | 3 {
    return this.kind === 'config' || this.kind === 'connection' || this.kind === 'authentication' ? 3 : 2;
  }
}

export class ConfigError extends AttemptOpsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('config', message, options);
    this.name = 'ConfigError';
  }
}

interface PgLikeError {
  code?: string;
  message?: string;
  errno?: number;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);
/** Node's TLS verification failures: the server was reached, its certificate was not trusted. */
const TLS_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Turn whatever pg threw into an AttemptOpsError, keeping the original as `cause`. */
export function classifyDbError(err: unknown, what = 'database'): AttemptOpsError {
  if (err instanceof AttemptOpsError) return err;
  const e = (err ?? {}) as PgLikeError;
  const code = e.code ?? '';
  const message = typeof e.message === 'string' ? e.message : String(err);
  if (code === '57014') return new AttemptOpsError('timeout', `${what}: statement timeout (${message})`, { cause: err });
  if (code === '55P03') return new AttemptOpsError('lock-timeout', `${what}: lock timeout, another session holds a conflicting lock`, { cause: err });
  // No password given (pg's words, or the server's): said plainly, before 28P01's "failed".
  if (/client password must be a string|empty password returned by client|no password supplied/i.test(message)) {
    return new AttemptOpsError('authentication', `${what}: the server asks for a password and none was given (add it to the URL, or set PGPASSWORD or ~/.pgpass)`, { cause: err });
  }
  if (code === '28P01' || code === '28000') return new AttemptOpsError('authentication', `${what}: authentication failed (${message})`, { cause: err });
  if (code === '42501') return new AttemptOpsError('permission', `${what}: permission denied (${message})`, { cause: err });
  if (code === '3D000') return new AttemptOpsError('connection', `${what}: ${message}`, { cause: err });
  if (code === '42P01' || code === '3F000') return new AttemptOpsError('missing-object', `${what}: ${message}`, { cause: err });
  if (code === '57P01' || code === '57P02' || code === '57P03' || code.startsWith('08')) {
    return new AttemptOpsError('connection', `${what}: connection lost (${message})`, { cause: err });
  }
  if (CONNECTION_CODES.has(code)) return new AttemptOpsError('connection', `${what}: cannot connect (${code})`, { cause: err });
  if (TLS_CODES.has(code) || /does not support SSL|self[- ]signed certificate|unable to verify|certificate has expired|Hostname\/IP does not match/i.test(message)) {
    return new AttemptOpsError('connection', `${what}: TLS failed (${code || message}): check sslmode and the CA (sslrootcert)`, { cause: err });
  }
  if (/timeout expired|Connection terminated|connect ETIMEDOUT|Connection terminated unexpectedly/i.test(message)) {
    return new AttemptOpsError('connection', `${what}: cannot connect (${message})`, { cause: err });
  }
  return new AttemptOpsError('job', `${what}: ${message}`, { cause: err });
}

/** One line for a person: no stack, no cause chain. */
export function oneLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/\s+/g, ' ').trim();
}

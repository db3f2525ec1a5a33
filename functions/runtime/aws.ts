/**
 * What every AWS SDK client of the functions shares: network timeouts and bounded retries, one
 * clear error when an endpoint cannot be reached, and the secrets cache with a max age.
 *
 * Without timeouts an SDK call to an endpoint a private subnet cannot reach (no NAT route, no
 * interface endpoint) hangs until the Lambda's own timeout, 15 minutes for health-check. With
 * these, it fails within a few seconds, naming the service and the host.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
// Types only (erased), from the package every SDK client is built on.
import type { BuildMiddleware, MiddlewareStack } from '@smithy/types';
import { ENV } from '../contract/index.ts';
import { AttemptOpsError, ConfigError } from '../db/errors.ts';

export type AwsService = 'Secrets Manager' | 'CloudWatch' | 'Lambda';

/**
 * Worst case for an unreachable endpoint: two attempts of connectionTimeoutMs plus the SDK's
 * jittered backoff between them, about 4 s. requestTimeout bounds an endpoint that accepts the
 * connection and then never answers (about 6 s for two attempts); our calls are small (a
 * secret, one metric batch) and take well under a second when the service answers.
 */
export const SDK_NETWORK = Object.freeze({ connectionTimeoutMs: 2_000, requestTimeoutMs: 3_000, maxAttempts: 2 });

/**
 * The configuration every client is made with. The handler is given as options, not as a
 * NodeHttpHandler instance: the SDK builds it from the runtime's own @smithy/node-http-handler,
 * so the bundles carry no copy. throwOnRequestTimeout: recent handlers only warn without it.
 */
export function sdkClientConfig(overrides: { maxAttempts?: number } = {}) {
  return {
    maxAttempts: overrides.maxAttempts ?? SDK_NETWORK.maxAttempts,
    requestHandler: {
      connectionTimeout: SDK_NETWORK.connectionTimeoutMs,
      requestTimeout: SDK_NETWORK.requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  };
}

const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);
const HINT = 'in private subnets, add an interface endpoint or a NAT route';

/** Why a request never got an answer, or undefined when the service did answer. */
function unreachableReason(err: unknown): string | undefined {
  const e = (err ?? {}) as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  if (e.$metadata?.httpStatusCode) return undefined;
  const seconds = (ms: number) => `${ms / 1000} s`;
  if (e.name === 'TimeoutError') {
    // node-http-handler names both timeouts TimeoutError; only the request timeout's message says so.
    return /requestTimeout/.test(e.message ?? '')
      ? `accepted the connection but did not answer within ${seconds(SDK_NETWORK.requestTimeoutMs)}`
      : `within ${seconds(SDK_NETWORK.connectionTimeoutMs)}`;
  }
  if (e.code && UNREACHABLE_CODES.has(e.code)) return `(${e.code})`;
  return undefined;
}

/** The message for an endpoint that cannot be reached; it names the host, never a request's content. */
export function unreachableMessage(service: AwsService, host: string, reason: string): string {
  return reason.startsWith('accepted')
    ? `${service} (${host}) ${reason}`
    : `cannot reach ${service} (${host}) ${reason}: ${HINT}`;
}

interface HostRequest {
  hostname?: string;
  port?: number;
}

/**
 * Turn "could not reach the endpoint" into one AttemptOpsError (kind connection) naming the
 * service and host. In the build step the request already has its resolved host, and the SDK's
 * retries (finalizeRequest) run inside it, so this sees the last attempt's error only.
 */
export function nameUnreachableEndpoint<C extends { middlewareStack: MiddlewareStack<any, any> }>(client: C, service: AwsService): C {
  const middleware: BuildMiddleware<object, object> = (next) => async (args) => {
    try {
      return await next(args);
    } catch (err) {
      const reason = unreachableReason(err);
      if (reason === undefined) throw err;
      const r = (args.request ?? {}) as HostRequest;
      const host = r.port && r.port !== 443 ? `${r.hostname}:${r.port}` : String(r.hostname);
      throw new AttemptOpsError('connection', unreachableMessage(service, host, reason), { cause: err });
    }
  };
  client.middlewareStack.add(middleware, { step: 'build', name: 'attemptOpsUnreachableEndpoint' });
  return client;
}

export function isUnreachableEndpoint(err: unknown): boolean {
  return err instanceof AttemptOpsError && err.kind === 'connection' && unreachableReason(err.cause) !== undefined;
}

const DEFAULT_SECRET_MAX_AGE_SECONDS = 300;

/** How long a secret read from Secrets Manager is used before it is read again. */
export function readSecretMaxAgeMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = env[ENV.secretMaxAgeSeconds];
  if (v === undefined || v === '') return DEFAULT_SECRET_MAX_AGE_SECONDS * 1000;
  if (!/^\d{1,5}$/.test(v) || Number(v) > 86_400) throw new ConfigError(`${ENV.secretMaxAgeSeconds} must be a whole number of seconds from 0 to 86400`);
  return Number(v) * 1000;
}

let secretsClient: SecretsManagerClient | undefined;
let maxAgeMs: number | undefined;
const cache = new Map<string, { readAt: number; value: Promise<string | undefined> }>();

async function fetchSecretString(secretId: string): Promise<string | undefined> {
  // Loaded on first use: the SDK's module loading stays out of the cold start's init phase.
  const { GetSecretValueCommand, SecretsManagerClient } = await import('@aws-sdk/client-secrets-manager');
  secretsClient ??= nameUnreachableEndpoint(new SecretsManagerClient(sdkClientConfig()), 'Secrets Manager');
  try {
    return (await secretsClient.send(new GetSecretValueCommand({ SecretId: secretId }))).SecretString;
  } catch (err) {
    if (isUnreachableEndpoint(err)) throw err;
    const name = (err as { name?: string }).name ?? 'Error';
    throw new ConfigError(`cannot read secret ${secretId} (${name})`, { cause: err });
  }
}

/**
 * A secret's SecretString, read again once it is older than the max age (rotation), or at once
 * with forceFetch (the value was rejected). A failed read is not kept: the next call retries.
 * Hand-written rather than Powertools Parameters: its ~9 KB would take the bootstrap bundle past
 * its 250 KB budget, for a cache of a dozen lines (docs/DEPLOY.md, "Secrets that rotate").
 */
export function getSecretString(secretId: string, options: { forceFetch?: boolean; now?: () => number } = {}): Promise<string | undefined> {
  maxAgeMs ??= readSecretMaxAgeMs();
  const now = (options.now ?? Date.now)();
  const hit = cache.get(secretId);
  if (hit && !options.forceFetch && now - hit.readAt < maxAgeMs) return hit.value;
  const entry = { readAt: now, value: fetchSecretString(secretId) };
  cache.set(secretId, entry);
  entry.value.catch(() => {
    if (cache.get(secretId) === entry) cache.delete(secretId);
  });
  return entry.value;
}

/** For tests: forget the client, the cached secrets and the max age, as a new container would. */
export function resetSecrets(): void {
  secretsClient = undefined;
  maxAgeMs = undefined;
  cache.clear();
}

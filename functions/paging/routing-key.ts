/**
 * The PagerDuty routing key, read from Secrets Manager once per container. The secret holds the
 * 32-character integration key, either as the whole SecretString or as {"routing_key": "..."}.
 * Messages name the secret and what is wrong with it, never its value.
 */
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { ConfigError } from '../db/errors.ts';

const ROUTING_KEY = /^[A-Za-z0-9]{32}$/;

/** Validate a secret string; the error says which shape was expected, not what was found. */
export function parseRoutingKey(secretString: string | undefined, secretId: string): string {
  const raw = secretString?.trim();
  if (!raw) throw new ConfigError(`secret ${secretId} has no SecretString`);
  let candidate: unknown = raw;
  if (raw.startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch {
      throw new ConfigError(`secret ${secretId} is not valid JSON`);
    }
    candidate = (json as { routing_key?: unknown }).routing_key;
    if (candidate === undefined) throw new ConfigError(`secret ${secretId} has no routing_key field`);
  }
  if (typeof candidate !== 'string' || !ROUTING_KEY.test(candidate)) {
    throw new ConfigError(`secret ${secretId} does not hold a 32-character PagerDuty routing key`);
  }
  return candidate;
}

let client: SecretsManagerClient | undefined;
let cached: { secretId: string; key: Promise<string> } | undefined;

/** The routing key for this container; a failed read is retried on the next invocation. */
export function getRoutingKey(secretId: string): Promise<string> {
  if (cached?.secretId === secretId) return cached.key;
  // The SDK module loads on first use, outside the cold start's init phase.
  const key = import('@aws-sdk/client-secrets-manager')
    .then(({ GetSecretValueCommand, SecretsManagerClient }) => {
      client ??= new SecretsManagerClient({});
      return client.send(new GetSecretValueCommand({ SecretId: secretId }));
    })
    .catch((err: unknown) => {
      const name = (err as { name?: string }).name ?? 'Error';
      throw new ConfigError(`cannot read secret ${secretId} (${name})`, { cause: err });
    })
    .then((out) => parseRoutingKey(out.SecretString, secretId));
  key.catch(() => {
    if (cached?.key === key) cached = undefined;
  });
  cached = { secretId, key };
  return key;
}

/** For tests: forget the cached key and client, as a new container would. */
export function resetRoutingKey(): void {
  cached = undefined;
  client = undefined;
}

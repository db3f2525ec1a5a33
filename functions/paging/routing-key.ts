/**
 * The PagerDuty routing key, read from Secrets Manager and used for the secrets' max age
 * (functions/runtime/aws.ts), so a rotated key reaches warm containers. The secret holds the
 * 32-character integration key, either as the whole SecretString or as {"routing_key": "..."}.
 * Messages name the secret and what is wrong with it, never its value.
 */
import { ConfigError } from '../db/errors.ts';
import { getSecretString, resetSecrets } from '../runtime/aws.ts';

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

/** The routing key for now; a failed read is retried on the next invocation. */
export async function getRoutingKey(secretId: string): Promise<string> {
  return parseRoutingKey(await getSecretString(secretId), secretId);
}

/** For tests: forget the cached key and client, as a new container would. */
export function resetRoutingKey(): void {
  resetSecrets();
}

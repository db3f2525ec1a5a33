/**
 * The PagerDuty routing key as the forwarder reads it, from moto's Secrets Manager: both secret
 * shapes, a rotation reaching a warm container after the max age, and a failed read not kept.
 */
import { CreateSecretCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ENV } from '../../functions/contract/index.ts';
import { getRoutingKey, resetRoutingKey } from '../../functions/paging/routing-key.ts';
import { freeLoopbackPort, motoEnvironment, MOTO_MISSING, startMoto, type Moto } from '../support/moto.ts';

const FIRST = 'R0utingKey0123456789abcdefABCDEF';
const SECOND = 'N3wRoutingKey0123456789abcdefABC';

describe.skipIf(MOTO_MISSING !== undefined)(`the routing key from moto's Secrets Manager${MOTO_MISSING ? ` (skipped: ${MOTO_MISSING})` : ''}`, () => {
  let moto: Moto;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(async () => moto?.stop());
  beforeEach(async () => {
    await moto.reset();
    for (const [k, v] of Object.entries(motoEnvironment(moto.endpoint))) vi.stubEnv(k, v);
    resetRoutingKey();
  });
  afterEach(() => {
    vi.unstubAllEnvs();
    vi.restoreAllMocks();
    resetRoutingKey();
  });

  const createSecret = async (secretString: string) =>
    (await new SecretsManagerClient({}).send(new CreateSecretCommand({ Name: 'attempt-ops/pagerduty', SecretString: secretString }))).ARN!;

  it.each([
    ['the whole SecretString', FIRST],
    ['a routing_key field', JSON.stringify({ routing_key: FIRST })],
  ])('reads the key held as %s', async (_shape, secretString) => {
    expect(await getRoutingKey(await createSecret(secretString))).toBe(FIRST);
  });

  it('keeps the key for the max age, then reads the rotated one', async () => {
    // Prepare
    let now = 1_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => now);
    const arn = await createSecret(FIRST);
    await getRoutingKey(arn);
    await new SecretsManagerClient({}).send(new PutSecretValueCommand({ SecretId: arn, SecretString: SECOND }));
    // Act and assess: within the default 300 s the cached key, then the new one.
    now += 299_000;
    expect(await getRoutingKey(arn)).toBe(FIRST);
    now += 1_000;
    expect(await getRoutingKey(arn)).toBe(SECOND);
  });

  it('does not keep a failed read: the next call asks again', async () => {
    const missing = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:attempt-ops/pagerduty-AbCdEf';
    await expect(getRoutingKey(missing)).rejects.toThrow(`cannot read secret ${missing} (ResourceNotFoundException)`);
    const arn = await createSecret(FIRST);
    expect(await getRoutingKey(arn)).toBe(FIRST);
  });

  it('names an unreachable Secrets Manager, never the key', async () => {
    const closed = `127.0.0.1:${await freeLoopbackPort()}`;
    vi.stubEnv('AWS_ENDPOINT_URL', `http://${closed}`);
    await expect(getRoutingKey('arn:aws:secretsmanager:eu-west-1:123456789012:secret:attempt-ops/pagerduty-AbCdEf')).rejects.toThrow(
      `cannot reach Secrets Manager (${closed}) (ECONNREFUSED): in private subnets, add an interface endpoint or a NAT route`,
    );
  });

  it.each(['-1', '1.5', 'five', '86401'])(`rejects ${ENV.secretMaxAgeSeconds}=%s, naming the variable`, async (value) => {
    vi.stubEnv(ENV.secretMaxAgeSeconds, value);
    await expect(getRoutingKey(await createSecret(FIRST))).rejects.toThrow(`${ENV.secretMaxAgeSeconds} must be a whole number of seconds from 0 to 86400`);
  });
});

/** Where the database is: URL, PG* variables, RDS secret; TLS settings; messages without secrets. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeTarget, fromPgEnv, fromSecretString, fromUrl } from '../../functions/db/connection.ts';
import { readLambdaConfig } from '../../functions/runtime/config.ts';
import { ENV } from '../../functions/contract/index.ts';

const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf';

describe('fromUrl', () => {
  it('reads host, port, user, password and database', () => {
    expect(fromUrl('postgres://app:p%40ss@db.example:6543/results', 'x')).toMatchObject({ host: 'db.example', port: 6543, user: 'app', password: 'p@ss', database: 'results', source: 'url' });
  });

  it.each([
    ['verify-full', { rejectUnauthorized: true }],
    ['verify-ca', { rejectUnauthorized: true }],
    ['require', { rejectUnauthorized: false }],
    ['disable', false],
  ])('maps sslmode=%s to certificate verification %j', (mode, ssl) => {
    expect(fromUrl(`postgres://u@h/d?sslmode=${mode}`, 'x').ssl).toEqual(ssl);
  });

  it('reads connect_timeout in seconds', () => {
    expect(fromUrl('postgres://u@h/d?connect_timeout=3', 'x').connectTimeoutMs).toBe(3000);
    expect(() => fromUrl('postgres://u@h/d?connect_timeout=soon', 'x')).toThrow(/invalid connect_timeout/);
  });

  it('never repeats the URL, which may hold a password, in its errors', () => {
    for (const bad of ['postgres://u:TopSecret@h:99999999/d', 'http://u:TopSecret@h/d', 'postgres://u:TopSecret@h/d?sslmode=maybe', 'TopSecret']) {
      expect(() => fromUrl(bad, '--database-url')).toThrow(/--database-url/);
      try {
        fromUrl(bad, '--database-url');
      } catch (e) {
        expect((e as Error).message).not.toContain('TopSecret');
      }
    }
  });
});

describe('fromPgEnv', () => {
  it('takes the libpq variables, with PGSSLROOTCERT as the CA', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ca-'));
    const ca = path.join(dir, 'ca.pem');
    writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
    const s = fromPgEnv({ PGHOST: 'h', PGPORT: '5433', PGUSER: 'u', PGPASSWORD: 'pw', PGDATABASE: 'd', PGSSLMODE: 'verify-full', PGSSLROOTCERT: ca, PGCONNECT_TIMEOUT: '2' });
    expect(s).toMatchObject({ host: 'h', port: 5433, user: 'u', password: 'pw', database: 'd', connectTimeoutMs: 2000, source: 'env' });
    expect(s.ssl).toMatchObject({ rejectUnauthorized: true, ca: expect.stringContaining('BEGIN CERTIFICATE') });
  });

  it.each([
    [{ PGPORT: 'abc' }, /PGPORT must be a port number/],
    [{ PGSSLMODE: 'sometimes' }, /PGSSLMODE has an unknown value/],
    [{ PGSSLMODE: 'verify-full', PGSSLROOTCERT: '/no/such/file.pem' }, /PGSSLROOTCERT: cannot read/],
  ])('rejects %j', (env, message) => {
    expect(() => fromPgEnv(env)).toThrow(message);
  });
});

describe('fromSecretString', () => {
  it('reads the RDS format and verifies the certificate by default in Lambda', () => {
    const s = fromSecretString(JSON.stringify({ host: 'db', port: '5432', username: 'u', password: 'pw', dbname: 'results', engine: 'postgres' }), SECRET, 'verify-full');
    expect(s).toMatchObject({ host: 'db', port: 5432, user: 'u', password: 'pw', database: 'results', ssl: { rejectUnauthorized: true }, source: 'secret' });
    expect(describeTarget(s)).toBe('db:5432/results');
  });

  it('defaults the database name and port the way RDS-generated secrets leave them out', () => {
    expect(fromSecretString(JSON.stringify({ host: 'db', username: 'u', password: 'pw' }), SECRET, 'disable')).toMatchObject({ port: 5432, database: 'postgres', ssl: false });
  });
});

describe('readLambdaConfig', () => {
  const base = { [ENV.dbSecretArn]: SECRET };
  it('is frozen, with the documented defaults', () => {
    const c = readLambdaConfig(base);
    expect(Object.isFrozen(c)).toBe(true);
    expect(c).toMatchObject({ tls: 'verify-full', target: 'local', namespace: 'AttemptView', schema: 'public', appRole: 'seedtest_user', metrics: 'cloudwatch', capture: true });
    expect(readLambdaConfig({ ...base, [ENV.capture]: 'off' }).capture).toBe(false);
  });

  it.each([
    [{ [ENV.dbSecretArn]: 'not-an-arn' }, `${ENV.dbSecretArn} is not a Secrets Manager secret ARN`],
    [{ ...base, [ENV.dbTls]: 'maybe' }, `${ENV.dbTls} must be one of disable, require, verify-full`],
    [{ ...base, [ENV.target]: 'prod db' }, `${ENV.target} must be 1 to 64 letters`],
    [{ ...base, [ENV.namespace]: 'AWS/RDS' }, `${ENV.namespace} is not a valid CloudWatch namespace`],
    [{ ...base, [ENV.appRole]: "x'; DROP ROLE y; --" }, `${ENV.appRole} must be a plain identifier`],
    [{ ...base, [ENV.statementTimeoutMs]: '-5' }, `${ENV.statementTimeoutMs} must be a positive whole number`],
    [{ ...base, [ENV.capture]: 'false' }, `${ENV.capture} must be one of on, off`],
  ])('names the variable: %j', (env, message) => {
    expect(() => readLambdaConfig(env)).toThrow(message);
  });
});

/**
 * The deployment config: the example is valid, defaults are what DEPLOY.md says, and each kind of
 * mistake stops synth with a message naming the field, through the real CDK entry point too.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigValidationError, FUNCTION_DEFAULTS, scheduleRateMinutes, secretArnFor } from '../../lib/config.ts';
import { EXAMPLE_CONFIG_PATH, exampleConfig, parse, rawExampleConfig } from './support.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
/** A cold tsx + aws-cdk-lib start plus a synth; generous because CI machines are shared. */
const SPAWN_TIMEOUT_MS = 240_000;

function mutate(change: (c: Record<string, any>) => void): Record<string, any> {
  const c = rawExampleConfig();
  change(c);
  return c;
}

function problems(raw: unknown): string {
  try {
    parse(raw);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigValidationError);
    return (err as Error).message;
  }
  throw new Error('config was accepted');
}

describe('config', () => {
  it('accepts the example and fills in the documented defaults', () => {
    const c = exampleConfig();
    const t = c.targets[0]!;
    expect(c.namespace).toBe('AttemptView');
    expect(c.logRetentionDays).toBe(30);
    expect(t.database).toMatchObject({ port: 5432, tls: 'verify-full', schema: 'public', appRole: 'seedtest_user', manageIngress: true });
    expect(scheduleRateMinutes(t, 'publish-metrics')).toBe(1);
    expect(scheduleRateMinutes(t, 'health-check-full')).toBe(1440);
    expect(secretArnFor(t, 'health-check')).toBe(t.database.secretArn);
    expect(secretArnFor(t, 'ops')).toMatch(/:secret:attempt-ops\/prod\/ops-/);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('fills in defaults for a minimal config', () => {
    const c = parse({
      runbookUrl: 'https://example.com/runbook.md',
      targets: [
        {
          name: 'db1',
          vpc: { vpcId: 'vpc-12345678', subnets: [{ subnetId: 'subnet-12345678', availabilityZone: 'us-east-1a' }] },
          database: {
            secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:db1-AbCdEf',
            securityGroupId: 'sg-12345678',
            clusterIdentifier: 'db1-cluster',
          },
        },
      ],
    });
    expect(c.paging).toEqual({ infoEmails: [] });
    expect(c.opsInvokerRoleArns).toEqual([]);
    expect(c.targets[0]!.alarms.noQueries).toBe(false);
    expect(c.targets[0]!.capture).toBe(true);
    expect(scheduleRateMinutes(c.targets[0]!, 'analyze')).toBe(1440);
  });

  it.each([
    ['a partial secret ARN', (c: any) => (c.targets[0].database.secretArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod'), 'targets[0].database.secretArn: must be the complete Secrets Manager ARN'],
    ['a per-function secret that is no ARN', (c: any) => (c.targets[0].functionSecrets.ops = 'ops-secret'), 'targets[0].functionSecrets.ops: must be the complete'],
    ['a function secret for an unknown job', (c: any) => (c.targets[0].functionSecrets.cleanup = c.targets[0].database.secretArn), 'targets[0].functionSecrets: Unrecognized key: "cleanup"'],
    ['a malformed VPC id', (c: any) => (c.targets[0].vpc.vpcId = 'my-vpc'), 'targets[0].vpc.vpcId: must be a VPC id'],
    ['no subnets', (c: any) => (c.targets[0].vpc.subnets = []), 'targets[0].vpc.subnets'],
    ['a misspelt field', (c: any) => (c.targets[0].databse = {}), 'targets[0]: Unrecognized key: "databse"'],
    ['a rate in seconds', (c: any) => (c.targets[0].schedules['publish-metrics'] = '30 seconds'), 'targets[0].schedules.publish-metrics: must look like'],
    ['a rate over a day', (c: any) => (c.targets[0].schedules.analyze = '2 days'), 'targets[0].schedules.analyze: must be at most 1 day'],
    ['an unknown schedule', (c: any) => (c.targets[0].schedules.vacuum = '1 day'), 'Unrecognized key: "vacuum"'],
    ['both RDS identifiers', (c: any) => (c.targets[0].database.clusterIdentifier = 'exams'), 'targets[0].database: must set exactly one of instanceIdentifier and clusterIdentifier'],
    ['a statement timeout longer than the function', (c: any) => (c.targets[0].functions = { analyze: { statementTimeoutMs: 900_000 } }), 'targets[0].functions.analyze: statementTimeoutMs (900000)'],
    ['a lock timeout longer than the statement timeout', (c: any) => (c.targets[0].functions = { ops: { lockTimeoutMs: 200_000 } }), 'targets[0].functions.ops.lockTimeoutMs: must not exceed statementTimeoutMs'],
    ['publish-metrics slower than its rate', (c: any) => (c.targets[0].functions = { 'publish-metrics': { timeoutSeconds: 60 } }), 'targets[0].functions.publish-metrics.timeoutSeconds: must be shorter than the publish-metrics rate'],
    ['a bootstrap the deploy cannot wait for', (c: any) => (c.targets[0].functions = { bootstrap: { timeoutSeconds: 900 } }), 'targets[0].functions.bootstrap.timeoutSeconds: must be at most 840'],
    ['two targets with one name', (c: any) => c.targets.push(structuredClone(c.targets[0])), 'targets[1].name: "prod" is used by another target'],
    ['a target name Lambda cannot use', (c: any) => (c.targets[0].name = 'prod.eu'), 'targets[0].name: must be 1 to 27 letters'],
    ['a target name too long for EventBridge rule names', (c: any) => (c.targets[0].name = 'a'.repeat(28)), 'targets[0].name: must be 1 to 27 letters'],
    ['two targets that are one stack name', (c: any) => c.targets.push({ ...structuredClone(c.targets[0]), name: 'prod_x' }, { ...structuredClone(c.targets[0]), name: 'prod-x' }), 'targets[2].name: "prod-x" is used by another target'],
    ['an http runbook', (c: any) => (c.runbookUrl = 'http://wiki.example.com/runbook'), 'runbookUrl: must be an https:// URL'],
    ['no targets', (c: any) => (c.targets = []), 'targets: must name at least one database'],
    ['an AWS namespace', (c: any) => (c.namespace = 'AWS/RDS'), 'namespace: must not start with AWS/'],
    ['a log retention CloudWatch lacks', (c: any) => (c.logRetentionDays = 42), 'logRetentionDays: must be one of'],
    ['an ops invoker that is no role', (c: any) => (c.opsInvokerRoleArns = ['arn:aws:iam::123456789012:user/alice']), 'opsInvokerRoleArns[0]: must be an IAM role ARN'],
    ['a bad email', (c: any) => (c.paging.infoEmails = ['oncall']), 'paging.infoEmails[0]: must be an email address'],
    ['a schema that is no identifier', (c: any) => (c.targets[0].database.schema = 'public; DROP TABLE x'), 'targets[0].database.schema: must be a plain PostgreSQL identifier'],
    ['incremental refresh without the capture', (c: any) => Object.assign(c.targets[0], { capture: false, refreshMode: 'incremental' }), 'targets[0].refreshMode: incremental needs the change capture'],
    ['a capture that is no boolean', (c: any) => (c.targets[0].capture = 'off'), 'targets[0].capture:'],
  ])('rejects %s, naming the field', (_what, change, message) => {
    const text = problems(mutate(change));
    expect(text).toMatch(/^invalid attempt-ops config \(test\):\n/);
    expect(text).toContain(message);
  });

  it('fails `cdk synth` through bin/app.ts with the field in one readable message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attempt-ops-config-'));
    try {
      const path = join(dir, 'bad.json');
      writeFileSync(path, JSON.stringify(mutate((c) => (c.targets[0].vpc.vpcId = 'nope'))));
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
        cwd: ROOT,
        encoding: 'utf8',
        env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ 'attempt-ops:config': path }), CDK_OUTDIR: join(dir, 'out') },
        timeout: SPAWN_TIMEOUT_MS - 10_000,
      });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`invalid attempt-ops config (${path}):`);
      expect(run.stderr).toContain('targets[0].vpc.vpcId: must be a VPC id');
      expect(run.stderr).not.toMatch(/\n\s+at /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT_MS);

  it('synthesizes the example through bin/app.ts, the entry `cdk synth` runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attempt-ops-app-'));
    try {
      const out = join(dir, 'out');
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'bin/app.ts'], {
        cwd: ROOT,
        encoding: 'utf8',
        // Bundling is covered by stack.test.ts; here it is skipped to keep this test quick.
        env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ 'attempt-ops:config': EXAMPLE_CONFIG_PATH, 'aws:cdk:bundling-stacks': [] }), CDK_OUTDIR: out },
        timeout: SPAWN_TIMEOUT_MS - 10_000,
      });
      expect(run.status, run.stderr).toBe(0);
      const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8'));
      expect(manifest.artifacts['AttemptOps-prod']).toMatchObject({ type: 'aws:cloudformation:stack', environment: 'aws://123456789012/eu-west-1' });
      const template = JSON.parse(readFileSync(join(out, 'AttemptOps-prod.template.json'), 'utf8'));
      const functions = Object.values<any>(template.Resources).filter((r) => r.Type === 'AWS::Lambda::Function');
      expect(functions).toHaveLength(9);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT_MS);

  it('is what cdk.json runs: the tsx app with the example config', () => {
    const cdk = JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8'));
    expect(cdk.app).toBe('npx tsx bin/app.ts');
    expect(join(ROOT, cdk.context['attempt-ops:config'])).toBe(EXAMPLE_CONFIG_PATH);
  });

  it('keeps every default statement timeout inside its function timeout', () => {
    for (const [job, s] of Object.entries(FUNCTION_DEFAULTS)) {
      expect(s.statementTimeoutMs + s.connectTimeoutMs + 5_000, job).toBeLessThanOrEqual(s.timeoutSeconds * 1000);
    }
  });
});

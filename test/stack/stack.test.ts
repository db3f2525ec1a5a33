/**
 * The example config, synthesized the way `npx cdk synth` does (buildApp, cdk-nag included), once
 * for the whole file. These tests pin what must not drift: alarms, schedules, IAM limits, function
 * settings, and the absence of secrets; one snapshot covers the rest.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Annotations, Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ENV,
  JOBS,
  METRIC_NAMES,
  PAYLOAD_SCHEMAS,
  type JobName,
} from '../../functions/contract/index.ts';
import { DEPLOY_BOOTSTRAP_PAYLOAD, SCHEDULES, deployedFunctionName } from '../../functions/contract/schedules.ts';
import { FUNCTION_DEFAULTS } from '../../lib/config.ts';
import { asArray, exampleConfig, functionId, resourcesOf, statementsOfRole, synth, SYNTH_TIMEOUT_MS, type Synthesized, type TemplateJson } from './support.ts';

const CANARY_PASSWORD = 'canary-Pa55word-9f3e1c';
const CANARY_ROUTING_KEY = 'R0utingKeyCanary0123456789abcdef';

const config = exampleConfig();
const target = config.targets[0]!;
const NS = 'AttemptView';
const fnName = (job: string) => deployedFunctionName('prod', job as JobName);

let s: Synthesized;
let t: TemplateJson;

beforeAll(() => {
  // Secrets a careless app could read from its environment at synth time: none may reach the output.
  process.env.PGPASSWORD = CANARY_PASSWORD;
  process.env.DATABASE_URL = `postgres://admin:${CANARY_PASSWORD}@db.example.com:5432/exams`;
  process.env.PAGERDUTY_ROUTING_KEY = CANARY_ROUTING_KEY;
  s = synth(config);
  t = s.json();
}, SYNTH_TIMEOUT_MS);

afterAll(() => {
  delete process.env.PGPASSWORD;
  delete process.env.DATABASE_URL;
  delete process.env.PAGERDUTY_ROUTING_KEY;
  s?.cleanup();
});

function fnProps(name: string): any {
  return t.Resources[functionId(t, name)]!.Properties;
}

function roleOf(name: string): string {
  return fnProps(name).Role['Fn::GetAtt'][0];
}

describe('functions', () => {
  const all = [...JOBS.map(fnName), fnName('pagerduty-forwarder'), 'attempt-ops-prod-bootstrap-on-deploy'];

  it('run Node.js 22 on arm64, with source maps, a log group with retention, and the bundle from esbuild', () => {
    for (const name of all) {
      const p = fnProps(name);
      expect(p.Runtime, name).toBe('nodejs22.x');
      expect(p.Architectures, name).toEqual(['arm64']);
      expect(p.Handler, name).toBe('index.handler');
      expect(p.Environment.Variables.NODE_OPTIONS, name).toBe('--enable-source-maps');
      const logGroupId = p.LoggingConfig.LogGroup.Ref;
      expect(t.Resources[logGroupId]!.Type).toBe('AWS::Logs::LogGroup');
      expect(t.Resources[logGroupId]!.Properties.RetentionInDays, name).toBe(30);
    }
  });

  it('bundles every handler minified, CommonJS, with a source map and the AWS SDK left to the runtime', () => {
    for (const name of all) {
      const id = functionId(t, name);
      // The code's S3 key is the asset hash; the assembly keeps the bundle in asset.<hash>.
      const hash = String(t.Resources[id]!.Properties.Code.S3Key).replace(/\.zip$/, '');
      const assetDir = join(s.outdir, `asset.${hash}`);
      const code = readFileSync(join(assetDir, 'index.js'), 'utf8');
      expect(readdirSync(assetDir).sort()).toEqual(['index.js', 'index.js.map']);
      expect(code, name).toMatch(/require\("@aws-sdk\/client-(secrets-manager|lambda)"\)/);
      // Loaded lazily, but through require(): an ESM import() would not find the runtime's SDK.
      expect(code, name).not.toMatch(/import\("@aws-sdk/);
      expect(code, name).not.toMatch(/require\("(pg|zod|@middy\/core)"\)/);
      expect(code).toContain('module.exports');
      expect(code).toMatch(/\/\/# sourceMappingURL=index\.js\.map\s*$/);
      // Minified: the code is one long line; only SQL template literals (the capture's PL/pgSQL
      // among them) keep their newlines, so most lines are short SQL and the longest is the code.
      expect(Math.max(...code.split('\n').map((l) => l.length)), name).toBeGreaterThan(20_000);
    }
  });

  it('have the per-job timeouts, and every statement timeout fits inside its function timeout', () => {
    for (const job of JOBS) {
      const p = fnProps(fnName(job));
      const env = p.Environment.Variables;
      expect(p.Timeout, job).toBe(FUNCTION_DEFAULTS[job].timeoutSeconds);
      const statement = Number(env[ENV.statementTimeoutMs]);
      const connect = Number(env[ENV.connectTimeoutMs]);
      expect(statement, job).toBe(FUNCTION_DEFAULTS[job].statementTimeoutMs);
      expect(statement + connect, job).toBeLessThan(p.Timeout * 1000);
      expect(Number(env[ENV.lockTimeoutMs]), job).toBeLessThanOrEqual(statement);
    }
    expect(fnProps(fnName('publish-metrics')).Timeout).toBeLessThan(60);
    expect(fnProps('attempt-ops-prod-bootstrap-on-deploy').Timeout).toBeGreaterThan(fnProps(fnName('bootstrap')).Timeout);
  });

  it('reserve a concurrency of 1 for analyze and refresh-mv only', () => {
    for (const job of JOBS) {
      const expected = job === 'analyze' || job === 'refresh-mv' ? 1 : undefined;
      expect(fnProps(fnName(job)).ReservedConcurrentExecutions, job).toBe(expected);
    }
  });

  it('give every job its database settings, TLS verified against the runtime CA bundle, metrics to CloudWatch', () => {
    for (const job of JOBS) {
      const env = fnProps(fnName(job)).Environment.Variables;
      expect(env, job).toMatchObject({
        [ENV.dbTls]: 'verify-full',
        NODE_EXTRA_CA_CERTS: '/var/runtime/ca-cert.pem',
        [ENV.target]: 'prod',
        [ENV.namespace]: NS,
        [ENV.schema]: 'public',
        [ENV.appRole]: 'seedtest_user',
        [ENV.metrics]: 'cloudwatch',
        [ENV.runbookUrl]: config.runbookUrl,
        [ENV.dbSecretArn]: target.functionSecrets[job] ?? target.database.secretArn,
      });
    }
  });

  it('run the jobs in the configured subnets with a group that reaches only the database port and HTTPS', () => {
    const sgs = resourcesOf(t, 'AWS::EC2::SecurityGroup');
    expect(sgs).toHaveLength(1);
    const [sgId, sg] = sgs[0]!;
    expect(sg.VpcId).toBe('vpc-0a1b2c3d4e5f60718');
    expect(sg.SecurityGroupEgress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', FromPort: 443, ToPort: 443, IpProtocol: 'tcp' }),
    ]);
    expect(sg.SecurityGroupIngress ?? []).toEqual([]);
    const egress = resourcesOf(t, 'AWS::EC2::SecurityGroupEgress').map(([, p]) => p);
    expect(egress).toEqual([
      expect.objectContaining({ DestinationSecurityGroupId: 'sg-0a1b2c3d4e5f60718', FromPort: 5432, ToPort: 5432, IpProtocol: 'tcp' }),
    ]);
    const ingress = resourcesOf(t, 'AWS::EC2::SecurityGroupIngress').map(([, p]) => p);
    expect(ingress).toEqual([
      expect.objectContaining({ GroupId: 'sg-0a1b2c3d4e5f60718', FromPort: 5432, ToPort: 5432, SourceSecurityGroupId: { 'Fn::GetAtt': [sgId, 'GroupId'] } }),
    ]);
    for (const job of JOBS) {
      expect(fnProps(fnName(job)).VpcConfig, job).toEqual({
        SubnetIds: ['subnet-0a1b2c3d4e5f60001', 'subnet-0a1b2c3d4e5f60002'],
        SecurityGroupIds: [{ 'Fn::GetAtt': [sgId, 'GroupId'] }],
      });
    }
    expect(fnProps(fnName('pagerduty-forwarder')).VpcConfig).toBeUndefined();
  });

  it('do not retry failed scheduled runs (the next schedule is the retry); the forwarder retries into a queue', () => {
    const configs = resourcesOf(t, 'AWS::Lambda::EventInvokeConfig').map(([, p]) => p);
    for (const job of JOBS) {
      const id = functionId(t, fnName(job));
      const c = configs.find((p) => p.FunctionName.Ref === id);
      expect(c?.MaximumRetryAttempts, job).toBe(0);
    }
    const fwd = configs.find((p) => p.FunctionName.Ref === functionId(t, fnName('pagerduty-forwarder')));
    expect(fwd.MaximumRetryAttempts).toBe(2);
    const queueId = fwd.DestinationConfig.OnFailure.Destination['Fn::GetAtt'][0];
    expect(t.Resources[queueId]!.Type).toBe('AWS::SQS::Queue');
  });
});

describe('IAM', () => {
  const secretStatements = (statements: any[]) => statements.filter((st) => asArray(st.Action).some((a: string) => a.startsWith('secretsmanager:')));

  it('lets each job read only its own database secret, by exact ARN', () => {
    for (const job of JOBS) {
      const statements = statementsOfRole(t, roleOf(fnName(job)));
      const reads = secretStatements(statements);
      expect(reads, job).toHaveLength(1);
      expect(asArray(reads[0].Action).sort(), job).toEqual(['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue']);
      expect(reads[0].Resource, job).toBe(target.functionSecrets[job] ?? target.database.secretArn);
    }
  });

  it('gives functions without a database no database secret', () => {
    const dbArns = new Set([target.database.secretArn, ...Object.values(target.functionSecrets)]);
    const others = resourcesOf(t, 'AWS::Lambda::Function')
      .map(([, p]) => p)
      .filter((p) => !JOBS.map(fnName).includes(p.FunctionName));
    expect(others).toHaveLength(3);
    for (const p of others) {
      const roleId = p.Role['Fn::GetAtt'][0];
      for (const st of statementsOfRole(t, roleId)) {
        for (const r of asArray(st.Resource)) expect(dbArns.has(r as string), `${p.FunctionName ?? roleId}`).toBe(false);
      }
    }
    const fwdReads = secretStatements(statementsOfRole(t, roleOf(fnName('pagerduty-forwarder'))));
    expect(fwdReads.map((st) => st.Resource)).toEqual([config.paging.pagerDutyRoutingKeySecretArn]);
  });

  it('allows PutMetricData only under the cloudwatch:namespace condition, and only to the jobs', () => {
    const putters: string[] = [];
    for (const [roleId] of resourcesOf(t, 'AWS::IAM::Role')) {
      for (const st of statementsOfRole(t, roleId)) {
        if (!asArray(st.Action).some((a: string) => a.startsWith('cloudwatch:'))) continue;
        expect(st.Action).toBe('cloudwatch:PutMetricData');
        expect(st.Condition).toEqual({ StringEquals: { 'cloudwatch:namespace': NS } });
        putters.push(roleId);
      }
    }
    expect(putters.sort()).toEqual(JOBS.map((j) => roleOf(fnName(j))).sort());
  });

  it('never grants a wildcard action, and a wildcard resource only for ENIs and PutMetricData', () => {
    for (const [roleId] of resourcesOf(t, 'AWS::IAM::Role')) {
      for (const st of statementsOfRole(t, roleId)) {
        for (const a of asArray(st.Action)) expect(a as string, roleId).not.toMatch(/\*$/);
        if (asArray(st.Resource).includes('*')) {
          const actions = asArray(st.Action) as string[];
          const ok = actions.every((a) => a.startsWith('ec2:') && /NetworkInterface|Subnets|PrivateIpAddresses/.test(a)) || (actions.length === 1 && actions[0] === 'cloudwatch:PutMetricData');
          expect(ok, `${roleId}: ${actions.join(',')}`).toBe(true);
        }
      }
    }
  });

  it('attaches no AWS managed policy to any role', () => {
    for (const [roleId, p] of resourcesOf(t, 'AWS::IAM::Role')) expect(p.ManagedPolicyArns, roleId).toBeUndefined();
  });

  it('lets only the configured role invoke ops', () => {
    const opsId = functionId(t, fnName('ops'));
    const perms = resourcesOf(t, 'AWS::Lambda::Permission')
      .map(([, p]) => p)
      .filter((p) => JSON.stringify(p.FunctionName).includes(opsId));
    expect(perms).toEqual([{ Action: 'lambda:InvokeFunction', FunctionName: { 'Fn::GetAtt': [opsId, 'Arn'] }, Principal: config.opsInvokerRoleArns[0] }]);
  });

  it('encrypts the topics with a rotating key and refuses non-TLS publishing', () => {
    const topics = resourcesOf(t, 'AWS::SNS::Topic');
    expect(topics.map(([, p]) => p.TopicName).sort()).toEqual(['attempt-ops-prod-critical', 'attempt-ops-prod-info', 'attempt-ops-prod-warning']);
    const keyId = topics[0]![1].KmsMasterKeyId['Fn::GetAtt'][0];
    for (const [, p] of topics) expect(p.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    expect(t.Resources[keyId]!.Properties.EnableKeyRotation).toBe(true);
    const policies = resourcesOf(t, 'AWS::SNS::TopicPolicy').map(([, p]) => p);
    expect(policies).toHaveLength(3);
    for (const p of policies) {
      expect(p.PolicyDocument.Statement).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
          expect.objectContaining({ Sid: 'AllowCloudWatchAlarms', Principal: { Service: 'cloudwatch.amazonaws.com' }, Action: 'sns:Publish' }),
        ]),
      );
    }
  });
});

describe('schedules', () => {
  const rules = () => resourcesOf(t, 'AWS::Events::Rule').map(([, p]) => p);

  it.each([
    ['health-check-incremental', 'health-check', 'rate(1 hour)', { scope: 'incremental' }],
    ['health-check-full', 'health-check', 'rate(1 day)', { scope: 'full' }],
    ['publish-metrics', 'publish-metrics', 'rate(1 minute)', {}],
    ['refresh-mv', 'refresh-mv', 'rate(1 hour)', {}],
    ['analyze', 'analyze', 'rate(1 day)', {}],
  ] as const)('%s runs %s at %s with payload %j', (id, job, expression, payload) => {
    const rule = rules().find((r) => r.Name === `attempt-ops-prod-${id}`);
    expect(rule).toBeDefined();
    expect(rule.ScheduleExpression).toBe(expression);
    expect(rule.State).toBe('ENABLED');
    expect(rule.Targets).toHaveLength(1);
    const target0 = rule.Targets[0];
    expect(target0.Arn).toEqual({ 'Fn::GetAtt': [functionId(t, fnName(job)), 'Arn'] });
    const input = JSON.parse(target0.Input);
    expect(input).toEqual(payload);
    // What the schedule sends is what the handler accepts.
    expect(PAYLOAD_SCHEMAS[job].safeParse(input).success).toBe(true);
  });

  it('has exactly the contract schedules', () => {
    expect(rules().map((r) => r.Name).sort()).toEqual(SCHEDULES.map((x) => `attempt-ops-prod-${x.id}`).sort());
  });
});

describe('bootstrap at deploy', () => {
  it('invokes the current bootstrap version with exactly {"apply": true} through our provider', () => {
    const [[id, props]] = resourcesOf(t, 'Custom::AttemptOpsBootstrap') as [[string, any]];
    expect(JSON.parse(props.Payload)).toEqual(DEPLOY_BOOTSTRAP_PAYLOAD);
    expect(JSON.parse(props.Payload)).toEqual({ apply: true });
    const versionId = props.FunctionName.Ref;
    expect(t.Resources[versionId]!.Type).toBe('AWS::Lambda::Version');
    expect(t.Resources[versionId]!.Properties.FunctionName).toEqual({ Ref: functionId(t, fnName('bootstrap')) });
    // It runs after the bootstrap function and its network and secret policies exist.
    const deps = t.Resources[id]!.DependsOn ?? [];
    expect(deps).toContain(functionId(t, fnName('bootstrap')));
    expect(deps.some((d) => /JobbootstrapNetworkPolicy/.test(d))).toBe(true);
    // The invoker may call that version, and the scheduled jobs for their first runs, nothing else.
    const invoker = statementsOfRole(t, roleOf('attempt-ops-prod-bootstrap-on-deploy')).filter((st) => asArray(st.Action).includes('lambda:InvokeFunction'));
    expect(invoker.flatMap((st) => asArray(st.Resource))).toEqual([
      { Ref: versionId },
      ...['health-check', 'analyze', 'refresh-mv', 'publish-metrics'].map((j) => ({ 'Fn::GetAtt': [functionId(t, fnName(j)), 'Arn'] })),
    ]);
  });

  it('then starts one run of each scheduled job with its first schedule\'s payload, before any alarm exists', () => {
    const [[id, props]] = resourcesOf(t, 'Custom::AttemptOpsBootstrap') as [[string, any]];
    // Resolve the Fn::Join of literal JSON and function Refs back into JSON.
    const names = Object.fromEntries(resourcesOf(t, 'AWS::Lambda::Function').map(([fid, p]) => [fid, p.FunctionName]));
    const [sep, parts] = props.FirstRuns['Fn::Join'];
    const text = parts.map((p: any) => (typeof p === 'string' ? p : names[p.Ref])).join(sep);
    const runs = JSON.parse(text);
    expect(runs).toEqual([
      { job: 'health-check', functionName: fnName('health-check'), payload: { scope: 'incremental' } },
      { job: 'analyze', functionName: fnName('analyze'), payload: {} },
      { job: 'refresh-mv', functionName: fnName('refresh-mv'), payload: {} },
      { job: 'publish-metrics', functionName: fnName('publish-metrics'), payload: {} },
    ]);
    for (const run of runs) expect(PAYLOAD_SCHEMAS[run.job as JobName].safeParse(run.payload).success).toBe(true);
    for (const [alarmId, r] of Object.entries(t.Resources)) {
      if (r.Type === 'AWS::CloudWatch::Alarm') expect(r.DependsOn ?? [], alarmId).toContain(id);
    }
  });
});

describe('alarms', () => {
  const alarms = () => resourcesOf(t, 'AWS::CloudWatch::Alarm').map(([, p]) => p);
  const topicId = (name: string) => resourcesOf(t, 'AWS::SNS::Topic').find(([, p]) => p.TopicName === `attempt-ops-prod-${name}`)![0];
  const byName = (name: string) => {
    const a = alarms().find((x) => x.AlarmName === `attempt-ops-prod-${name}`);
    if (!a) throw new Error(`no alarm ${name}`);
    return a;
  };
  /** The plain metric of an alarm, or the one inside its FILL expression. */
  const watched = (a: any) => {
    if (a.MetricName) return { name: a.MetricName, ns: a.Namespace, dims: a.Dimensions, stat: a.Statistic, period: a.Period, expression: undefined };
    const expr = a.Metrics.find((m: any) => m.Expression);
    const m = a.Metrics.find((x: any) => x.MetricStat).MetricStat;
    return { name: m.Metric.MetricName, ns: m.Metric.Namespace, dims: m.Metric.Dimensions, stat: m.Stat, period: m.Period, expression: expr.Expression };
  };
  const db = [{ Name: 'Database', Value: 'prod' }];

  // CONTRACT.md section 6, literally: these numbers must not drift, whatever THRESHOLDS says.
  type Row = [string, string, string, string, number, number, number, number, string, string, any[]];
  const rds = [{ Name: 'DBInstanceIdentifier', Value: 'exams-prod' }];
  const CONTRACT: Row[] = [
    // name, metric, statistic, comparison, threshold, period, evaluation periods, datapoints, missing, topic, dimensions
    // P0 and P1 facts: sampled by every publish-metrics run (every minute), one datapoint pages.
    ['P0-view-missing', 'attempt_view_exists', 'Minimum', 'LessThanThreshold', 1, 600, 1, 1, 'ignore', 'critical', db],
    ['P0-schema-drift', 'attempt_view_schema_drift', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    ['P0-view-broken', 'attempt_poison_rows', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    // Live signals: one period per publish-metrics run (every minute), 2 breaching of 3.
    ['P1-p99-latency', 'attempt_query_p99_latency', 'Maximum', 'GreaterThanThreshold', 2000, 60, 3, 2, 'ignore', 'critical', db],
    ['P2-latency-degraded', 'attempt_query_p99_latency', 'Maximum', 'GreaterThanThreshold', 400, 60, 3, 2, 'ignore', 'warning', db],
    ['P1-connections', 'DatabaseConnections', 'Average', 'GreaterThanThreshold', 100, 60, 3, 2, 'missing', 'critical', rds],
    ['P1-cpu', 'CPUUtilization', 'Average', 'GreaterThanThreshold', 80, 60, 5, 5, 'missing', 'critical', rds],
    ['P1-permissions', 'attempt_permission_missing', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    ['P1-nulls', 'attempt_null_required_fields', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    ['P1-orphans', 'attempt_orphan_results', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    ['P1-blocked', 'blocked_queries', 'Maximum', 'GreaterThanThreshold', 0, 60, 3, 2, 'ignore', 'critical', db],
    ['P2-duplicates', 'attempt_duplicate_ids', 'Maximum', 'GreaterThanThreshold', 0, 300, 1, 1, 'ignore', 'warning', db],
    ...['exam_results', 'questions', 'attempt_mv'].flatMap((table): Row[] => [
      [`P2-stale-statistics-${table}`, 'table_stats_age_hours', 'Maximum', 'GreaterThanThreshold', 168, 300, 1, 1, 'ignore', 'warning', [...db, { Name: 'Table', Value: table }]],
      [`P2-dead-tuples-${table}`, 'table_dead_tuple_ratio', 'Maximum', 'GreaterThanThreshold', 0.1, 300, 1, 1, 'ignore', 'warning', [...db, { Name: 'Table', Value: table }]],
      [`P2-analyze-due-${table}`, 'table_modified_ratio', 'Maximum', 'GreaterThanThreshold', 0.2, 300, 1, 1, 'ignore', 'warning', [...db, { Name: 'Table', Value: table }]],
    ]),
    ['P2-mv-stale', 'attempt_mv_staleness_seconds', 'Maximum', 'GreaterThanThreshold', 7200, 300, 1, 1, 'ignore', 'warning', db],
    ['P2-long-running', 'long_running_queries', 'Maximum', 'GreaterThanThreshold', 0, 60, 3, 2, 'ignore', 'warning', db],
    ['P3-no-fresh-data', 'attempt_latest_age_seconds', 'Maximum', 'GreaterThanThreshold', 86400, 300, 1, 1, 'ignore', 'info', db],
    ['P1-capture', 'attempt_capture_problems', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    ['P1-copy-differs', 'attempt_mv_divergent_rows', 'Maximum', 'GreaterThanThreshold', 0, 60, 1, 1, 'ignore', 'critical', db],
    ['P2-ties', 'attempt_no_tie_groups', 'Maximum', 'GreaterThanThreshold', 0, 300, 1, 1, 'ignore', 'warning', db],
    // A live signal, sampled by publish-metrics: 2 of 3.
    ['P2-idle-in-transaction', 'idle_in_transaction_sessions', 'Maximum', 'GreaterThanThreshold', 0, 60, 3, 2, 'ignore', 'warning', db],
    // job failed: missing data is OK; a scheduled job's window spans one schedule interval.
    ...([
      ['health-check', 3600, 2],
      ['analyze', 3600, 25],
      ['refresh-mv', 3600, 2],
      ['publish-metrics', 300, 2],
      ['bootstrap', 300, 1],
      ['ops', 300, 1],
    ] as const).map(([job, period, evals]): Row => [`P2-job-failed-${job}`, 'Errors', 'Sum', 'GreaterThanThreshold', 0, period, evals, 1, 'notBreaching', 'warning', [{ Name: 'FunctionName', Value: { fn: job } }]]),
    // Heartbeats: Minimum of job_success, empty periods 0 once the job has published.
    ['P1-monitoring-blind-publish-metrics', 'job_success', 'Minimum', 'LessThanThreshold', 1, 60, 5, 5, 'ignore', 'critical', [...db, { Name: 'Job', Value: 'publish-metrics' }]],
    ...([
      ['health-check', 3600],
      ['refresh-mv', 3600],
      ['analyze', 86400],
    ] as const).map(([job, period]): Row => [`P1-job-failing-or-silent-${job}`, 'job_success', 'Minimum', 'LessThanThreshold', 1, period, 2, 2, 'ignore', 'critical', [...db, { Name: 'Job', Value: job }]]),
  ];
  /** The alarms that count an empty period as breaching, through the armed FILL. */
  const FILLED = /^P[01]-(view-missing|monitoring-blind|job-failing-or-silent)/;

  it('covers every row of CONTRACT section 6 (the optional one is off by default)', () => {
    const names = alarms().map((a) => a.AlarmName.replace('attempt-ops-prod-', ''));
    for (const [name] of CONTRACT) expect(names).toContain(name);
    expect(names.some((n) => n.includes('no-queries'))).toBe(false);
    // The contract's alarms, plus paging's own two (forwarder failed, undelivered pages).
    expect(names.sort()).toEqual([...CONTRACT.map((c) => c[0]), 'P2-job-failed-pagerduty-forwarder', 'P1-undelivered-pages'].sort());
  });

  it.each(CONTRACT.map((c) => [c[0], c] as const))('%s', (_name, [name, metric, stat, op, threshold, period, evals, dps, missing, topic, dims]) => {
    const a = byName(name);
    const w = watched(a);
    expect(w.name).toBe(metric);
    expect(w.ns).toBe(metric === 'Errors' ? 'AWS/Lambda' : metric === 'DatabaseConnections' || metric === 'CPUUtilization' ? 'AWS/RDS' : NS);
    // Function dimensions are resolved here: the template exists only once beforeAll has run.
    const resolved = dims.map((d) => (d.Value?.fn ? { Name: d.Name, Value: { Ref: functionId(t, fnName(d.Value.fn)) } } : d));
    expect(w.dims).toEqual(resolved);
    expect(w.stat).toBe(stat);
    expect(w.period).toBe(period);
    expect(a.ComparisonOperator).toBe(op);
    expect(a.Threshold).toBe(threshold);
    expect(a.EvaluationPeriods).toBe(evals);
    expect(a.DatapointsToAlarm).toBe(dps);
    expect(a.TreatMissingData).toBe(missing);
    // ALARM and OK go to the same topic, so PagerDuty resolves what it opened.
    expect(a.AlarmActions).toEqual([{ Ref: topicId(topic) }]);
    expect(a.OKActions).toEqual([{ Ref: topicId(topic) }]);
    // An AWS/RDS metric that never arrives (or stops) shows as INSUFFICIENT_DATA, mailed to info.
    if (w.ns === 'AWS/RDS') expect(a.InsufficientDataActions).toEqual([{ Ref: topicId('info') }]);
    else expect(a.InsufficientDataActions).toBeUndefined();
    expect(a.ActionsEnabled).toBe(true);
    // Silence is judged per period (empty periods are 0), and only once the metric has a datapoint.
    if (FILLED.test(name)) expect(w.expression).toBe('IF(DATAPOINT_COUNT(m) > 0, FILL(m, 0))');
    else expect(w.expression).toBeUndefined();
    expect(a.AlarmDescription).toMatch(new RegExp(`^\\[${name.slice(0, 2)}\\] `));
  });

  it('treats no missing data as breaching: a fresh deploy, before the first runs publish, cannot page', () => {
    for (const a of alarms()) expect(a.TreatMissingData, a.AlarmName).not.toBe('breaching');
  });

  it('names the runbook section in every description', () => {
    for (const a of alarms()) {
      expect(a.AlarmDescription, a.AlarmName).toMatch(/Runbook section (#[a-z0-9-]+): https:\/\/github\.com\/example-org\/attempt-ops\/blob\/main\/docs\/RUNBOOK\.md\1$/);
    }
    expect(byName('P0-view-missing').AlarmDescription).toContain('#1-view-missing-p0');
    expect(byName('P1-permissions').AlarmDescription).toContain('#2-query-failure---permission-denied-p1');
  });

  it('watches only metrics some job emits (names in METRICS) in our namespace', () => {
    for (const a of alarms()) {
      const w = watched(a);
      if (w.ns === NS) expect(METRIC_NAMES, a.AlarmName).toContain(w.name);
    }
  });

  it('mails paging failures to info besides the usual topic', () => {
    const fwd = byName('P2-job-failed-pagerduty-forwarder');
    expect(fwd.AlarmActions).toEqual([{ Ref: topicId('warning') }, { Ref: topicId('info') }]);
    expect(fwd.OKActions).toEqual(fwd.AlarmActions);
    const undelivered = byName('P1-undelivered-pages');
    expect(undelivered.AlarmActions).toEqual([{ Ref: topicId('critical') }, { Ref: topicId('info') }]);
    expect(undelivered.OKActions).toEqual(undelivered.AlarmActions);
  });
});

describe('paging', () => {
  it('subscribes the forwarder to critical and warning, and email to info', () => {
    const subs = resourcesOf(t, 'AWS::SNS::Subscription').map(([, p]) => p);
    const topicRef = (name: string) => ({ Ref: resourcesOf(t, 'AWS::SNS::Topic').find(([, p]) => p.TopicName === `attempt-ops-prod-${name}`)![0] });
    const fwdArn = { 'Fn::GetAtt': [functionId(t, fnName('pagerduty-forwarder')), 'Arn'] };
    expect(subs).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ Protocol: 'lambda', TopicArn: topicRef('critical'), Endpoint: fwdArn }),
        expect.objectContaining({ Protocol: 'lambda', TopicArn: topicRef('warning'), Endpoint: fwdArn }),
        expect.objectContaining({ Protocol: 'email', TopicArn: topicRef('info'), Endpoint: 'data-platform@example.com' }),
      ]),
    );
    expect(subs).toHaveLength(3);
    s.template().hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: fnName('pagerduty-forwarder'),
      Environment: { Variables: Match.objectLike({ [ENV.pagerDutySecretArn]: config.paging.pagerDutyRoutingKeySecretArn, [ENV.runbookUrl]: config.runbookUrl }) },
    });
  });
});

describe('dashboard', () => {
  it('shows latency with the 2000 ms line, connections, CPU, data quality, MV staleness, sessions, table statistics with the 20 % line, jobs and alarm status', () => {
    const [[, d]] = resourcesOf(t, 'AWS::CloudWatch::Dashboard') as [[string, any]];
    expect(d.DashboardName).toBe('attempt-ops-prod');
    const body = JSON.stringify(d.DashboardBody);
    for (const needle of [
      'attempt_query_p99_latency', '"value\\":2000', 'DatabaseConnections', 'CPUUtilization', 'attempt_poison_rows',
      'attempt_null_required_fields', 'attempt_orphan_results', 'attempt_duplicate_ids', 'attempt_mv_staleness_seconds',
      'attempt_no_tie_groups', 'attempt_mv_divergent_rows', 'attempt_capture_problems',
      'blocked_queries', 'idle_in_transaction_sessions', 'long_running_queries', 'table_modified_ratio', '"value\\":0.2',
      '\\"Duration\\"', '\\"Errors\\"', '\\"type\\":\\"alarm\\"',
    ]) {
      expect(body, needle).toContain(needle);
    }
  });
});

describe('cdk-nag and secrets', () => {
  it('has no unacknowledged AwsSolutions finding, and every acknowledgement gives a reason', () => {
    const report = JSON.parse(readFileSync(join(s.outdir, 'validation-report.json'), 'utf8'));
    const nag = report.pluginReports.find((r: any) => r.pluginName === 'AwsSolutions');
    expect(nag.conclusion).toBe('success');
    expect(nag.violations).toEqual([]);
    expect(nag.suppressedViolations.length).toBeGreaterThan(0);
    for (const v of nag.suppressedViolations) expect(v.reason, v.acknowledgedId).toMatch(/\w{3,}.{30,}/);
  });

  it('leaves no unacknowledged warning or error annotation', () => {
    const annotations = Annotations.fromStack(s.stacks[0]!);
    expect(annotations.findWarning('*', Match.anyValue())).toEqual([]);
    expect(annotations.findError('*', Match.anyValue())).toEqual([]);
  });

  it('puts no secret value in the template or any asset', () => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const f of readdirSync(dir)) {
        const p = join(dir, f);
        if (statSync(p).isDirectory()) walk(p);
        else files.push(p);
      }
    };
    walk(s.outdir);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(text.includes(CANARY_PASSWORD), f).toBe(false);
      expect(text.includes(CANARY_ROUTING_KEY), f).toBe(false);
    }
    const text = JSON.stringify(t);
    expect(text).not.toMatch(/\{\{resolve:(secretsmanager|ssm-secure)/);
    expect(text).not.toMatch(/postgres(ql)?:\/\/[^:"/]+:[^@"]+@/);
    expect(resourcesOf(t, 'AWS::SecretsManager::Secret')).toEqual([]);
    // Environment variables that name a secret hold its ARN, never its contents.
    for (const [, p] of resourcesOf(t, 'AWS::Lambda::Function')) {
      for (const [k, v] of Object.entries<any>(p.Environment?.Variables ?? {})) {
        if (/SECRET|PASSWORD|TOKEN|ROUTING/i.test(k)) expect(v, k).toMatch(/^arn:aws:secretsmanager:/);
        expect(k, 'no password variable').not.toMatch(/PASSWORD/i);
      }
    }
  });
});

describe('snapshot', () => {
  it('matches, with asset hashes redacted', () => {
    const redact = (value: unknown): unknown => {
      if (typeof value === 'string') {
        return value
          .replace(/[0-9a-f]{64}(\.zip)?/g, '<asset-hash>')
          .replace(/CurrentVersion[0-9A-F]{8}[0-9a-f]{32}/g, 'CurrentVersion<hash>');
      }
      if (Array.isArray(value)) return value.map(redact);
      if (value && typeof value === 'object') {
        return Object.fromEntries(Object.entries(value).map(([k, v]) => [redact(k) as string, redact(v)]));
      }
      return value;
    };
    expect(redact(t)).toMatchSnapshot();
  });
});

/**
 * One app, two databases, and the config's other branches: an Aurora cluster, custom rates, the
 * optional "no queries" alarm, a customer managed key on the secrets, a database security group
 * owned by someone else, and PagerDuty through its CloudWatch integration instead of the forwarder.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { asArray, parse, rawExampleConfig, resourcesOf, statementsOfRole, synth, SYNTH_TIMEOUT_MS, type Synthesized, type TemplateJson } from './support.ts';

const PD_URL = 'https://events.pagerduty.com/integration/0123456789abcdef0123456789abcdef/enqueue';
const KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';

let s: Synthesized;
let prod: TemplateJson;
let reporting: TemplateJson;

beforeAll(() => {
  const raw = rawExampleConfig();
  delete raw.paging.pagerDutyRoutingKeySecretArn;
  raw.paging = { pagerDutyCloudWatchUrl: PD_URL };
  raw.opsInvokerRoleArns = [];
  const second = structuredClone(raw.targets[0]);
  second.name = 'eu_reporting';
  second.database = {
    secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:attempt-ops/reporting/monitor-Qw3Er4',
    secretKmsKeyArn: KEY_ARN,
    securityGroupId: 'sg-0fedcba9876543210',
    port: 6432,
    manageIngress: false,
    clusterIdentifier: 'reporting-cluster',
    schema: 'exams',
  };
  second.functionSecrets = {};
  second.schedules = { 'publish-metrics': '5 minutes', 'refresh-mv': '2 hours' };
  second.alarms = { noQueries: true };
  second.refreshMode = 'incremental';
  raw.targets.push(second);
  // The first target turns the change capture off (its refresh stays concurrent).
  raw.targets[0].capture = false;
  s = synth(parse(raw), { skipBundling: true });
  prod = s.json(0);
  reporting = s.json(1);
}, SYNTH_TIMEOUT_MS);

afterAll(() => s?.cleanup());

const alarmsOf = (t: TemplateJson) => resourcesOf(t, 'AWS::CloudWatch::Alarm').map(([, p]) => p);
const dimsOf = (a: any) => a.Dimensions ?? a.Metrics.find((m: any) => m.MetricStat).MetricStat.Metric.Dimensions;

describe('two targets in one app', () => {
  it('makes one stack per database, each with its own names and Database dimension', () => {
    expect(s.stacks.map((x) => x.stackName)).toEqual(['AttemptOps-prod', 'AttemptOps-eu-reporting']);
    for (const [t, name] of [[prod, 'prod'], [reporting, 'eu_reporting']] as const) {
      const fns = resourcesOf(t, 'AWS::Lambda::Function').map(([, p]) => p.FunctionName).filter(Boolean);
      expect(fns.every((f: string) => f.startsWith(`attempt-ops-${name}-`))).toBe(true);
      for (const a of alarmsOf(t)) {
        expect(a.AlarmName.startsWith(`attempt-ops-${name}-`)).toBe(true);
        const db = (dimsOf(a) ?? []).find((d: any) => d.Name === 'Database');
        if (db) expect(db.Value).toBe(name);
      }
      for (const [, p] of resourcesOf(t, 'AWS::Lambda::Function')) {
        const v = p.Environment?.Variables?.ATTEMPT_OPS_TARGET;
        if (v !== undefined) expect(v).toBe(name);
      }
    }
  });

  it('passes cdk-nag for both stacks', () => {
    const report = JSON.parse(readFileSync(join(s.outdir, 'validation-report.json'), 'utf8'));
    const nag = report.pluginReports.find((r: any) => r.pluginName === 'AwsSolutions');
    expect(nag.violations).toEqual([]);
  });
});

describe('the change capture per target', () => {
  it('is turned off only where the config says so: ATTEMPT_OPS_CAPTURE=off on that target\'s functions, unset on the other\'s', () => {
    const values = (t: TemplateJson) => resourcesOf(t, 'AWS::Lambda::Function').map(([, p]) => p.Environment?.Variables).filter((v) => v?.ATTEMPT_OPS_TARGET).map((v) => v.ATTEMPT_OPS_CAPTURE);
    expect(values(prod).length).toBeGreaterThan(0);
    expect(new Set(values(prod))).toEqual(new Set(['off']));
    expect(new Set(values(reporting))).toEqual(new Set([undefined]));
  });
});

describe('the second target', () => {
  it('follows its own rates, and its heartbeat alarms follow them', () => {
    const rules = resourcesOf(reporting, 'AWS::Events::Rule').map(([, p]) => [p.Name, p.ScheduleExpression]);
    expect(rules).toEqual(
      expect.arrayContaining([
        ['attempt-ops-eu_reporting-publish-metrics', 'rate(5 minutes)'],
        ['attempt-ops-eu_reporting-refresh-mv', 'rate(2 hours)'],
        ['attempt-ops-eu_reporting-health-check-incremental', 'rate(1 hour)'],
      ]),
    );
    const named = (name: string) => alarmsOf(reporting).find((a) => a.AlarmName === `attempt-ops-eu_reporting-${name}`);
    const period = (a: any) => a.Period ?? a.Metrics.find((m: any) => m.MetricStat).MetricStat.Period;
    const window = (name: string) => {
      const a = named(name);
      return [period(a), a.EvaluationPeriods, a.DatapointsToAlarm];
    };
    // publish-metrics every 5 minutes: "monitoring blind" needs 2 periods (still at least 5 minutes).
    expect(window('P1-monitoring-blind-publish-metrics')).toEqual([300, 2, 2]);
    expect(window('P1-job-failing-or-silent-refresh-mv')).toEqual([7200, 2, 2]);
    expect(window('P1-job-failing-or-silent-health-check')).toEqual([3600, 2, 2]);
    // The live signals follow publish-metrics' rate: one period per run, 2 of 3.
    for (const live of ['P1-blocked', 'P1-p99-latency', 'P2-latency-degraded', 'P2-long-running']) {
      expect(window(live), live).toEqual([300, 3, 2]);
    }
    // "job failed" holds for one schedule interval: refresh-mv every 2 hours, 1 of 3 hours.
    expect(window('P2-job-failed-refresh-mv')).toEqual([3600, 3, 1]);
    expect(window('P2-job-failed-publish-metrics')).toEqual([300, 2, 1]);
    expect(window('P2-job-failed-ops')).toEqual([300, 1, 1]);
  });

  it('refreshes attempt_mv incrementally when its config says so; the first target keeps the default', () => {
    const refreshInput = (t: TemplateJson) =>
      JSON.parse(resourcesOf(t, 'AWS::Events::Rule').find(([, p]) => p.Name.endsWith('-refresh-mv'))![1].Targets[0].Input);
    expect(refreshInput(reporting)).toEqual({ mode: 'incremental' });
    expect(refreshInput(prod)).toEqual({});
  });

  it('has the optional "no queries" alarm, which the first target leaves off', () => {
    const noQueries = alarmsOf(reporting).find((a) => a.AlarmName === 'attempt-ops-eu_reporting-P0-no-queries');
    expect(noQueries).toMatchObject({
      MetricName: 'attempt_query_count',
      Statistic: 'Sum',
      Period: 3600,
      ComparisonOperator: 'LessThanOrEqualToThreshold',
      Threshold: 0,
      TreatMissingData: 'notBreaching',
    });
    expect(alarmsOf(prod).some((a) => a.AlarmName.includes('no-queries'))).toBe(false);
  });

  it('watches the Aurora cluster in AWS/RDS', () => {
    const cpu = alarmsOf(reporting).find((a) => a.AlarmName === 'attempt-ops-eu_reporting-P1-cpu');
    expect(cpu.Dimensions).toEqual([{ Name: 'DBClusterIdentifier', Value: 'reporting-cluster' }]);
  });

  it('may decrypt its secret with the customer managed key, only through Secrets Manager', () => {
    const fn = resourcesOf(reporting, 'AWS::Lambda::Function').find(([, p]) => p.FunctionName === 'attempt-ops-eu_reporting-health-check')![1];
    const statements = statementsOfRole(reporting, fn.Role['Fn::GetAtt'][0]);
    const decrypt = statements.find((st) => asArray(st.Action).includes('kms:Decrypt'));
    expect(decrypt.Resource).toBe(KEY_ARN);
    expect(decrypt.Condition).toEqual({ StringEquals: { 'kms:ViaService': 'secretsmanager.eu-west-1.amazonaws.com' } });
  });

  it('leaves the database security group alone when told to, and uses the configured port', () => {
    expect(resourcesOf(reporting, 'AWS::EC2::SecurityGroupIngress')).toEqual([]);
    expect(resourcesOf(reporting, 'AWS::EC2::SecurityGroupEgress').map(([, p]) => [p.DestinationSecurityGroupId, p.FromPort])).toEqual([['sg-0fedcba9876543210', 6432]]);
    expect(resourcesOf(prod, 'AWS::EC2::SecurityGroupIngress')).toHaveLength(1);
  });
});

describe('paging through the PagerDuty CloudWatch integration', () => {
  it('subscribes the integration URL to critical and warning, and deploys no forwarder', () => {
    for (const t of [prod, reporting]) {
      const subs = resourcesOf(t, 'AWS::SNS::Subscription').map(([, p]) => p);
      expect(subs.map((x) => [x.Protocol, x.Endpoint])).toEqual([
        ['https', PD_URL],
        ['https', PD_URL],
      ]);
      const topics = Object.fromEntries(resourcesOf(t, 'AWS::SNS::Topic').map(([id, p]) => [id, p.TopicName.split('-').pop()]));
      expect(subs.map((x) => topics[x.TopicArn.Ref]).sort()).toEqual(['critical', 'warning']);
      expect(resourcesOf(t, 'AWS::SQS::Queue')).toEqual([]);
      expect(resourcesOf(t, 'AWS::Lambda::Function').some(([, p]) => String(p.FunctionName).endsWith('pagerduty-forwarder'))).toBe(false);
    }
  });

  it('grants nobody invoke on ops when no invoker role is configured', () => {
    const opsId = resourcesOf(prod, 'AWS::Lambda::Function').find(([, p]) => p.FunctionName === 'attempt-ops-prod-ops')![0];
    const perms = resourcesOf(prod, 'AWS::Lambda::Permission').filter(([, p]) => JSON.stringify(p.FunctionName).includes(opsId));
    expect(perms).toEqual([]);
  });
});

describe('target names at the limit', () => {
  it('a 27-character name (the longest the config allows) synthesizes, rule names within 64 characters', () => {
    const raw = rawExampleConfig();
    raw.targets = [{ ...raw.targets[0], name: 'a'.repeat(27) }];
    const long = synth(parse(raw), { skipBundling: true });
    try {
      const rules = resourcesOf(long.json(0), 'AWS::Events::Rule').map(([, p]) => p.Name ?? '');
      expect(rules.length).toBeGreaterThan(0);
      for (const name of rules) {
        expect(name).toContain('a'.repeat(27));
        expect(name.length).toBeLessThanOrEqual(64);
      }
    } finally {
      long.cleanup();
    }
  }, SYNTH_TIMEOUT_MS);
});

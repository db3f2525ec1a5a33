/**
 * Everything attempt-ops deploys for one database (target): the job functions in the database's
 * VPC, their schedules, the contract's alarms with their paging, the dashboard, and the
 * deploy-time bootstrap. One stack per target, so each database has its own functions, alarms
 * and `Database` dimension, and can be deployed or removed on its own.
 */
import { CfnOutput, Duration, Stack, Validations, type StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { JOBS, type JobName } from '../functions/contract/index.ts';
import { deployedFunctionName, SCHEDULES, type ScheduleId, type ScheduleSpec } from '../functions/contract/schedules.ts';
import { AttemptAlarms, type RdsDimension, type ScheduledJob } from './alarms.ts';
import { BootstrapOnDeploy } from './bootstrap-on-deploy.ts';
import { functionSettingsFor, scheduleRateMinutes, secretArnFor, type AttemptOpsConfig, type TargetConfig } from './config.ts';
import { AttemptDashboard } from './dashboard.ts';
import { JobFunction, type NetworkPlacement } from './job-function.ts';
import { Paging } from './paging.ts';
import { JobSchedules } from './schedules.ts';

export interface AttemptOpsStackProps extends StackProps {
  readonly config: AttemptOpsConfig;
  readonly target: TargetConfig;
}

const JOB_DESCRIPTIONS: Record<JobName, string> = {
  'health-check': 'health checks of the attempt view (CONTRACT section 3)',
  analyze: 'ANALYZE of the watched tables when statistics are stale',
  'refresh-mv': 'refresh of attempt_mv',
  'publish-metrics': 'the custom metrics, every minute',
  bootstrap: 'attempt_ops schema, attempt_mv, indexes and grants',
  ops: 'runbook diagnosis and remediation (manual invokes only)',
};

/** Maintenance that must never overlap itself: one run at a time, the next one waits or is dropped. */
const SINGLE_FLIGHT: readonly JobName[] = ['analyze', 'refresh-mv'];

export class AttemptOpsStack extends Stack {
  readonly jobs: Readonly<Record<JobName, JobFunction>>;
  readonly paging: Paging;
  readonly alarms: AttemptAlarms;
  readonly schedules: JobSchedules;
  readonly functionSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: AttemptOpsStackProps) {
    super(scope, id, props);
    const { config, target: t } = props;
    const logRetention = config.logRetentionDays as logs.RetentionDays;

    // Network: imported by id (no lookup, so synth needs no credentials).
    const azs = [...new Set(t.vpc.subnets.map((s) => s.availabilityZone))];
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', { vpcId: t.vpc.vpcId, availabilityZones: azs });
    const subnets = t.vpc.subnets.map((s, i) => {
      const subnet = ec2.Subnet.fromSubnetAttributes(this, `Subnet${i}`, { subnetId: s.subnetId, availabilityZone: s.availabilityZone });
      Validations.of(subnet).acknowledge({
        id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
        reason: 'The functions only run in these subnets; nothing here reads or changes their route tables.',
      });
      return subnet;
    });
    const dbSg = ec2.SecurityGroup.fromSecurityGroupId(this, 'DatabaseSecurityGroup', t.database.securityGroupId, {
      mutable: t.database.manageIngress,
    });
    this.functionSecurityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc,
      description: `attempt-ops ${t.name}: job functions to the database`,
      allowAllOutbound: false,
    });
    this.functionSecurityGroup.addEgressRule(dbSg, ec2.Port.tcp(t.database.port), 'PostgreSQL');
    // Secrets Manager and CloudWatch, through a NAT gateway or interface endpoints.
    this.functionSecurityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'AWS APIs over HTTPS');
    if (t.database.manageIngress) {
      dbSg.addIngressRule(this.functionSecurityGroup, ec2.Port.tcp(t.database.port), `attempt-ops ${t.name} functions`);
    }
    const network: NetworkPlacement = { vpc, subnets, securityGroup: this.functionSecurityGroup };

    // One imported secret per distinct ARN; each function is granted only its own.
    const secrets = new Map<string, secretsmanager.ISecret>();
    const secretFor = (arn: string) => {
      let s = secrets.get(arn);
      if (!s) {
        s = secretsmanager.Secret.fromSecretCompleteArn(this, `DatabaseSecret${secrets.size}`, arn);
        secrets.set(arn, s);
      }
      return s;
    };

    this.paging = new Paging(this, 'Paging', {
      target: t.name,
      runbookUrl: config.runbookUrl,
      logRetention,
      routingKeySecretArn: config.paging.pagerDutyRoutingKeySecretArn,
      routingKeySecretKmsKeyArn: config.paging.pagerDutyRoutingKeySecretKmsKeyArn,
      pagerDutyCloudWatchUrl: config.paging.pagerDutyCloudWatchUrl,
      infoEmails: config.paging.infoEmails,
    });

    const shortestRate = (job: JobName) => {
      const rates = SCHEDULES.filter((s) => s.job === job).map((s) => scheduleRateMinutes(t, s.id));
      return rates.length > 0 ? Math.min(...rates) : undefined;
    };

    const jobs = {} as Record<JobName, JobFunction>;
    for (const job of JOBS) {
      const s = functionSettingsFor(t, job);
      const rate = shortestRate(job);
      const fn = new JobFunction(this, `Job-${job}`, {
        entryName: job,
        functionName: deployedFunctionName(t.name, job),
        description: `attempt-ops ${t.name}: ${JOB_DESCRIPTIONS[job]}`,
        timeout: Duration.seconds(s.timeoutSeconds),
        memoryMb: s.memoryMb,
        logRetention,
        network,
        reservedConcurrency: SINGLE_FLIGHT.includes(job) ? 1 : undefined,
        // A failed scheduled run is retried by the next scheduled run; Lambda's own retries would
        // only run maintenance twice and double-count the failure.
        retryAttempts: 0,
        ...(rate !== undefined ? { maxEventAge: Duration.minutes(Math.min(Math.max(rate, 1), 360)) } : {}),
      });
      fn.bindDatabase({
        secret: secretFor(secretArnFor(t, job)),
        secretKmsKeyArn: t.database.secretKmsKeyArn,
        tls: t.database.tls,
        target: t.name,
        schema: t.database.schema,
        appRole: t.database.appRole,
        statementTimeoutMs: s.statementTimeoutMs,
        lockTimeoutMs: s.lockTimeoutMs,
        connectTimeoutMs: s.connectTimeoutMs,
        runbookUrl: config.runbookUrl,
        capture: t.capture,
      });
      fn.allowPutMetricData(config.namespace);
      jobs[job] = fn;
    }
    this.jobs = jobs;

    // Only the configured on-call roles may invoke ops: its resource policy names nobody else.
    config.opsInvokerRoleArns.forEach((arn, i) => {
      jobs.ops.function.addPermission(`OpsInvoker${i}`, {
        principal: new iam.ArnPrincipal(arn),
        action: 'lambda:InvokeFunction',
      });
    });

    // The contract's schedules, with the target's refresh mode in the refresh-mv payload.
    const schedules: (ScheduleSpec & { id: ScheduleId })[] = SCHEDULES.map((spec) =>
      spec.job === 'refresh-mv' && t.refreshMode !== 'concurrent' ? { ...spec, payload: { ...spec.payload, mode: t.refreshMode } } : spec,
    );
    this.schedules = new JobSchedules(this, 'Schedules', { target: t.name });
    for (const spec of schedules) {
      this.schedules.addSchedule(spec, jobs[spec.job].function, scheduleRateMinutes(t, spec.id));
    }

    // The first schedule of each job (health-check: its incremental run) gives its first run.
    const firstRuns = JOBS.flatMap((job) => {
      const spec = schedules.find((x) => x.job === job);
      return spec ? [{ job, fn: jobs[job].function, payload: spec.payload }] : [];
    });
    const bootstrapOnDeploy = new BootstrapOnDeploy(this, 'BootstrapOnDeploy', {
      target: t.name,
      bootstrap: jobs.bootstrap.function,
      after: jobs.bootstrap,
      logRetention,
      bootstrapTimeout: Duration.seconds(functionSettingsFor(t, 'bootstrap').timeoutSeconds),
      firstRuns,
    });

    const rds: RdsDimension = t.database.instanceIdentifier
      ? { name: 'DBInstanceIdentifier', value: t.database.instanceIdentifier }
      : { name: 'DBClusterIdentifier', value: t.database.clusterIdentifier! };
    const jobFunctions: Record<string, lambda.IFunction> = Object.fromEntries(JOBS.map((j) => [j, jobs[j].function]));
    const scheduledJobs: ScheduledJob[] = JOBS.flatMap((job) => {
      const rate = shortestRate(job);
      return rate === undefined ? [] : [{ job, periodMinutes: rate }];
    });
    this.alarms = new AttemptAlarms(this, 'Alarms', {
      target: t.name,
      namespace: config.namespace,
      runbookUrl: config.runbookUrl,
      paging: this.paging,
      rds,
      functions: jobFunctions,
      scheduledJobs,
      enableNoQueries: t.alarms.noQueries,
    });
    this.alarms.addPagingAlarms(this.paging);
    // Alarms come to life once bootstrap has run and the first runs are under way.
    this.alarms.node.addDependency(bootstrapOnDeploy.resource);

    const dashboard = new AttemptDashboard(this, 'Dashboard', {
      target: t.name,
      namespace: config.namespace,
      rds,
      functions: {
        ...jobFunctions,
        ...(this.paging.forwarder ? { 'pagerduty-forwarder': this.paging.forwarder.function } : {}),
      },
      alarms: this.alarms.built.map((b) => b.alarm),
    });

    for (const job of JOBS) new CfnOutput(this, `Function-${job}`, { value: jobs[job].function.functionName, description: `${job} function` });
    new CfnOutput(this, 'DashboardName', { value: dashboard.dashboard.dashboardName });
    for (const [name, topic] of Object.entries(this.paging.topics)) new CfnOutput(this, `Topic-${name}`, { value: topic.topicArn });

  }
}

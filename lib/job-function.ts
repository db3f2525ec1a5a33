/**
 * One Lambda function with our defaults: Node.js 22 on arm64, an esbuild bundle, its own log
 * group with a retention, its own role (no AWS managed policies), and methods that grant exactly
 * what a job needs: `bindDatabase()` (its secret, its network, its session timeouts) and
 * `allowPutMetricData()` (our namespace only).
 */
import { fileURLToPath } from 'node:url';
import { Duration, Stack, Validations } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { ENV } from '../functions/contract/index.ts';
import { nagId } from './nag.ts';

export const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const HANDLERS_DIR = fileURLToPath(new URL('../functions/handlers/', import.meta.url));

/** The runtime every function uses; the bundle targets the same Node.js version. */
export const RUNTIME = lambda.Runtime.NODEJS_22_X;
export const BUNDLE_TARGET = 'node22';

/** Where Lambda's Node.js runtime keeps the Amazon CA bundle, RDS CAs included. */
export const LAMBDA_CA_BUNDLE = '/var/runtime/ca-cert.pem';

/** The entry file of a function: functions/handlers/<name>.ts, exporting `handler`. */
export function entryFor(name: string): string {
  return `${HANDLERS_DIR}${name}.ts`;
}

export interface NetworkPlacement {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.ISubnet[];
  readonly securityGroup: ec2.ISecurityGroup;
}

export interface JobFunctionProps {
  /** The handler file name under functions/handlers/, without `.ts`. */
  readonly entryName: string;
  /** The deployed function name. */
  readonly functionName: string;
  readonly description: string;
  readonly timeout: Duration;
  /** @default 256 */
  readonly memoryMb?: number;
  readonly logRetention: logs.RetentionDays;
  /** Run inside the database's VPC. @default not in a VPC */
  readonly network?: NetworkPlacement;
  /** @default no reservation (account concurrency) */
  readonly reservedConcurrency?: number;
  /** Retries of a failed asynchronous invocation. @default 2 (Lambda's default) */
  readonly retryAttempts?: number;
  /** How long an asynchronous event may wait (throttled) before it is dropped. @default 6 hours */
  readonly maxEventAge?: Duration;
  /** Where asynchronous events go after the last retry. @default dropped */
  readonly onFailure?: lambda.IDestination;
  /** @default none */
  readonly environment?: Record<string, string>;
}

export interface DatabaseBinding {
  readonly secret: secretsmanager.ISecret;
  /** The secret's customer managed key. @default the AWS managed key (no grant needed) */
  readonly secretKmsKeyArn?: string;
  readonly tls: 'verify-full' | 'require' | 'disable';
  readonly target: string;
  readonly schema: string;
  readonly appRole: string;
  readonly statementTimeoutMs: number;
  readonly lockTimeoutMs: number;
  readonly connectTimeoutMs: number;
  readonly runbookUrl: string;
  /** Whether bootstrap installs the change capture. @default true */
  readonly capture?: boolean;
}

export class JobFunction extends Construct {
  readonly function: lambda.Function;
  readonly role: iam.Role;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: JobFunctionProps) {
    super(scope, id);
    this.logGroup = new logs.LogGroup(this, 'Logs', { retention: props.logRetention });
    // Our own role instead of AWSLambdaBasicExecutionRole: write to this log group only.
    this.role = new iam.Role(this, 'Role', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `attempt-ops ${props.functionName}`,
    });
    this.logGroup.grantWrite(this.role);

    let networkPolicy: iam.Policy | undefined;
    if (props.network) {
      // Lambda checks, at create time, that the role may manage the function's ENIs; EC2 offers
      // no resource-level scoping for these actions.
      networkPolicy = new iam.Policy(this, 'NetworkPolicy', {
        roles: [this.role],
        statements: [
          new iam.PolicyStatement({
            actions: [
              'ec2:CreateNetworkInterface',
              'ec2:DescribeNetworkInterfaces',
              'ec2:DescribeSubnets',
              'ec2:DeleteNetworkInterface',
              'ec2:AssignPrivateIpAddresses',
              'ec2:UnassignPrivateIpAddresses',
            ],
            resources: ['*'],
          }),
        ],
      });
    }

    this.function = new NodejsFunction(this, 'Function', {
      functionName: props.functionName,
      description: props.description,
      runtime: RUNTIME,
      architecture: lambda.Architecture.ARM_64,
      timeout: props.timeout,
      memorySize: props.memoryMb ?? 256,
      role: this.role,
      logGroup: this.logGroup,
      loggingFormat: lambda.LoggingFormat.TEXT,
      reservedConcurrentExecutions: props.reservedConcurrency,
      retryAttempts: props.retryAttempts,
      maxEventAge: props.maxEventAge,
      onFailure: props.onFailure,
      environment: { NODE_OPTIONS: '--enable-source-maps', ...props.environment },
      ...(props.network
        ? { vpc: props.network.vpc, vpcSubnets: { subnets: props.network.subnets }, securityGroups: [props.network.securityGroup] }
        : {}),
      entry: entryFor(props.entryName),
      handler: 'handler',
      projectRoot: PROJECT_ROOT,
      depsLockFilePath: `${PROJECT_ROOT}package-lock.json`,
      bundling: {
        // CommonJS: pg and its optional native binding load as-is; ESM would need a require shim.
        format: OutputFormat.CJS,
        target: BUNDLE_TARGET,
        minify: true,
        sourceMap: true,
        // The runtime ships the AWS SDK v3; pg-native is optional and never installed.
        externalModules: ['@aws-sdk/*', 'pg-native'],
        // The handlers load the SDK on first use with import(). Left as import(), Node's ESM
        // resolver would ignore NODE_PATH and miss the runtime's SDK in /var/runtime: compiled to
        // require(), it is found the way a static import would be.
        esbuildArgs: { '--supported:dynamic-import': 'false' },
        forceDockerBundling: false,
      },
    });
    if (networkPolicy) {
      this.function.node.addDependency(networkPolicy);
      Validations.of(networkPolicy).acknowledge({
        id: nagId('AwsSolutions-IAM5[Resource::*]'),
        reason: 'Lambda requires these ENI actions for a function in a VPC, and EC2 supports no resource-level permissions for them.',
      });
    }
    Validations.of(this.function).acknowledge({
      id: nagId('AwsSolutions-L1'),
      reason: `Pinned to ${RUNTIME.name}, the Node.js version the bundle targets (${BUNDLE_TARGET}) and the handlers are tested on; RUNTIME and BUNDLE_TARGET move together.`,
    });
  }

  /**
   * Connect the function to one database: read its own secret (by ARN, nothing else), verify the
   * server certificate against the CA bundle the runtime ships, and set the session timeouts.
   */
  bindDatabase(db: DatabaseBinding): void {
    this.grantSecretRead(db.secret, db.secretKmsKeyArn);
    const env: Record<string, string> = {
      [ENV.dbSecretArn]: db.secret.secretArn,
      [ENV.dbTls]: db.tls,
      [ENV.target]: db.target,
      [ENV.schema]: db.schema,
      [ENV.appRole]: db.appRole,
      [ENV.statementTimeoutMs]: String(db.statementTimeoutMs),
      [ENV.lockTimeoutMs]: String(db.lockTimeoutMs),
      [ENV.connectTimeoutMs]: String(db.connectTimeoutMs),
      [ENV.runbookUrl]: db.runbookUrl,
      ...(db.capture === false ? { [ENV.capture]: 'off' } : {}),
    };
    // Node.js 20+ runtimes no longer load the Amazon CAs by default (a cold-start saving); only
    // functions that talk TLS to RDS pay for loading them.
    if (db.tls === 'verify-full') env.NODE_EXTRA_CA_CERTS = LAMBDA_CA_BUNDLE;
    for (const [k, v] of Object.entries(env)) this.function.addEnvironment(k, v);
  }

  /**
   * Read one secret by its ARN, and decrypt it with its customer managed key only when Secrets
   * Manager asks (kms:ViaService). CDK's imported keys grant nothing, so the key grant is explicit.
   */
  grantSecretRead(secret: secretsmanager.ISecret, kmsKeyArn?: string): void {
    secret.grantRead(this.role);
    if (kmsKeyArn) {
      this.role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          actions: ['kms:Decrypt'],
          resources: [kmsKeyArn],
          conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
        }),
      );
    }
  }

  /** PutMetricData, only into `namespace` (the action has no resource-level permissions). */
  allowPutMetricData(namespace: string): iam.Policy {
    const policy = new iam.Policy(this, 'MetricsPolicy', {
      roles: [this.role],
      statements: [
        new iam.PolicyStatement({
          actions: ['cloudwatch:PutMetricData'],
          resources: ['*'],
          conditions: { StringEquals: { 'cloudwatch:namespace': namespace } },
        }),
      ],
    });
    Validations.of(policy).acknowledge({
      id: nagId('AwsSolutions-IAM5[Resource::*]'),
      reason: `cloudwatch:PutMetricData has no resource-level permissions; the cloudwatch:namespace condition limits it to ${namespace}.`,
    });
    this.function.addEnvironment(ENV.namespace, namespace);
    this.function.addEnvironment(ENV.metrics, 'cloudwatch');
    return policy;
  }

  get functionName(): string {
    return this.function.functionName;
  }

}

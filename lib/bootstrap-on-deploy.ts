/**
 * Runs bootstrap ({"apply": true}) during `cdk deploy`, so a deploy leaves the database ready:
 * the attempt_ops schema, attempt_mv, its indexes and the grants.
 *
 * Neither CDK triggers (they invoke with an empty event, which bootstrap treats as a dry run) nor
 * AwsCustomResource Lambda:Invoke (it reports success even when the function threw) fit, so a
 * small provider function of ours invokes bootstrap synchronously with exactly the contract's
 * payload and fails the deployment when bootstrap fails. The resource is keyed on bootstrap's
 * current version: new bootstrap code or settings run it again, an unchanged deploy does not.
 *
 * After bootstrap it starts one run of each scheduled job, so the heartbeat alarms (silence is
 * breaching) have data from the start instead of paging until each schedule first fires.
 */
import { CustomResource, Duration, Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import type { PayloadFunction } from '../functions/contract/index.ts';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { DEPLOY_BOOTSTRAP_PAYLOAD } from '../functions/contract/schedules.ts';
import { JobFunction } from './job-function.ts';
import { nagId } from './nag.ts';

export interface BootstrapOnDeployProps {
  readonly target: string;
  /** The bootstrap job function. */
  readonly bootstrap: lambda.Function;
  /** Construct that must exist before bootstrap runs (the function with its policies). */
  readonly after: Construct;
  readonly logRetention: logs.RetentionDays;
  /** How long bootstrap may take; the invoker waits a little longer. */
  readonly bootstrapTimeout: Duration;
  /** Jobs to start once, asynchronously, after bootstrap succeeded. @default none */
  readonly firstRuns?: readonly { readonly job: PayloadFunction; readonly fn: lambda.IFunction; readonly payload: unknown }[];
}

export class BootstrapOnDeploy extends Construct {
  readonly invoker: JobFunction;
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: BootstrapOnDeployProps) {
    super(scope, id);
    this.invoker = new JobFunction(this, 'Invoker', {
      entryName: 'bootstrap-on-deploy',
      functionName: `attempt-ops-${props.target}-bootstrap-on-deploy`,
      description: `attempt-ops ${props.target}: runs bootstrap {"apply": true} during cdk deploy`,
      timeout: Duration.seconds(Math.min(900, props.bootstrapTimeout.toSeconds() + 60)),
      memoryMb: 128,
      logRetention: props.logRetention,
      retryAttempts: 0,
    });
    const version = props.bootstrap.currentVersion;
    version.grantInvoke(this.invoker.role);
    const firstRuns = props.firstRuns ?? [];
    if (firstRuns.length > 0) {
      // Exactly these functions, not their versions and aliases (grantInvoke would add ARN:*).
      this.invoker.role.addToPrincipalPolicy(
        new iam.PolicyStatement({ actions: ['lambda:InvokeFunction'], resources: firstRuns.map((r) => r.fn.functionArn) }),
      );
    }

    // The framework's own role, scoped to its log group, instead of the AWS managed policy.
    const frameworkLogs = new logs.LogGroup(this, 'ProviderLogs', { retention: props.logRetention });
    const frameworkRole = new iam.Role(this, 'ProviderRole', {
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      description: `attempt-ops ${props.target}: custom resource provider for bootstrap`,
    });
    frameworkLogs.grantWrite(frameworkRole);
    const provider = new cr.Provider(this, 'Provider', {
      onEventHandler: this.invoker.function,
      frameworkOnEventRole: frameworkRole,
      logGroup: frameworkLogs,
    });

    const invokerId = Stack.of(this).getLogicalId(this.invoker.function.node.defaultChild as CfnElement);
    Validations.of(frameworkRole).acknowledge({
      id: nagId(`AwsSolutions-IAM5[Resource::<${invokerId}.Arn>:*]`),
      reason: "The CDK provider framework grants invoke on the invoker function's versions and aliases (ARN:*); it is the one function it calls.",
    });

    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::AttemptOpsBootstrap',
      properties: {
        FunctionName: version.functionArn,
        Payload: JSON.stringify(DEPLOY_BOOTSTRAP_PAYLOAD),
        ...(firstRuns.length > 0
          ? { FirstRuns: Stack.of(this).toJsonString(firstRuns.map((r) => ({ job: r.job, functionName: r.fn.functionName, payload: r.payload }))) }
          : {}),
      },
    });
    this.resource.node.addDependency(props.after);
  }
}

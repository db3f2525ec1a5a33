/**
 * Builds the CDK app from a validated config: one stack per target, with cdk-nag's AwsSolutions
 * checks registered as a policy-validation plugin, so `cdk synth` fails on an unacknowledged
 * finding. bin/app.ts and the tests both call this, so the tests synthesize what deploys.
 */
import { App, Validations, type AppProps } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AttemptOpsStack } from './attempt-ops-stack.ts';
import type { AttemptOpsConfig } from './config.ts';

export interface BuildAppOptions {
  /** Passed to App (tests set outdir). @default {} */
  readonly appProps?: AppProps;
}

/** Stack ids allow letters, digits and '-'; targets may also use '_'. */
export function stackIdFor(target: string): string {
  return `AttemptOps-${target.replace(/_/g, '-')}`;
}

export function buildApp(config: AttemptOpsConfig, options: BuildAppOptions = {}): { app: App; stacks: AttemptOpsStack[] } {
  const app = new App(options.appProps);
  const stacks = config.targets.map(
    (target) =>
      new AttemptOpsStack(app, stackIdFor(target.name), {
        config,
        target,
        env: config.env.account || config.env.region ? { account: config.env.account, region: config.env.region } : undefined,
        description: `attempt-ops for database ${target.name}: health checks, maintenance jobs, alarms and paging`,
      }),
  );
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, stacks };
}

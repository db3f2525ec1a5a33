/** Lambda entry point for the deploy-time bootstrap custom resource (CDK provider framework). */
import { LambdaClient } from '@aws-sdk/client-lambda';
import { bootstrapOnDeploy, type CustomResourceEvent } from '../deploy/bootstrap-on-deploy.ts';

let lambda: LambdaClient | undefined;

export const handler = async (event: CustomResourceEvent) => {
  lambda ??= new LambdaClient({});
  return bootstrapOnDeploy(event, lambda);
};

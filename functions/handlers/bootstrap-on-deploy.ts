/** Lambda entry point for the deploy-time bootstrap custom resource (CDK provider framework). */
import type { LambdaClient } from '@aws-sdk/client-lambda';
import { bootstrapOnDeploy, type CustomResourceEvent } from '../deploy/bootstrap-on-deploy.ts';

let lambda: LambdaClient | undefined;

export const handler = async (event: CustomResourceEvent) => {
  // Loaded on first use, like the other functions' SDK clients.
  lambda ??= new (await import('@aws-sdk/client-lambda')).LambdaClient({});
  return bootstrapOnDeploy(event, lambda);
};

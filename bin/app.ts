/**
 * The CDK app (cdk.json: `npx tsx bin/app.ts`). The config file comes from the context key
 * `attempt-ops:config` (cdk.json points it at config/example.json; override with
 * `npx cdk deploy -c attempt-ops:config=config/prod.json`). An invalid config stops synth with
 * one message per wrong field.
 */
import { App } from 'aws-cdk-lib';
import { buildApp } from '../lib/app.ts';
import { ConfigValidationError, loadConfigFile } from '../lib/config.ts';

export const CONFIG_CONTEXT_KEY = 'attempt-ops:config';

function main(): void {
  // A throwaway App only to read the context the CLI passes (cdk.json and -c flags). autoSynth
  // off: otherwise it would write its empty assembly over the real one at exit.
  const configPath = new App({ autoSynth: false }).node.tryGetContext(CONFIG_CONTEXT_KEY) as string | undefined;
  if (!configPath) {
    throw new ConfigValidationError(`no config: set the context key ${CONFIG_CONTEXT_KEY} (cdk.json, or -c ${CONFIG_CONTEXT_KEY}=path)`);
  }
  const { app } = buildApp(loadConfigFile(configPath));
  app.synth();
}

try {
  main();
} catch (err) {
  if (err instanceof ConfigValidationError) {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

/**
 * Synthesize the app the way `cdk synth` does (buildApp with cdk-nag registered) into a temporary
 * directory, once per test file, and give tests typed access to the template.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { buildApp } from '../../lib/app.ts';
import type { AttemptOpsStack } from '../../lib/attempt-ops-stack.ts';
import { loadConfigFile, parseConfig, type AttemptOpsConfig } from '../../lib/config.ts';

/** Bundling eight functions and running cdk-nag: seconds alone, minutes on a loaded machine. */
export const SYNTH_TIMEOUT_MS = 300_000;

export const EXAMPLE_CONFIG_PATH = new URL('../../config/example.json', import.meta.url).pathname;

export function exampleConfig(): AttemptOpsConfig {
  return loadConfigFile(EXAMPLE_CONFIG_PATH);
}

/** A raw (unvalidated) copy of the example config, for tests that change it. */
export function rawExampleConfig(): Record<string, any> {
  return JSON.parse(readFileSync(EXAMPLE_CONFIG_PATH, 'utf8'));
}

export interface Synthesized {
  outdir: string;
  assembly: CloudAssembly;
  stacks: AttemptOpsStack[];
  template(stackIndex?: number): Template;
  json(stackIndex?: number): TemplateJson;
  cleanup(): void;
}

export interface TemplateJson {
  Resources: Record<string, { Type: string; Properties?: any; Metadata?: any; DependsOn?: string[] }>;
  Outputs?: Record<string, any>;
  [k: string]: unknown;
}

export interface SynthOptions {
  /** Skip esbuild (stack.test.ts covers the bundles); the template is otherwise the same. */
  readonly skipBundling?: boolean;
}

export function synth(config: AttemptOpsConfig = exampleConfig(), options: SynthOptions = {}): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'attempt-ops-cdk-'));
  const context = options.skipBundling ? { 'aws:cdk:bundling-stacks': [] } : undefined;
  const { app, stacks } = buildApp(config, { appProps: { outdir, context } });
  const assembly = app.synth();
  const templates = new Map<number, Template>();
  return {
    outdir,
    assembly,
    stacks,
    template(i = 0) {
      let t = templates.get(i);
      if (!t) {
        t = Template.fromJSON(assembly.getStackArtifact(stacks[i]!.artifactId).template);
        templates.set(i, t);
      }
      return t;
    },
    json(i = 0) {
      return assembly.getStackArtifact(stacks[i]!.artifactId).template as TemplateJson;
    },
    cleanup() {
      rmSync(outdir, { recursive: true, force: true });
    },
  };
}

export function parse(raw: unknown): AttemptOpsConfig {
  return parseConfig(raw, 'test');
}

/** Resources of one type, as [logicalId, properties]. */
export function resourcesOf(t: TemplateJson, type: string): [string, any][] {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, r.Properties ?? {}]);
}

/** The logical id of the Lambda function with this FunctionName. */
export function functionId(t: TemplateJson, functionName: string): string {
  const hit = resourcesOf(t, 'AWS::Lambda::Function').find(([, p]) => p.FunctionName === functionName);
  if (!hit) throw new Error(`no function named ${functionName}`);
  return hit[0];
}

/** Every IAM statement attached to a role, from its inline policies and AWS::IAM::Policy resources. */
export function statementsOfRole(t: TemplateJson, roleId: string): any[] {
  const out: any[] = [];
  const role = t.Resources[roleId];
  for (const p of role?.Properties?.Policies ?? []) out.push(...p.PolicyDocument.Statement);
  for (const [, p] of resourcesOf(t, 'AWS::IAM::Policy')) {
    if ((p.Roles ?? []).some((r: any) => r.Ref === roleId)) out.push(...p.PolicyDocument.Statement);
  }
  return out;
}

export function asArray<T>(v: T | T[] | undefined): T[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

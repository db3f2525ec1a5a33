/**
 * Job payloads (CONTRACT.md section 5). Unknown fields, unknown names and wrong types are
 * rejected before any SQL runs; the CDK schedules build their inputs with the same types.
 *
 * zod/mini, not classic zod: the same checks and messages in a Lambda bundle of tens of KB instead
 * of over 400 KB (and its parse time at every cold start). It ships no messages of its own.
 */
import * as z from 'zod/mini';
import en from 'zod/v4/locales/en.js';
import { ANALYZE_TABLES, CHECK_NAMES, FIXES, INCIDENTS, REFRESH_MODES, SCOPES } from './vocabulary.ts';

z.config(en());

export const healthCheckPayload = z.strictObject({
  checks: z.optional(z.array(z.enum(CHECK_NAMES)).check(z.minLength(1), z.maxLength(CHECK_NAMES.length))),
  scope: z.optional(z.enum(SCOPES)),
  dryRun: z.optional(z.boolean()),
});
export type HealthCheckPayload = z.infer<typeof healthCheckPayload>;

export const analyzePayload = z.strictObject({
  tables: z.optional(z.array(z.enum(ANALYZE_TABLES)).check(z.minLength(1), z.maxLength(ANALYZE_TABLES.length))),
  force: z.optional(z.boolean()),
  dryRun: z.optional(z.boolean()),
});
export type AnalyzePayload = z.infer<typeof analyzePayload>;

export const refreshPayload = z.strictObject({
  mode: z.optional(z.enum(REFRESH_MODES)),
  dryRun: z.optional(z.boolean()),
});
export type RefreshPayload = z.infer<typeof refreshPayload>;

export const publishMetricsPayload = z.strictObject({
  dryRun: z.optional(z.boolean()),
});
export type PublishMetricsPayload = z.infer<typeof publishMetricsPayload>;

export const bootstrapPayload = z.strictObject({
  apply: z.optional(z.boolean()),
});
export type BootstrapPayload = z.infer<typeof bootstrapPayload>;

export const opsPayload = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('diagnose'), incident: z.enum(INCIDENTS) }),
  z.strictObject({ action: z.literal('remediate'), fix: z.enum(FIXES), apply: z.optional(z.boolean()) }),
]);
export type OpsPayload = z.infer<typeof opsPayload>;

export const PAYLOAD_SCHEMAS = {
  'health-check': healthCheckPayload,
  analyze: analyzePayload,
  'refresh-mv': refreshPayload,
  'publish-metrics': publishMetricsPayload,
  bootstrap: bootstrapPayload,
  ops: opsPayload,
} as const;
export type PayloadFunction = keyof typeof PAYLOAD_SCHEMAS;

/** One readable line for a rejected payload: which field, what was wrong. */
export function describeIssues(error: { issues: readonly { path: readonly PropertyKey[]; message: string }[] }): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.map(String).join('.') : 'payload';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

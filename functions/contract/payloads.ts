/**
 * Job payloads (CONTRACT.md section 5). Unknown fields, unknown names and wrong types are
 * rejected before any SQL runs; the CDK schedules build their inputs with the same types.
 */
import { z } from 'zod';
import { ANALYZE_TABLES, CHECK_NAMES, FIXES, INCIDENTS, REFRESH_MODES, SCOPES } from './vocabulary.ts';

export const healthCheckPayload = z.strictObject({
  checks: z.array(z.enum(CHECK_NAMES)).min(1).max(CHECK_NAMES.length).optional(),
  scope: z.enum(SCOPES).optional(),
  dryRun: z.boolean().optional(),
});
export type HealthCheckPayload = z.infer<typeof healthCheckPayload>;

export const analyzePayload = z.strictObject({
  tables: z.array(z.enum(ANALYZE_TABLES)).min(1).max(ANALYZE_TABLES.length).optional(),
  force: z.boolean().optional(),
  dryRun: z.boolean().optional(),
});
export type AnalyzePayload = z.infer<typeof analyzePayload>;

export const refreshPayload = z.strictObject({
  mode: z.enum(REFRESH_MODES).optional(),
  dryRun: z.boolean().optional(),
});
export type RefreshPayload = z.infer<typeof refreshPayload>;

export const publishMetricsPayload = z.strictObject({
  dryRun: z.boolean().optional(),
});
export type PublishMetricsPayload = z.infer<typeof publishMetricsPayload>;

export const bootstrapPayload = z.strictObject({
  apply: z.boolean().optional(),
});
export type BootstrapPayload = z.infer<typeof bootstrapPayload>;

export const opsPayload = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('diagnose'), incident: z.enum(INCIDENTS) }),
  z.strictObject({ action: z.literal('remediate'), fix: z.enum(FIXES), apply: z.boolean().optional() }),
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
export function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const where = issue.path.length > 0 ? issue.path.join('.') : 'payload';
      return `${where}: ${issue.message}`;
    })
    .join('; ');
}

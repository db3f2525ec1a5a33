/**
 * What the stack deploys for each target, as data both sides read: the EventBridge schedules with
 * their payloads (typed by the job payload types, so a schedule cannot send what the handler
 * rejects), the payload `cdk deploy` sends to bootstrap, and the deployed function names (the
 * CLI's `invoke` finds functions by them).
 */
import type {
  AnalyzePayload,
  BootstrapPayload,
  HealthCheckPayload,
  PublishMetricsPayload,
  RefreshPayload,
} from './payloads.ts';
import type { JobName } from './vocabulary.ts';

interface ScheduleOf<J extends JobName, P> {
  /** Stable id: the config key for the rate and part of the rule's logical id. */
  readonly id: string;
  readonly job: J;
  readonly payload: P;
  /** Default rate in minutes. */
  readonly defaultRateMinutes: number;
  readonly description: string;
}

export type ScheduleSpec =
  | ScheduleOf<'health-check', HealthCheckPayload>
  | ScheduleOf<'publish-metrics', PublishMetricsPayload>
  | ScheduleOf<'refresh-mv', RefreshPayload>
  | ScheduleOf<'analyze', AnalyzePayload>;

export const SCHEDULES = [
  {
    id: 'health-check-incremental',
    job: 'health-check',
    payload: { scope: 'incremental' },
    defaultRateMinutes: 60,
    description: 'health checks on the rows since the last run',
  },
  {
    id: 'health-check-full',
    job: 'health-check',
    payload: { scope: 'full' },
    defaultRateMinutes: 24 * 60,
    description: 'health checks on every row',
  },
  { id: 'publish-metrics', job: 'publish-metrics', payload: {}, defaultRateMinutes: 1, description: 'the custom metrics' },
  { id: 'refresh-mv', job: 'refresh-mv', payload: {}, defaultRateMinutes: 60, description: 'refresh attempt_mv' },
  { id: 'analyze', job: 'analyze', payload: {}, defaultRateMinutes: 24 * 60, description: 'ANALYZE the watched tables' },
] as const satisfies readonly ScheduleSpec[];

export type ScheduleId = (typeof SCHEDULES)[number]['id'];
export const SCHEDULE_IDS = SCHEDULES.map((s) => s.id) as ScheduleId[];

/** What `cdk deploy` sends the bootstrap function, so a deploy leaves the database ready. */
export const DEPLOY_BOOTSTRAP_PAYLOAD: BootstrapPayload = { apply: true };

/** The functions of one target: the six jobs and the PagerDuty forwarder. */
export const FORWARDER = 'pagerduty-forwarder';
export type DeployedFunction = JobName | typeof FORWARDER;

/** Lambda function names allow letters, digits, '-' and '_' and at most 64 characters. */
export function deployedFunctionName(target: string, fn: DeployedFunction): string {
  return `attempt-ops-${target}-${fn}`;
}

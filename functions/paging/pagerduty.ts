/**
 * PagerDuty Events API v2 (https://developer.pagerduty.com/docs/events-api-v2/trigger-events/):
 * one POST per alarm transition to /v2/enqueue. The alarm ARN is the dedup_key, so the OK that
 * follows an ALARM resolves exactly the alert that ALARM opened, and a repeated ALARM (an SNS or
 * Lambda retry) lands on the same alert instead of opening a second one.
 */
import { alarmSeverity, runbookAnchorOf, runbookLink, type Severity } from '../contract/index.ts';
import { valueFromReason, watchedMetric, type CloudWatchAlarmMessage } from './alarm-message.ts';

export const DEFAULT_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

export type PagerDutySeverity = 'critical' | 'error' | 'warning' | 'info';

/** P0/P1 page at high urgency, P2 at low, P3 is informational (CONTRACT.md section 6). */
export function pagerDutySeverity(severity: Severity | undefined): PagerDutySeverity {
  switch (severity) {
    case 'P0':
    case 'P1':
      return 'critical';
    case 'P2':
      return 'warning';
    case 'P3':
      return 'info';
    default:
      // An alarm we cannot place is still a page; "error" is loud without claiming an outage.
      return 'error';
  }
}

export interface PagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'resolve';
  dedup_key: string;
  payload?: {
    summary: string;
    source: string;
    severity: PagerDutySeverity;
    timestamp?: string;
    component?: string;
    group?: string;
    class?: string;
    custom_details: Record<string, unknown>;
  };
  links?: { href: string; text: string }[];
  client?: string;
  client_url?: string;
}

const MAX_SUMMARY = 1024;
const MAX_DEDUP_KEY = 255;

/** CloudWatch writes "2015-06-03T17:43:27.123+0000"; PagerDuty wants ISO 8601. */
function isoTime(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const d = new Date(value.replace(/([+-]\d{2})(\d{2})$/, '$1:$2'));
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

export interface BuildOptions {
  routingKey: string;
  /** Base URL of the runbook; the alarm description names the section. */
  runbookUrl?: string;
}

/**
 * The Events API event for one alarm transition, or null for a transition that must not page
 * (INSUFFICIENT_DATA: no alarm of ours has an action on it).
 */
export function buildEvent(alarm: CloudWatchAlarmMessage, options: BuildOptions): PagerDutyEvent | null {
  if (alarm.NewStateValue === 'INSUFFICIENT_DATA') return null;
  const dedupKey = alarm.AlarmArn.slice(0, MAX_DEDUP_KEY);
  if (alarm.NewStateValue === 'OK') {
    return { routing_key: options.routingKey, event_action: 'resolve', dedup_key: dedupKey };
  }
  const severity = alarmSeverity(alarm.AlarmName, alarm.AlarmDescription);
  const t = alarm.Trigger;
  const watched = watchedMetric(alarm);
  const dimensions = watched.dimensions;
  const database = dimensions.Database ?? dimensions.DBInstanceIdentifier ?? dimensions.DBClusterIdentifier ?? dimensions.FunctionName;
  const summary = `[${severity ?? '?'}] ${alarm.AlarmName}: ${alarm.NewStateReason || 'in ALARM'}`.slice(0, MAX_SUMMARY);
  const anchor = runbookAnchorOf(alarm.AlarmDescription);
  const links: { href: string; text: string }[] = [];
  if (anchor && options.runbookUrl) links.push({ href: runbookLink(options.runbookUrl, anchor), text: `Runbook ${anchor}` });
  return {
    routing_key: options.routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey,
    payload: {
      summary,
      source: database ? `attempt-ops/${database}` : `attempt-ops/${alarm.AWSAccountId ?? 'aws'}`,
      severity: pagerDutySeverity(severity),
      ...(isoTime(alarm.StateChangeTime) ? { timestamp: isoTime(alarm.StateChangeTime) } : {}),
      ...(watched.name ? { component: watched.name } : {}),
      ...(database ? { group: database } : {}),
      class: severity ?? 'unknown',
      custom_details: {
        alarm: alarm.AlarmName,
        description: alarm.AlarmDescription ?? null,
        severity: severity ?? null,
        metric: watched.name,
        namespace: watched.namespace,
        dimensions,
        statistic: watched.statistic,
        ...(watched.expression ? { expression: watched.expression } : {}),
        comparison: t?.ComparisonOperator ?? null,
        threshold: t?.Threshold ?? null,
        value: valueFromReason(alarm.NewStateReason),
        reason: alarm.NewStateReason,
        region: alarm.Region ?? null,
      },
    },
    ...(links.length > 0 ? { links } : {}),
    client: 'attempt-ops CloudWatch alarms',
  };
}

export class PagerDutyError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PagerDutyError';
    this.status = status;
  }
}

export interface SendOptions {
  url: string;
  fetch?: typeof fetch;
  /** Per-request budget; Lambda's own timeout is the backstop. */
  timeoutMs?: number;
}

/**
 * POST one event. Anything but a 2xx throws, so the invocation fails and Lambda's asynchronous
 * retries (the SNS delivery) try again; PagerDuty asks clients to retry 429 and 5xx answers.
 * The routing key is scrubbed from anything quoted back, in case an error body echoes it.
 */
export async function sendEvent(event: PagerDutyEvent, options: SendOptions): Promise<void> {
  const doFetch = options.fetch ?? fetch;
  const scrub = (text: string) => text.split(event.routing_key).join('[routing key]');
  let res: Response;
  try {
    res = await doFetch(options.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(event),
      signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
    });
  } catch (err) {
    const reason = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    throw new PagerDutyError(`PagerDuty ${event.event_action} for ${event.dedup_key} failed: ${scrub(reason)}`, undefined, { cause: err });
  }
  if (res.status >= 200 && res.status < 300) {
    await res.body?.cancel().catch(() => undefined);
    return;
  }
  const body = scrub((await res.text().catch(() => '')).replace(/\s+/g, ' ').slice(0, 300));
  throw new PagerDutyError(`PagerDuty answered ${res.status} to ${event.event_action} for ${event.dedup_key}${body ? `: ${body}` : ''}`, res.status);
}

/**
 * The PagerDuty forwarder's core: SNS event in, one Events API v2 event per alarm transition out.
 * Subscribed to the critical and warning topics (CONTRACT.md section 6). A record that cannot be
 * parsed or delivered makes the invocation throw, so Lambda retries the delivery instead of
 * dropping a page; resending is harmless because the alarm ARN is the dedup_key.
 */
import { ENV } from '../contract/index.ts';
import { ConfigError } from '../db/errors.ts';
import type { Logger } from '../runtime/log.ts';
import { cloudWatchAlarmMessage, snsEvent } from './alarm-message.ts';
import { buildEvent, DEFAULT_EVENTS_URL, sendEvent } from './pagerduty.ts';

export interface ForwarderConfig {
  readonly secretArn: string;
  readonly eventsUrl: string;
  readonly runbookUrl?: string;
}

const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

function parseUrl(value: string, name: string): URL {
  try {
    return new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
}

/** Read once at cold start; a bad value fails with the variable's name. */
export function readForwarderConfig(env: NodeJS.ProcessEnv = process.env): ForwarderConfig {
  const secretArn = env[ENV.pagerDutySecretArn];
  if (!secretArn) throw new ConfigError(`${ENV.pagerDutySecretArn} is not set`);
  if (!SECRET_ARN.test(secretArn)) throw new ConfigError(`${ENV.pagerDutySecretArn} is not a Secrets Manager secret ARN`);
  const eventsUrl = env[ENV.pagerDutyEventsUrl] || DEFAULT_EVENTS_URL;
  const url = parseUrl(eventsUrl, ENV.pagerDutyEventsUrl);
  // The routing key travels in the body: plain HTTP only to a local stand-in, never over a network.
  const local = url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && local)) {
    throw new ConfigError(`${ENV.pagerDutyEventsUrl} must be an https:// URL`);
  }
  const runbookUrl = env[ENV.runbookUrl] || undefined;
  if (runbookUrl) parseUrl(runbookUrl, ENV.runbookUrl);
  return Object.freeze({ secretArn, eventsUrl, ...(runbookUrl ? { runbookUrl } : {}) });
}

export interface ForwarderDeps {
  config: ForwarderConfig;
  routingKey: () => Promise<string>;
  log: Logger;
  fetch?: typeof fetch;
}

export interface ForwardResult {
  sent: { alarm: string; action: 'trigger' | 'resolve'; dedupKey: string }[];
  skipped: { alarm: string; state: string }[];
}

export async function forwardAlarms(event: unknown, deps: ForwarderDeps): Promise<ForwardResult> {
  const parsed = snsEvent.safeParse(event);
  if (!parsed.success) throw new ConfigError(`not an SNS event: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  const result: ForwardResult = { sent: [], skipped: [] };
  for (const record of parsed.data.Records) {
    let json: unknown;
    try {
      json = JSON.parse(record.Sns.Message);
    } catch {
      throw new ConfigError(`SNS message${record.Sns.MessageId ? ` ${record.Sns.MessageId}` : ''} is not JSON`);
    }
    const alarm = cloudWatchAlarmMessage.safeParse(json);
    if (!alarm.success) {
      const issue = alarm.error.issues[0];
      throw new ConfigError(`SNS message is not a CloudWatch alarm: ${issue ? `${issue.path.join('.') || 'message'}: ${issue.message}` : 'invalid'}`);
    }
    const routingKey = await deps.routingKey();
    const pdEvent = buildEvent(alarm.data, { routingKey, runbookUrl: deps.config.runbookUrl });
    if (!pdEvent) {
      deps.log.info('alarm transition not paged', { alarm: alarm.data.AlarmName, state: alarm.data.NewStateValue });
      result.skipped.push({ alarm: alarm.data.AlarmName, state: alarm.data.NewStateValue });
      continue;
    }
    await sendEvent(pdEvent, { url: deps.config.eventsUrl, fetch: deps.fetch });
    deps.log.info('sent to PagerDuty', { alarm: alarm.data.AlarmName, action: pdEvent.event_action, dedupKey: pdEvent.dedup_key, severity: pdEvent.payload?.severity });
    result.sent.push({ alarm: alarm.data.AlarmName, action: pdEvent.event_action, dedupKey: pdEvent.dedup_key });
  }
  return result;
}

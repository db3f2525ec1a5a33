/**
 * Lambda entry point: SNS (the critical and warning topics) to PagerDuty Events API v2. Errors
 * are thrown, never returned, so a failed delivery is retried and counted by the Errors alarm.
 */
import middy from '@middy/core';
import { ENV } from '../contract/index.ts';
import { forwardAlarms, readForwarderConfig, type ForwarderConfig, type ForwardResult } from '../paging/forwarder.ts';
import { getRoutingKey } from '../paging/routing-key.ts';
import { createLogger, type Logger, type LogLevel } from '../runtime/log.ts';

let config: ForwarderConfig | undefined;
let log: Logger | undefined;

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

function logger(): Logger {
  const wanted = process.env[ENV.logLevel] as LogLevel | undefined;
  log ??= createLogger({ job: 'pagerduty-forwarder', level: wanted && LEVELS.includes(wanted) ? wanted : 'info' });
  return log;
}

export const handler = middy<unknown, ForwardResult>(async (event: unknown) => {
  config ??= readForwarderConfig();
  const cfg = config;
  const log = logger();
  try {
    return await forwardAlarms(event, { config: cfg, routingKey: () => getRoutingKey(cfg.secretArn), log });
  } catch (err) {
    log.error('forwarding failed', { error: err instanceof Error ? err.message : String(err) });
    throw err;
  }
});

/** For tests: forget the container's configuration. */
export function resetForwarder(): void {
  config = undefined;
  log = undefined;
}

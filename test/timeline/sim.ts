/**
 * The timeline simulator (issue 11, item 8): a virtual clock, the synthesized template's alarms
 * under the CloudWatch evaluator (test/stack/alarm-evaluator.ts), and the real PagerDuty
 * forwarder (Lambda handler, Secrets Manager mocked) posting to a local HTTP PagerDuty.
 *
 * Jobs run against a real PostgreSQL through executeJob, whose sink turns each published datum
 * into a sample of every alarm watching that metric and those dimensions. A job that throws also
 * counts as one Lambda Errors datum of its function (0 on success, as Lambda publishes).
 */
import { existsSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { ENV, JOBS, type JobName, type MetricDatum, type ReportEnvelope } from '../../functions/contract/index.ts';
import { handler, resetForwarder } from '../../functions/handlers/pagerduty-forwarder.ts';
import { executeJob } from '../../functions/jobs/execute.ts';
import { resetRoutingKey } from '../../functions/paging/routing-key.ts';
import { silentLogger } from '../../functions/runtime/log.ts';
import { evaluate, type AlarmState, type Sample } from '../stack/alarm-evaluator.ts';
import { resourcesOf, type TemplateJson } from '../stack/support.ts';
import { readBody, ROUTING_KEY, SECRET_ARN } from '../support/pagerduty.ts';

/**
 * libfaketime, where the Debian package `faketime` is installed: preloaded into PostgreSQL, it
 * makes the server's clock (now(), pg_stat_activity's and pg_locks' times, last_analyze, the
 * audit's timestamps) follow the virtual clock, so waits, idle transactions, stale statistics and
 * a stale copy age as they would in production.
 */
export const FAKETIME_LIB = ['/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1', '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1'].find((p) => existsSync(p));

/**
 * PostgreSQL's clock under libfaketime: real time plus an offset that the library reads from a
 * file on every call (FAKETIME_NO_CACHE), so a new offset holds from the next statement on. Only
 * the wall clock is faked: PostgreSQL's monotonic timers (latches, sleeps) keep real time.
 */
export class DatabaseClock {
  /** Whole seconds: the form of offset libfaketime reads. */
  private offsetSeconds = 0;

  constructor(readonly file: string) {
    this.write();
  }

  /** The environment that makes a postgres process follow this clock. */
  env(): Record<string, string> {
    return { LD_PRELOAD: FAKETIME_LIB!, FAKETIME_TIMESTAMP_FILE: this.file, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1', FAKETIME_DONT_RESET: '1' };
  }

  /** What the server's now() reads at this moment. */
  now(): Date {
    return new Date(Date.now() + this.offsetSeconds * 1000);
  }

  /** Move the server's clock forward to `at` (never back: its own timestamps must stay in order). */
  advanceTo(at: Date): void {
    const wanted = Math.ceil((at.getTime() - Date.now()) / 1000);
    if (wanted <= this.offsetSeconds) return;
    this.offsetSeconds = wanted;
    this.write();
  }

  private write(): void {
    // Renamed into place: the server reads the file at any moment and must never see half of it.
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, `+${this.offsetSeconds}\n`, { mode: 0o644 });
    renameSync(tmp, this.file);
  }
}

/** One EventBridge schedule of the template: its job, its rate and the payload it sends. */
export interface ScheduledRun {
  job: JobName;
  everyMinutes: number;
  input: Record<string, unknown>;
  rule: string;
}

const RATE = /^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$/;

/** The template's schedules, in template order; a form other than rate() throws rather than guess. */
export function schedulesOf(template: TemplateJson): ScheduledRun[] {
  const byLogicalId = new Map<string, JobName>(JOBS.map((j) => [`Job${j.replace(/-/g, '')}Function`, j]));
  return resourcesOf(template, 'AWS::Events::Rule').flatMap(([rule, def]) => {
    if (!def.ScheduleExpression) return [];
    const m = RATE.exec(def.ScheduleExpression);
    if (!m) throw new Error(`${rule}: unsupported schedule ${def.ScheduleExpression}`);
    const unit = m[2]!.startsWith('minute') ? 1 : m[2]!.startsWith('hour') ? 60 : 1440;
    return (def.Targets ?? []).map((t: any) => {
      const fn: string = t.Arn?.['Fn::GetAtt']?.[0] ?? '';
      const job = [...byLogicalId].find(([prefix]) => fn.startsWith(prefix))?.[1];
      if (!job) throw new Error(`${rule}: target ${fn} is no job function`);
      return { job, everyMinutes: Number(m[1]) * unit, input: t.Input ? JSON.parse(t.Input) : {}, rule };
    });
  });
}

export const MIN = 60;
export const HOUR = 3600;
/** Jobs run this many seconds into their minute (EventBridge start plus a cold start). */
export const RUN_OFFSET = 10;

const ACCOUNT = '123456789012';

interface WatchedAlarm {
  name: string;
  def: any;
  namespace: string;
  metric: string;
  dimensions: Record<string, string>;
  samples: Sample[];
  state: AlarmState;
  /** The alarm's ALARM and OK actions reach the forwarder (a topic it subscribes to). */
  alarmActions: boolean;
  okActions: boolean;
  /** Every transition the alarm's actions publish, to any topic (the info topic mails them). */
  notified: boolean;
}

/** A dimension value as the template has it: a string, or a Ref to a logical id. */
function dimValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && 'Ref' in v) return `ref:${(v as { Ref: string }).Ref}`;
  return `expr:${JSON.stringify(v)}`;
}

function watchedOf(name: string, def: any): Pick<WatchedAlarm, 'namespace' | 'metric' | 'dimensions'> {
  const m = def.MetricName ? def : def.Metrics.find((x: any) => x.MetricStat).MetricStat.Metric;
  return {
    namespace: m.Namespace,
    metric: m.MetricName,
    dimensions: Object.fromEntries((m.Dimensions ?? []).map((d: any) => [d.Name, dimValue(d.Value)])),
  };
}

/** One event the local PagerDuty received, at the virtual time it was sent. */
export interface PagerDutyEventSeen {
  at: number;
  action: string;
  dedupKey: string;
  summary?: string;
}

/** One incident: opened by the first trigger of a dedup key with none open, closed by its resolve. */
export interface Incident {
  alarm: string;
  openedAt: number;
  resolvedAt?: number;
}

export interface LocalPagerDuty {
  url: string;
  events: PagerDutyEventSeen[];
  close(): Promise<void>;
}

/** The stand-in Events API on 127.0.0.1, as test/paging/forwarder.test.ts starts it. */
export async function startLocalPagerDuty(now: () => number): Promise<LocalPagerDuty> {
  const events: PagerDutyEventSeen[] = [];
  const server: Server = createServer(async (req, res) => {
    const body = JSON.parse(await readBody(req));
    events.push({ at: now(), action: body.event_action, dedupKey: body.dedup_key, summary: body.payload?.summary });
    res.writeHead(202, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: 'success', message: 'Event processed' }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/enqueue`,
    events,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Wire the real forwarder handler to the local PagerDuty (env and a mocked Secrets Manager). */
export function configureForwarder(eventsUrl: string): () => void {
  const sm = mockClient(SecretsManagerClient);
  sm.on(GetSecretValueCommand, { SecretId: SECRET_ARN }).resolves({ SecretString: JSON.stringify({ routing_key: ROUTING_KEY }) });
  process.env[ENV.pagerDutySecretArn] = SECRET_ARN;
  process.env[ENV.pagerDutyEventsUrl] = eventsUrl;
  // Hundreds of transitions: the forwarder's info lines would bury the test's own output.
  const level = process.env[ENV.logLevel];
  process.env[ENV.logLevel] = 'warn';
  resetForwarder();
  resetRoutingKey();
  return () => {
    sm.restore();
    delete process.env[ENV.pagerDutySecretArn];
    delete process.env[ENV.pagerDutyEventsUrl];
    if (level === undefined) delete process.env[ENV.logLevel];
    else process.env[ENV.logLevel] = level;
    resetForwarder();
    resetRoutingKey();
  };
}

/** Incidents as PagerDuty keeps them: a trigger on an open dedup key is the same incident. */
export function incidentsOf(events: readonly PagerDutyEventSeen[], alarmOfKey: (key: string) => string): Incident[] {
  const open = new Map<string, Incident>();
  const all: Incident[] = [];
  for (const e of events) {
    const current = open.get(e.dedupKey);
    if (e.action === 'trigger' && !current) {
      const incident: Incident = { alarm: alarmOfKey(e.dedupKey), openedAt: e.at };
      open.set(e.dedupKey, incident);
      all.push(incident);
    } else if (e.action === 'resolve' && current) {
      current.resolvedAt = e.at;
      open.delete(e.dedupKey);
    }
  }
  return all;
}

export interface TimelineOptions {
  template: TemplateJson;
  /** The server's faked clock, where libfaketime is there; else jobs get the virtual clock alone. */
  databaseClock?: DatabaseClock;
  /** The Database dimension of the template's alarms. */
  target: string;
  /** Alarm names are `${prefix}${id}`. */
  prefix: string;
}

/** The alarms, their samples and states, and the virtual clock. */
export class Timeline {
  readonly alarms: WatchedAlarm[];
  /** Virtual seconds since the deploy. */
  now = 0;
  readonly start: Date;
  /** Every ALARM and OK an alarm's actions published, paged (through the forwarder) or not (the info topic). */
  readonly sent: { at: number; alarm: string; state: AlarmState; paged: boolean }[] = [];
  private readonly functionRefs = new Map<string, string>();

  constructor(private readonly o: TimelineOptions) {
    this.start = o.databaseClock?.now() ?? new Date();
    // The topics the forwarder function subscribes to: only their messages reach PagerDuty.
    const forwarded = new Set(
      resourcesOf(o.template, 'AWS::SNS::Subscription')
        .filter(([, d]) => d.Protocol === 'lambda' && String(d.Endpoint?.['Fn::GetAtt']?.[0] ?? '').startsWith('PagingForwarderFunction'))
        .map(([, d]) => JSON.stringify(d.TopicArn)),
    );
    const reaches = (actions: unknown[] | undefined) => (actions ?? []).some((a) => forwarded.has(JSON.stringify(a)));
    this.alarms = resourcesOf(o.template, 'AWS::CloudWatch::Alarm').map(([, def]) => ({
      name: def.AlarmName,
      def,
      ...watchedOf(def.AlarmName, def),
      samples: [],
      state: 'INSUFFICIENT_DATA' as AlarmState,
      alarmActions: reaches(def.AlarmActions),
      okActions: reaches(def.OKActions),
      notified: (def.AlarmActions ?? []).length > 0,
    }));
    // The Lambda function of each job, from the Errors alarm that watches it.
    for (const a of this.alarms) {
      const job = a.name.startsWith(`${o.prefix}P2-job-failed-`) ? a.name.slice(`${o.prefix}P2-job-failed-`.length) : null;
      if (job && a.namespace === 'AWS/Lambda') this.functionRefs.set(job, a.dimensions.FunctionName!);
    }
  }

  /** The wall clock the jobs get: the server's, where it is faked, so both agree on every age. */
  clock = (): Date => this.o.databaseClock?.now() ?? new Date(this.start.getTime() + this.now * 1000);

  /** Move the virtual clock (and the server's with it) to `seconds` after the deploy. */
  at(seconds: number): void {
    this.now = seconds;
    this.o.databaseClock?.advanceTo(new Date(this.start.getTime() + seconds * 1000));
  }

  /** Every alarm watching this metric with exactly these dimensions gets the sample. */
  ingest(namespace: string, data: readonly MetricDatum[] | readonly { name: string; value: number; dimensions: Record<string, string> }[], t = this.now): void {
    for (const d of data) {
      for (const a of this.alarms) {
        if (a.namespace !== namespace || a.metric !== d.name) continue;
        const keys = Object.keys(a.dimensions);
        if (keys.length !== Object.keys(d.dimensions).length || keys.some((k) => a.dimensions[k] !== d.dimensions[k])) continue;
        a.samples.push({ t, v: d.value });
      }
    }
  }

  /** One datum of an AWS/RDS metric, as RDS publishes it every minute, for every alarm on it. */
  rds(metric: string, value: number, t = this.now): void {
    for (const a of this.alarms) if (a.namespace === 'AWS/RDS' && a.metric === metric) a.samples.push({ t, v: value });
  }

  /** One scheduled run: executeJob publishing into the alarms, plus Lambda's Errors datum. */
  async run<R extends ReportEnvelope>(job: JobName, core: () => Promise<R>): Promise<R | Error> {
    const sink = {
      kind: 'stdout' as const,
      publish: async (data: MetricDatum[]) => {
        this.ingest('AttemptView', data);
        return { calls: 1, datums: data.length };
      },
    };
    let outcome: R | Error;
    try {
      outcome = (await executeJob({ job, target: this.o.target, sink, dryRun: false, log: silentLogger, run: core })).report;
    } catch (err) {
      outcome = err instanceof Error ? err : new Error(String(err));
    }
    // TIMELINE_DEBUG=<regex>: each run's non-zero metrics whose name matches, on stderr.
    const debug = process.env.TIMELINE_DEBUG ? new RegExp(process.env.TIMELINE_DEBUG) : undefined;
    if (debug) console.error(`[${this.now}] ${job}: ${outcome instanceof Error ? `FAILED ${outcome.message}` : JSON.stringify((outcome as any).metrics?.filter((m: MetricDatum) => m.value !== 0 && debug.test(m.name)))}`);
    const fn = this.functionRefs.get(job);
    if (fn) this.ingest('AWS/Lambda', [{ name: 'Errors', value: outcome instanceof Error ? 1 : 0, dimensions: { FunctionName: fn } }]);
    return outcome;
  }

  /** Evaluate every alarm at the current virtual time; send the changes through the forwarder. */
  async evaluateAll(): Promise<void> {
    const messages: object[] = [];
    for (const a of this.alarms) {
      const next = evaluate(a.def, a.samples, this.now, a.state);
      if (next === a.state) continue;
      const old = a.state;
      a.state = next;
      if ((next === 'ALARM' && a.alarmActions) || (next === 'OK' && a.okActions)) messages.push(this.alarmMessage(a, old, next));
      if (a.notified && next !== 'INSUFFICIENT_DATA') this.sent.push({ at: this.now, alarm: a.name, state: next, paged: a.alarmActions });
    }
    if (messages.length > 0) await handler(snsEvent(messages), {} as Context);
  }

  arnOf(name: string): string {
    return `arn:aws:cloudwatch:eu-west-1:${ACCOUNT}:alarm:${name}`;
  }

  alarmOfKey = (key: string): string => key.slice(key.lastIndexOf(':alarm:') + ':alarm:'.length).slice(this.o.prefix.length);

  private alarmMessage(a: WatchedAlarm, old: AlarmState, state: AlarmState): object {
    const def = a.def;
    const metrics = def.Metrics?.map((m: any) => ({
      Id: m.Id,
      ...(m.Expression ? { Expression: m.Expression } : {}),
      ...(m.MetricStat
        ? {
            MetricStat: {
              Metric: { MetricName: m.MetricStat.Metric.MetricName, Namespace: m.MetricStat.Metric.Namespace, Dimensions: Object.entries(a.dimensions).map(([name, value]) => ({ name, value })) },
              Period: m.MetricStat.Period,
              Stat: m.MetricStat.Stat,
            },
          }
        : {}),
    }));
    return {
      AlarmName: a.name,
      AlarmDescription: typeof def.AlarmDescription === 'string' ? def.AlarmDescription : null,
      AWSAccountId: ACCOUNT,
      NewStateValue: state,
      NewStateReason: `timeline: ${old} -> ${state} at virtual ${this.now} s`,
      StateChangeTime: this.clock().toISOString(),
      Region: 'EU (Ireland)',
      AlarmArn: this.arnOf(a.name),
      OldStateValue: old,
      Trigger: {
        ...(def.MetricName
          ? { MetricName: a.metric, Namespace: a.namespace, Statistic: def.Statistic, Period: def.Period, Dimensions: Object.entries(a.dimensions).map(([name, value]) => ({ name, value })) }
          : { Metrics: metrics }),
        EvaluationPeriods: def.EvaluationPeriods,
        DatapointsToAlarm: def.DatapointsToAlarm ?? null,
        ComparisonOperator: def.ComparisonOperator,
        Threshold: def.Threshold,
        TreatMissingData: def.TreatMissingData ?? '',
      },
    };
  }
}

function snsEvent(messages: object[]) {
  return {
    Records: messages.map((m, i) => ({
      EventSource: 'aws:sns',
      EventVersion: '1.0',
      Sns: { Type: 'Notification', MessageId: `m-${i}`, Message: JSON.stringify(m) },
    })),
  };
}

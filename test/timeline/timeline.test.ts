/**
 * The timeline test (issue 11, item 8), first version: on a virtual clock, against a real
 * PostgreSQL, the jobs run on their schedules (publish-metrics every minute; health-check and
 * refresh-mv at minute 0 of each hour; a daily full-scope health check where a case asks for it),
 * their metrics feed the synthesized template's alarms under the CloudWatch evaluator, and every
 * state change goes through the real PagerDuty forwarder to a local HTTP PagerDuty. Each case
 * injects one fault, fixes it, and measures time to trigger and to resolve.
 */
import { mkdtempSync, chmodSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool, type Pool } from '../../functions/db/pool.ts';
import { embeddedBinDir, type EmbeddedDatabase } from '../../functions/demo/embedded.ts';
import { runAnalyze } from '../../functions/jobs/analyze.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import type { JobDeps } from '../../functions/jobs/deps.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runPublishMetrics } from '../../functions/jobs/publish-metrics.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import { v1ViewSql } from '../../functions/sql/reference.ts';
import { DEFAULT_APP_ROLE, type JobName, type RefreshMode, type ReportEnvelope, type Scope } from '../../functions/contract/index.ts';
import { parseConfig } from '../../lib/config.ts';
import { exampleConfig, rawExampleConfig, synth, SYNTH_TIMEOUT_MS, type Synthesized, type TemplateJson } from '../stack/support.ts';
import { createTestDatabase, insertResult, resetToClean, type TestDatabase } from '../support/db.ts';
import { TEST_POSTGRES_FLAGS } from '../support/global-setup.ts';
import { startSystemPostgres } from '../support/system-postgres.ts';
import { jobDeps } from '../jobs/helpers.ts';
import {
  configureForwarder, DatabaseClock, FAKETIME_LIB, HOUR, incidentsOf, MIN, RUN_OFFSET, schedulesOf, startLocalPagerDuty, Timeline,
  type Incident, type LocalPagerDuty, type ScheduledRun,
} from './sim.ts';

const TARGET = 'prod';
const PREFIX = `attempt-ops-${TARGET}-`;
/** Worst-case time to page by severity (Done when), minutes. */
const BOUND: Record<string, number> = { P0: 5, P1: 20, P2: 80 };

let s: Synthesized;
let template: TemplateJson;
let schedules: ScheduledRun[];
/** The same deployment with `refreshMode: incremental`: attempt_mv is the table-backed copy. */
let sIncremental: Synthesized;
let incremental: { template: TemplateJson; schedules: ScheduledRun[] };
let db: TestDatabase;
/** A database on the run's own server, whose clock is real: for the case that needs PostgreSQL's timeouts. */
let realDb: TestDatabase;
let server: EmbeddedDatabase | undefined;
let clockDir: string | undefined;
let databaseClock: DatabaseClock | undefined;
let pd: LocalPagerDuty;
let restoreForwarder: () => void;
let current: Timeline | undefined;
const table: { incidentClass: string; alarm: string; fault: string; trigger: string; resolve: string }[] = [];

/**
 * The cases whose fault is an age on the server's own clock (a lock wait, an idle transaction, a
 * long query, statistics or a copy that grow old) need the server to follow the virtual clock,
 * which libfaketime does: without it they are skipped, as they cannot be simulated faithfully.
 * Once its clock has moved, PostgreSQL's own timers (statement_timeout, lock_timeout) no longer
 * fire under libfaketime, so the one case that needs them (a probe cut off at its timeout) runs on
 * the run's own server, on the real clock.
 */
const NO_CLOCK = FAKETIME_LIB ? false : 'libfaketime is not installed (Debian package faketime): the server cannot follow the virtual clock';
const withClock = NO_CLOCK ? it.skip : it;

beforeAll(async () => {
  s = synth(exampleConfig(), { skipBundling: true });
  template = s.json();
  schedules = schedulesOf(template);
  const raw = rawExampleConfig();
  for (const t of raw.targets) t.refreshMode = 'incremental';
  sIncremental = synth(parseConfig(raw, 'incremental example'), { skipBundling: true });
  incremental = { template: sIncremental.json(), schedules: schedulesOf(sIncremental.json()) };
  if (FAKETIME_LIB) {
    // Its own server, started under libfaketime with the embedded PostgreSQL's binaries.
    clockDir = mkdtempSync(path.join(os.tmpdir(), 'attempt-ops-clock-'));
    chmodSync(clockDir, 0o755);
    databaseClock = new DatabaseClock(path.join(clockDir, 'offset'));
    server = await startSystemPostgres(embeddedBinDir(), { env: databaseClock.env(), postgresFlags: TEST_POSTGRES_FLAGS });
    db = await createTestDatabase({ server: server.url });
    realDb = await createTestDatabase();
  } else {
    db = realDb = await createTestDatabase();
  }
  pd = await startLocalPagerDuty(() => current?.now ?? 0);
  restoreForwarder = configureForwarder(pd.url);
}, 2 * SYNTH_TIMEOUT_MS + 120_000);

afterAll(async () => {
  if (table.length > 0) {
    console.log(['', 'timeline: time to trigger after the fault, to resolve after the fix (virtual minutes)', formatTable(table)].join('\n'));
  }
  restoreForwarder?.();
  await pd?.close();
  await db?.drop();
  if (realDb !== db) await realDb?.drop();
  await server?.stop();
  if (clockDir) rmSync(clockDir, { recursive: true, force: true });
  s?.cleanup();
  sIncremental?.cleanup();
}, 60_000);

function formatTable(rows: typeof table): string {
  const header = { incidentClass: 'incident class', alarm: 'alarm', fault: 'fault at / fixed at', trigger: 'time to trigger', resolve: 'time to resolve' };
  const all = [header, ...rows];
  const keys = Object.keys(header) as (keyof typeof header)[];
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...all.map((r) => r[k].length))])) as Record<keyof typeof header, number>;
  const line = (r: typeof header) => `| ${keys.map((k) => r[k].padEnd(width[k])).join(' | ')} |`;
  return [line(header), `|${keys.map((k) => '-'.repeat(width[k] + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

interface Ctx {
  deps: JobDeps;
  setPool: (p: Pool) => void;
  timeline: Timeline;
}

interface Schedule {
  minutes: number;
  /** Before the jobs of minute m run. */
  at?: Record<number, (ctx: Ctx) => Promise<void>>;
  /** Before the deploy: the server's clock may be moved on here (data and statistics grow old). */
  beforeDeploy?: (ctx: { admin: pg.Client }) => Promise<void>;
  /** Scheduled runs that do not happen (a disabled rule, a throttled function), minutes [from, to). */
  silent?: { job: JobName; from: number; to: number }[];
  /** AWS/RDS datapoints of minute m; the default is a quiet instance. */
  rds?: (m: number) => { connections?: number; cpu?: number };
  /** The database to run on: the faked clock's by default, or the real clock's. */
  clock?: 'virtual' | 'real';
  /** The deployment: the example's (refresh mode concurrent), or the same with incremental refresh. */
  deployment?: 'example' | 'incremental';
}

/** What each scheduled job runs, given the payload its rule sends (as its Lambda handler reads it). */
function core(run: ScheduledRun, deps: JobDeps): () => Promise<ReportEnvelope> {
  switch (run.job) {
    case 'publish-metrics':
      return () => runPublishMetrics(deps);
    case 'health-check':
      return () => runHealthCheck(deps, { scope: run.input.scope as Scope | undefined, concurrency: 2 });
    case 'refresh-mv':
      return () => runRefresh(deps, { mode: run.input.mode as RefreshMode | undefined });
    case 'analyze':
      return () => runAnalyze(deps);
    default:
      throw new Error(`no scheduled core for ${run.job}`);
  }
}

/**
 * A fresh deploy on a fresh database: resetToClean, bootstrap --apply (the deploy's own run), then
 * minute by minute the template's schedules (rate() rules fire from the deploy on, in template
 * order within a minute), RDS's one-minute datapoints, and one evaluation of every alarm at the
 * end of each minute.
 */
async function simulate(schedule: Schedule): Promise<{ timeline: Timeline; incidents: Incident[] }> {
  // Without libfaketime both are the one database on the real clock.
  const onRealClock = schedule.clock === 'real' && realDb !== db;
  const on = onRealClock ? realDb : db;
  await resetToClean(on.admin);
  await on.admin.query(`GRANT SELECT ON exam_results, questions, attempt TO ${DEFAULT_APP_ROLE}`);
  await schedule.beforeDeploy?.({ admin: on.admin });
  const deployed = schedule.deployment === 'incremental' ? incremental : { template, schedules };
  const tl = new Timeline({ template: deployed.template, target: TARGET, prefix: PREFIX, databaseClock: onRealClock ? undefined : databaseClock });
  current = tl;
  const firstEvent = pd.events.length;
  let pool = on.pool('timeline');
  const deps = (): JobDeps => jobDeps(pool, { target: TARGET, clock: tl.clock });
  const setPool = (p: Pool) => {
    pool = p;
  };
  const boot = await tl.run('bootstrap', () => runBootstrap(deps(), { apply: true }));
  if (boot instanceof Error) throw boot;
  for (let m = 0; m < schedule.minutes; m++) {
    tl.at(m * MIN);
    await schedule.at?.[m]?.({ deps: deps(), setPool, timeline: tl });
    tl.at(m * MIN + RUN_OFFSET);
    const rds = schedule.rds?.(m) ?? {};
    tl.rds('DatabaseConnections', rds.connections ?? 12);
    tl.rds('CPUUtilization', rds.cpu ?? 9);
    for (const run of deployed.schedules) {
      if (m % run.everyMinutes !== 0) continue;
      if (schedule.silent?.some((x) => x.job === run.job && m >= x.from && m < x.to)) continue;
      await tl.run(run.job, core(run, deps()));
    }
    tl.at((m + 1) * MIN);
    await tl.evaluateAll();
  }
  current = undefined;
  return { timeline: tl, incidents: incidentsOf(pd.events.slice(firstEvent), tl.alarmOfKey) };
}

/** Another session on a test database, for the faults that are sessions (locks, waits, idle transactions). */
async function session(name: string, on: TestDatabase = db): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: on.url, application_name: name });
  await c.connect();
  c.on('error', () => undefined);
  return c;
}

/** Poll the database until a state holds (a wait began, a session went idle), with a generous deadline. */
async function waitForState(what: string, sql: string, values: unknown[] = []): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { rows } = await db.admin.query<{ ok: boolean }>(sql, values);
    if (rows[0]?.ok === true) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const minutes = (seconds: number) => `${(seconds / MIN).toFixed(0)} min`;

interface Assessment {
  /** The alarm(s) the fault is for: each opens exactly once within its severity's bound. */
  alarms: string[];
  faultAt: number;
  /**
   * Per alarm, when the alarm table's condition starts to hold, where that is later than the
   * fault: "for 2 consecutive runs" (the second missed run), "> 7200 s since the last refresh".
   */
  onset?: Record<string, number>;
  fixAt?: number;
  /** Seconds after the fix within which every incident of the run resolves. */
  resolveWithin?: number;
  /** Alarms of the run that are not this fault's (they may open after the fix and stay open). */
  unrelated?: string[];
}

/**
 * The fault's incidents opened once each, within the severity's bound after the condition holds,
 * and resolved once within `resolveWithin` after the fix; every other incident of the run also
 * opened once, after the fault, and resolved.
 */
function assess(incidentClass: string, run: { incidents: Incident[] }, o: Assessment): Incident[] {
  const fault = `${o.faultAt / MIN}${o.fixAt === undefined ? '' : ` / ${o.fixAt / MIN}`}`;
  const resolveText = (i: Incident | undefined) =>
    o.fixAt === undefined ? '-' : i?.resolvedAt !== undefined ? minutes(i.resolvedAt - o.fixAt) : 'never';
  const mine = o.alarms.map((alarm) => run.incidents.filter((i) => i.alarm === alarm));
  o.alarms.forEach((alarm, k) => {
    const onset = o.onset?.[alarm] ?? o.faultAt;
    const incident = mine[k]![0];
    const after = onset === o.faultAt ? '' : ` (${minutes(incident ? incident.openedAt - onset : 0)} after its condition held at ${onset / MIN})`;
    table.push({ incidentClass, alarm, fault, trigger: incident ? `${minutes(incident.openedAt - o.faultAt)}${after}` : 'never', resolve: resolveText(incident) });
  });
  for (const other of run.incidents.filter((i) => !o.alarms.includes(i.alarm))) {
    table.push({ incidentClass: `  (also) ${incidentClass}`, alarm: other.alarm, fault, trigger: minutes(other.openedAt - o.faultAt), resolve: resolveText(other) });
  }
  o.alarms.forEach((alarm, k) => {
    const severity = alarm.slice(0, 2);
    expect(mine[k], `${alarm}: exactly one incident (all: ${JSON.stringify(run.incidents)})`).toHaveLength(1);
    const onset = o.onset?.[alarm] ?? o.faultAt;
    expect(mine[k]![0]!.openedAt - onset, `${alarm} time to page`).toBeLessThanOrEqual(BOUND[severity]! * MIN);
    expect(mine[k]![0]!.openedAt, `${alarm} paged before its condition held`).toBeGreaterThan(onset);
  });
  // No incident opened twice for one fault, none before it.
  const perAlarm = new Map<string, number>();
  for (const i of run.incidents) perAlarm.set(i.alarm, (perAlarm.get(i.alarm) ?? 0) + 1);
  for (const [alarm, n] of perAlarm) expect(n, `${alarm} opened ${n} times`).toBe(1);
  for (const i of run.incidents) expect(i.openedAt, `${i.alarm} opened before the fault`).toBeGreaterThan(o.faultAt);
  for (const alarm of o.unrelated ?? []) expect(run.incidents.find((i) => i.alarm === alarm)?.openedAt ?? Infinity, `${alarm} is not this fault's`).toBeGreaterThan(o.fixAt ?? 0);
  if (o.fixAt !== undefined) {
    for (const i of run.incidents.filter((x) => !o.unrelated?.includes(x.alarm))) {
      expect(i.resolvedAt, `${i.alarm} resolved`).toBeDefined();
      expect(i.resolvedAt! - o.fixAt, `${i.alarm} time to resolve`).toBeLessThanOrEqual(o.resolveWithin!);
    }
  }
  return mine.map((x) => x[0]!);
}

const FAULT = 70 * MIN;
const FIX = 100 * MIN;
/** Two periods of the job that publishes the signal, plus the minute of evaluation. */
const TWO_MINUTELY = 3 * MIN;
const TWO_HOURLY = 2 * HOUR;

/** A valid result's JSON for question q: what an application write looks like. */
const validJson = (q: number) => ({ questionId: q, studentAnswer: 'x', isCorrect: true, responseTime: 900 });

/** Autovacuum not keeping up (here: off for the table), then a bulk load of valid rows, one student each. */
async function bulkLoad(rows: number): Promise<void> {
  await db.admin.query('ALTER TABLE exam_results SET (autovacuum_enabled = false)');
  await db.admin.query(
    `INSERT INTO exam_results (id, student_id, result_json, completed_at)
     SELECT 50000 + g, 'bulk-' || g, jsonb_build_object('questionId', 1 + g % 4, 'studentAnswer', 'x', 'isCorrect', true, 'responseTime', 900), now()
       FROM generate_series(1, $1::int) g`,
    [rows],
  );
}

describe('timeline: the template alarms on a virtual clock, paging through the real forwarder', { timeout: 300_000 }, () => {
  it('a fresh deploy and one day of every schedule on a clean database page nothing', async () => {
    // The application writes all day: a new result every hour (without it, "no fresh data" is right to mail).
    const writes = Object.fromEntries(
      Array.from({ length: 24 }, (_, h) => [h * 60 + 30, async () => insertResult(db.admin, { id: 20000 + h, student: 'legacy-student-0042', json: validJson(1 + (h % 4)) })]),
    );
    const run = await simulate({ minutes: 24 * 60 + 5, at: writes });
    table.push({ incidentClass: 'clean day after a fresh deploy', alarm: '-', fault: '-', trigger: run.incidents.length === 0 ? 'no page' : `${run.incidents.length} page(s)`, resolve: '-' });
    expect(run.incidents).toEqual([]);
    expect(pd.events.filter((e) => e.action === 'trigger')).toEqual([]);
    // Nothing mailed to the info topic either, and the heartbeats did start: their first datapoints took them to OK.
    expect(run.timeline.sent.filter((x) => x.state === 'ALARM')).toEqual([]);
    const ok = run.timeline.alarms.filter((a) => a.state === 'OK').map((a) => a.name.slice(PREFIX.length));
    expect(ok).toEqual(expect.arrayContaining([
      'P1-monitoring-blind-publish-metrics', 'P1-job-failing-or-silent-health-check', 'P1-job-failing-or-silent-analyze',
      'P1-job-failing-or-silent-refresh-mv', 'P0-view-missing',
    ]));
  });

  it('P0 view dropped: pages within 5 minutes; recreated, resolves', async () => {
    const run = await simulate({
      minutes: 120,
      at: {
        70: async () => {
          await db.admin.query('DROP VIEW attempt CASCADE');
        },
        100: async ({ deps }) => {
          await db.admin.query(v1ViewSql('public'));
          await db.admin.query(`GRANT SELECT ON attempt TO ${DEFAULT_APP_ROLE}`);
          // The runbook's fix ends with bootstrap --apply, which puts back what CASCADE took (the guard view).
          await runBootstrap(deps, { apply: true });
        },
      },
    });
    // view missing watches a 10-minute Minimum (the contract's "no data for 10 min"): the fault's
    // zero leaves the window 10 minutes after the fix.
    assess('P0 view missing', run, { alarms: ['P0-view-missing'], faultAt: FAULT, fixAt: FIX, resolveWithin: 11 * MIN });
  });

  it('P0 schema drift: a renamed view column pages within 5 minutes; renamed back, resolves', async () => {
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          await db.admin.query('ALTER VIEW attempt RENAME COLUMN tags TO tag_list');
        },
        100: async () => {
          await db.admin.query('ALTER VIEW attempt RENAME COLUMN tag_list TO tags');
        },
      },
    });
    assess('P0 schema drift', run, { alarms: ['P0-schema-drift'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  it('P0 poison row: a late row pages within 5 minutes; deleted, resolves', async () => {
    const run = await simulate({
      minutes: 110,
      at: {
        // Completed 30 days ago: a late backfill, outside any "recent rows" window.
        70: async () => insertResult(db.admin, { id: 9001, student: 'legacy-9001', json: { questionId: '12.5' }, at: new Date(Date.now() - 30 * 24 * 3600e3).toISOString() }),
        100: async () => {
          await db.admin.query('DELETE FROM exam_results WHERE id = 9001');
        },
      },
    });
    assess('P0 poison row', run, { alarms: ['P0-view-broken'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  it('P1 permissions: SELECT revoked from the app role pages within 20 minutes; granted again, resolves', async () => {
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          await db.admin.query(`REVOKE SELECT ON attempt FROM ${DEFAULT_APP_ROLE}`);
        },
        100: async () => {
          await db.admin.query(`GRANT SELECT ON attempt TO ${DEFAULT_APP_ROLE}`);
        },
      },
    });
    assess('P1 permission denied', run, { alarms: ['P1-permissions'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  it('P1 NULLs: an old row set to NULL student_id pages within 20 minutes; fixed, resolves', async () => {
    let old: { id: number; student_id: string } | undefined;
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          old = (await db.admin.query(`SELECT id, student_id FROM exam_results ORDER BY completed_at LIMIT 1`)).rows[0];
          await db.admin.query(`UPDATE exam_results SET student_id = NULL WHERE id = $1`, [old!.id]);
        },
        100: async () => {
          await db.admin.query(`UPDATE exam_results SET student_id = $2 WHERE id = $1`, [old!.id, old!.student_id]);
        },
      },
    });
    assess('P1 NULL student_id', run, { alarms: ['P1-nulls'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  it('P1 orphans: a deleted question pages within 20 minutes; put back, resolves', async () => {
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          await db.admin.query('DELETE FROM questions WHERE id = 4');
        },
        100: async () => {
          await db.admin.query(`INSERT INTO questions (id, item_id, question_text, correct_answer, tags) VALUES (4, 104, 'Largest planet?', 'Jupiter', NULL)`);
        },
      },
    });
    assess('P1 orphans (deleted question)', run, { alarms: ['P1-orphans'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  it('P1 connections and CPU: RDS over its thresholds pages within 20 minutes; back under, resolves', async () => {
    const run = await simulate({
      minutes: 110,
      rds: (m) => (m >= 70 && m < 100 ? { connections: 140, cpu: 95 } : {}),
    });
    assess('P1 connections and CPU (RDS metrics)', run, { alarms: ['P1-connections', 'P1-cpu'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  withClock('P1 blocked: a writer waiting on a row lock pages within 20 minutes; the blocker cancelled, resolves', async () => {
    let blocker: pg.Client | undefined;
    let writer: pg.Client | undefined;
    let pending: Promise<unknown>[] = [];
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          blocker = await session('timeline-blocker');
          writer = await session('timeline-writer');
          await blocker.query('BEGIN');
          await blocker.query('SELECT id FROM exam_results WHERE id = 1011 FOR UPDATE');
          // Busy, not idle, while it holds the row: a long statement in the same transaction.
          pending.push(blocker.query('SELECT pg_sleep(7200)').catch(() => undefined));
          pending.push(writer.query(`UPDATE exam_results SET result_json = result_json WHERE id = 1011`).catch(() => undefined));
          await waitForState('the writer waiting on the row lock', `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'timeline-writer' AND wait_event_type = 'Lock') AS ok`);
        },
        100: async () => {
          await db.admin.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'timeline-blocker'`);
          await Promise.all(pending);
          await blocker!.query('ROLLBACK');
          await blocker!.end();
          await writer!.end();
          pending = [];
        },
      },
    });
    // The blocker's long statement and the waiting writer are also long-running queries (P2).
    assess('P1 blocked (row lock)', run, { alarms: ['P1-blocked'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  withClock('P2 idle in transaction: a session idle holding a lock pages within 80 minutes; committed, resolves', async () => {
    let idle: pg.Client | undefined;
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          idle = await session('timeline-idle');
          await idle.query('BEGIN');
          await idle.query('SELECT count(*) FROM exam_results');
        },
        100: async () => {
          await idle!.query('COMMIT');
          await idle!.end();
        },
      },
    });
    assess('P2 idle in transaction', run, { alarms: ['P2-idle-in-transaction'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  withClock('P2 long running: a query on exam_results running past 5 minutes pages within 80 minutes; cancelled, resolves', async () => {
    let long: pg.Client | undefined;
    let pending: Promise<unknown> | undefined;
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          long = await session('psql');
          pending = long.query('SELECT pg_sleep(7200), count(*) FROM exam_results').catch(() => undefined);
          await waitForState('the long query running', `SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = 'psql' AND state = 'active') AS ok`);
        },
        100: async () => {
          await db.admin.query(`SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'psql'`);
          await pending;
          await long!.end();
        },
      },
    });
    assess('P2 long running', run, { alarms: ['P2-long-running'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  it('P1 p99 latency: the runbook query held up behind an uncommitted refresh pages within 20 minutes; released, resolves', async () => {
    let holder: pg.Client | undefined;
    const run = await simulate({
      minutes: 85,
      clock: 'real',
      at: {
        70: async () => {
          holder = await session('timeline-lock', realDb);
          await holder.query('BEGIN');
          // A plain refresh of the readers' relation run by hand and left uncommitted: every
          // reader of attempt_mv (the probe reads it once it is populated) waits behind it.
          await holder.query('REFRESH MATERIALIZED VIEW attempt_mv');
        },
        // Short: while the lock is held every probe waits its whole cut-off, in real time.
        76: async () => {
          await holder!.query('ROLLBACK');
          await holder!.end();
        },
      },
    });
    assess('P1 p99 latency (readers behind a refresh)', run, { alarms: ['P1-p99-latency', 'P2-latency-degraded'], faultAt: FAULT, fixAt: 76 * MIN, resolveWithin: TWO_MINUTELY });
  });

  it('P1 capture: the capture triggers disabled pages within 20 minutes; bootstrap --apply puts them back, resolves', async () => {
    const run = await simulate({
      minutes: 110,
      at: {
        70: async () => {
          await db.admin.query('ALTER TABLE exam_results DISABLE TRIGGER USER');
        },
        100: async ({ deps }) => {
          await runBootstrap(deps, { apply: true });
        },
      },
    });
    assess('P1 capture disabled', run, { alarms: ['P1-capture'], faultAt: FAULT, fixAt: FIX, resolveWithin: TWO_MINUTELY });
  });

  // The fidelity check is a backstop: what makes the copy differ through the product (a write the
  // capture missed) pages as `capture` within minutes (the case above). A copy changed behind the
  // capture's back is seen when a refresh verifies it, so its time to page is bounded by the
  // refresh schedule (hourly), not by P1's 20 minutes: docs/PAGING.md lists it as the exception.
  it('P1 copy differs: attempt_mv changed behind the capture pages after the next refresh verifies it; the refresh after that rebuilds it, resolves', async () => {
    const run = await simulate({
      minutes: 3 * 60 + 5,
      deployment: 'incremental',
      at: {
        70: async () => {
          await db.admin.query(`UPDATE attempt_mv SET student_answer = 'tampered' WHERE id = (SELECT min(id) FROM attempt_mv)`);
        },
      },
    });
    // Seen by the refresh at 120; the fix is the product's own: the refresh at 180 rebuilds the copy.
    assess('P1 copy differs (copy changed by hand)', run, {
      alarms: ['P1-copy-differs'], faultAt: FAULT, onset: { 'P1-copy-differs': 120 * MIN }, fixAt: 180 * MIN, resolveWithin: TWO_MINUTELY,
    });
  });

  it('P2 an old duplicate found by the daily full run opens one incident across the hourly runs, resolved once after the fix', async () => {
    // The duplicate is there at the deploy, written with the capture off (as a restore would): no change names it.
    const fix = 190 * MIN;
    const run = await simulate({
      // Long enough for refresh-mv's job-failed window (two hourly periods) to close after the fix.
      minutes: 5 * 60 + 20,
      beforeDeploy: async ({ admin }) => {
        await admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json, completed_at FROM exam_results WHERE id = (SELECT min(id) FROM exam_results)`);
      },
      at: {
        190: async () => {
          await db.admin.query(`DELETE FROM exam_results WHERE ctid = (SELECT max(ctid) FROM exam_results WHERE id = (SELECT min(id) FROM exam_results))`);
        },
      },
    });
    // refresh-mv fails while the duplicate is there (the unique index, as the materialized view's
    // refresh would): its job-failed and job-failing alarms open too, and resolve after its first good run.
    const [incident] = assess('P2 old duplicate (daily full run)', run, {
      alarms: ['P2-duplicates'], faultAt: 0, fixAt: fix, resolveWithin: TWO_HOURLY,
    });
    // Open through the hourly runs at 60, 120 and 180, resolved by the first after the fix.
    expect(incident!.resolvedAt!).toBeGreaterThan(fix);
  });

  it('P2 ties: two answers of one item at one completed_at page within 80 minutes; one removed, resolves', async () => {
    const run = await simulate({
      minutes: 3 * 60 + 5,
      at: {
        70: async () => {
          await db.admin.query(`INSERT INTO questions (id, item_id, question_text, correct_answer, tags) VALUES (5, 101, 'What is 3+1?', '4', ARRAY['math'])`);
          await insertResult(db.admin, { id: 9101, student: 'legacy-student-0042', json: validJson(1), at: '2026-11-20T10:00:00Z' });
          await insertResult(db.admin, { id: 9102, student: 'legacy-student-0042', json: validJson(5), at: '2026-11-20T10:00:00Z' });
        },
        130: async () => {
          await db.admin.query('DELETE FROM exam_results WHERE id = 9102');
        },
      },
    });
    assess('P2 ties (attempt_no left to chance)', run, { alarms: ['P2-ties'], faultAt: FAULT, fixAt: 130 * MIN, resolveWithin: TWO_HOURLY });
  });

  it('P2 analyze due: exam_results grown past 20 % since its ANALYZE pages within 80 minutes; analyzed, resolves', async () => {
    const run = await simulate({
      minutes: 3 * 60 + 5,
      at: {
        70: async () => {
          await bulkLoad(300);
          await db.admin.query('SELECT pg_stat_force_next_flush()');
        },
        130: async ({ deps, timeline }) => {
          await timeline.run('analyze', () => runAnalyze(deps));
        },
      },
    });
    assess('P2 analyze due (table grown)', run, { alarms: ['P2-analyze-due-exam_results'], faultAt: FAULT, fixAt: 130 * MIN, resolveWithin: TWO_HOURLY });
  });

  it('P2 dead tuples: half of a bulk load deleted pages within 80 minutes; vacuumed, resolves', async () => {
    const run = await simulate({
      minutes: 3 * 60 + 5,
      at: {
        70: async () => {
          await bulkLoad(2000);
          await db.admin.query('DELETE FROM exam_results WHERE id > 50000 AND id % 2 = 0');
          // Fresh statistics, so that the modified ratio is not this case's: the writes' counts
          // reach the statistics first (a flush after the session's next statement), then ANALYZE.
          await db.admin.query('SELECT pg_stat_force_next_flush()');
          await waitForState('the bulk load in the statistics', `SELECT n_mod_since_analyze >= 3000 AS ok FROM pg_stat_user_tables WHERE relname = 'exam_results'`);
          await db.admin.query('ANALYZE exam_results');
          await db.admin.query('SELECT pg_stat_force_next_flush()');
          await waitForState('the ANALYZE in the statistics', `SELECT n_mod_since_analyze = 0 AND n_dead_tup >= 1000 AS ok FROM pg_stat_user_tables WHERE relname = 'exam_results'`);
        },
        // Runbook section 3: VACUUM the table, then the analyze function by hand (attempt_mv took the change at 120).
        130: async ({ deps, timeline }) => {
          await db.admin.query('VACUUM exam_results');
          await db.admin.query('SELECT pg_stat_force_next_flush()');
          await timeline.run('analyze', () => runAnalyze(deps));
        },
      },
    });
    assess('P2 dead tuples', run, { alarms: ['P2-dead-tuples-exam_results'], faultAt: FAULT, fixAt: 130 * MIN, resolveWithin: TWO_HOURLY });
  });

  withClock('P2 stale statistics: tables not analyzed for 7 days page within 80 minutes; analyzed, resolves', async () => {
    const run = await simulate({
      minutes: 3 * 60 + 5,
      beforeDeploy: async () => {
        // The seed's ANALYZE ages on the server's clock: 7 days less 59 minutes by the deploy.
        databaseClock!.advanceTo(new Date(databaseClock!.now().getTime() + (7 * 24 * 60 - 59) * MIN * 1000));
      },
      at: {
        // On-call invokes the analyze function by hand (runbook section 3's fix).
        100: async ({ deps, timeline }) => {
          await timeline.run('analyze', () => runAnalyze(deps));
        },
      },
    });
    // The condition holds from minute 59; the hourly check at 60 publishes it. Data seeded a week
    // ago also makes "no fresh data" (P3) mail the info topic, which pages no one.
    assess('P2 stale statistics', run, {
      alarms: ['P2-stale-statistics-exam_results', 'P2-stale-statistics-questions'], faultAt: 59 * MIN, fixAt: FIX, resolveWithin: TWO_HOURLY,
    });
    expect(run.timeline.sent.filter((x) => !x.paged).map((x) => x.alarm.slice(PREFIX.length))).toContain('P3-no-fresh-data');
  });

  withClock('P2 MV stale and P1 job silent: refresh-mv not running pages after its second missed run; run by hand, resolves', async () => {
    const fix = 200 * MIN;
    const run = await simulate({
      minutes: 215,
      // Its rule disabled from minute 61: the runs at 120 and 180 do not happen.
      silent: [{ job: 'refresh-mv', from: 61, to: 200 }],
      at: {
        // On-call invokes the refresh function by hand; the rule is enabled again.
        200: async ({ deps, timeline }) => {
          await timeline.run('refresh-mv', () => runRefresh(deps));
        },
      },
    });
    // Both conditions hold from minute 180: the second missed run, and 2 h since the last refresh (at 60).
    assess('P2 MV stale / P1 job failing or silent (refresh-mv)', run, {
      alarms: ['P2-mv-stale', 'P1-job-failing-or-silent-refresh-mv'], faultAt: 61 * MIN,
      onset: { 'P2-mv-stale': 180 * MIN, 'P1-job-failing-or-silent-refresh-mv': 180 * MIN }, fixAt: fix, resolveWithin: 6 * MIN,
    });
  });

  it('the database unreachable pages P1 monitoring blind within 10 minutes; back, resolves', async () => {
    let closed: Pool | undefined;
    let real: Pool | undefined;
    const run = await simulate({
      minutes: 115,
      at: {
        70: async ({ deps, setPool }) => {
          real = deps.pool;
          // Nothing listens on port 1: every connection is refused.
          const settings = fromUrl(db.url, 'test url');
          closed = createPool({ ...settings, port: 1 }, { job: 'timeline', max: 1, timeouts: {} });
          setPool(closed);
        },
        100: async ({ setPool }) => {
          setPool(real!);
          await closed!.end().catch(() => undefined);
        },
      },
    });
    const [incident] = assess('P1 database unreachable (monitoring blind)', run, { alarms: ['P1-monitoring-blind-publish-metrics'], faultAt: FAULT, fixAt: FIX, resolveWithin: 10 * MIN });
    expect(incident!.openedAt - FAULT).toBeLessThanOrEqual(10 * MIN);
  });
});

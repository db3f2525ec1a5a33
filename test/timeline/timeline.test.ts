/**
 * The timeline test (issue 11, item 8), first version: on a virtual clock, against a real
 * PostgreSQL, the jobs run on their schedules (publish-metrics every minute; health-check and
 * refresh-mv at minute 0 of each hour; a daily full-scope health check where a case asks for it),
 * their metrics feed the synthesized template's alarms under the CloudWatch evaluator, and every
 * state change goes through the real PagerDuty forwarder to a local HTTP PagerDuty. Each case
 * injects one fault, fixes it, and measures time to trigger and to resolve.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool, type Pool } from '../../functions/db/pool.ts';
import { runBootstrap } from '../../functions/jobs/bootstrap.ts';
import type { JobDeps } from '../../functions/jobs/deps.ts';
import { runHealthCheck } from '../../functions/jobs/health-check.ts';
import { runPublishMetrics } from '../../functions/jobs/publish-metrics.ts';
import { runRefresh } from '../../functions/jobs/refresh-mv.ts';
import { v1ViewSql } from '../../functions/sql/reference.ts';
import { DEFAULT_APP_ROLE } from '../../functions/contract/index.ts';
import { exampleConfig, synth, SYNTH_TIMEOUT_MS, type Synthesized, type TemplateJson } from '../stack/support.ts';
import { createTestDatabase, insertResult, resetToClean, type TestDatabase } from '../support/db.ts';
import { jobDeps } from '../jobs/helpers.ts';
import { configureForwarder, HOUR, incidentsOf, MIN, RUN_OFFSET, startLocalPagerDuty, Timeline, type Incident, type LocalPagerDuty } from './sim.ts';

const TARGET = 'prod';
const PREFIX = `attempt-ops-${TARGET}-`;
/** Worst-case time to page by severity (Done when), minutes. */
const BOUND: Record<string, number> = { P0: 5, P1: 20, P2: 80 };

let s: Synthesized;
let template: TemplateJson;
let db: TestDatabase;
let pd: LocalPagerDuty;
let restoreForwarder: () => void;
let current: Timeline | undefined;
const table: { incidentClass: string; alarm: string; fault: string; trigger: string; resolve: string }[] = [];

beforeAll(async () => {
  s = synth(exampleConfig(), { skipBundling: true });
  template = s.json();
  db = await createTestDatabase();
  pd = await startLocalPagerDuty(() => current?.now ?? 0);
  restoreForwarder = configureForwarder(pd.url);
}, SYNTH_TIMEOUT_MS);

afterAll(async () => {
  if (table.length > 0) {
    console.log(['', 'timeline: time to trigger after the fault, to resolve after the fix (virtual minutes)', formatTable(table)].join('\n'));
  }
  restoreForwarder?.();
  await pd?.close();
  await db?.drop();
  s?.cleanup();
});

function formatTable(rows: typeof table): string {
  const header = { incidentClass: 'incident class', alarm: 'alarm', fault: 'fault at / fixed at', trigger: 'time to trigger', resolve: 'time to resolve' };
  const all = [header, ...rows];
  const keys = Object.keys(header) as (keyof typeof header)[];
  const width = Object.fromEntries(keys.map((k) => [k, Math.max(...all.map((r) => r[k].length))])) as Record<keyof typeof header, number>;
  const line = (r: typeof header) => `| ${keys.map((k) => r[k].padEnd(width[k])).join(' | ')} |`;
  return [line(header), `|${keys.map((k) => '-'.repeat(width[k] + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

interface Schedule {
  minutes: number;
  /** Minutes at which a full-scope health check runs (the daily one). */
  fullAt?: number[];
  /** Before the jobs of minute m run. */
  at?: Record<number, (ctx: { deps: JobDeps; setPool: (p: Pool) => void }) => Promise<void>>;
}

/**
 * A fresh deploy on a fresh database: resetToClean, bootstrap --apply (the deploy's own run), then
 * minute by minute what is due, one evaluation of every alarm at the end of each minute.
 */
async function simulate(schedule: Schedule): Promise<{ timeline: Timeline; incidents: Incident[] }> {
  await resetToClean(db.admin);
  await db.admin.query(`GRANT SELECT ON exam_results, questions, attempt TO ${DEFAULT_APP_ROLE}`);
  const tl = new Timeline({ template, target: TARGET, prefix: PREFIX });
  current = tl;
  const firstEvent = pd.events.length;
  let pool = db.pool('timeline');
  const deps = (): JobDeps => jobDeps(pool, { target: TARGET });
  const setPool = (p: Pool) => {
    pool = p;
  };
  const boot = await tl.run('bootstrap', () => runBootstrap(deps(), { apply: true }));
  if (boot instanceof Error) throw boot;
  for (let m = 0; m < schedule.minutes; m++) {
    tl.now = m * MIN;
    await schedule.at?.[m]?.({ deps: deps(), setPool });
    tl.now = m * MIN + RUN_OFFSET;
    await tl.run('publish-metrics', () => runPublishMetrics(deps()));
    if (m % 60 === 0) {
      // Both are scheduled at minute 0; either order must page the same (a REFRESH is no DDL event).
      await tl.run('health-check', () => runHealthCheck(deps()));
      await tl.run('refresh-mv', () => runRefresh(deps()));
    }
    if (schedule.fullAt?.includes(m)) await tl.run('health-check', () => runHealthCheck(deps(), { scope: 'full' }));
    tl.now = (m + 1) * MIN;
    await tl.evaluateAll();
  }
  current = undefined;
  return { timeline: tl, incidents: incidentsOf(pd.events.slice(firstEvent), tl.alarmOfKey) };
}

const minutes = (seconds: number) => `${(seconds / MIN).toFixed(0)} min`;

/**
 * The fault's incident opened once, within its severity's bound after the fault, and resolved
 * once within `resolveWithin` seconds after the fix; every other incident of the run also opened
 * once for this fault and resolved.
 */
function assess(
  incidentClass: string,
  run: { incidents: Incident[] },
  o: { alarm: string; faultAt: number; fixAt?: number; resolveWithin?: number; unrelated?: string[] },
): Incident {
  const severity = o.alarm.slice(0, 2);
  const mine = run.incidents.filter((i) => i.alarm === o.alarm);
  const fault = `${o.faultAt / MIN}${o.fixAt === undefined ? '' : ` / ${o.fixAt / MIN}`}`;
  const incident = mine[0];
  table.push({
    incidentClass,
    alarm: o.alarm,
    fault,
    trigger: incident ? minutes(incident.openedAt - o.faultAt) : 'never',
    resolve: incident?.resolvedAt !== undefined && o.fixAt !== undefined ? minutes(incident.resolvedAt - o.fixAt) : o.fixAt === undefined ? '-' : 'never',
  });
  for (const other of run.incidents.filter((i) => i.alarm !== o.alarm)) {
    table.push({
      incidentClass: `  (also) ${incidentClass}`,
      alarm: other.alarm,
      fault,
      trigger: minutes(other.openedAt - o.faultAt),
      resolve: other.resolvedAt !== undefined && o.fixAt !== undefined ? minutes(other.resolvedAt - o.fixAt) : 'never',
    });
  }
  expect(mine, `${o.alarm}: exactly one incident (all: ${JSON.stringify(run.incidents)})`).toHaveLength(1);
  expect(incident!.openedAt - o.faultAt, `${o.alarm} time to page`).toBeLessThanOrEqual(BOUND[severity]! * MIN);
  expect(incident!.openedAt, `${o.alarm} paged before the fault`).toBeGreaterThan(o.faultAt);
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
  return incident!;
}

const FAULT = 70 * MIN;
const FIX = 100 * MIN;

describe('timeline: the template alarms on a virtual clock, paging through the real forwarder', () => {
  it('a fresh deploy and three clean hours page nothing', async () => {
    const run = await simulate({ minutes: 3 * 60 });
    table.push({ incidentClass: 'clean 3 h after a fresh deploy', alarm: '-', fault: '-', trigger: run.incidents.length === 0 ? 'no page' : `${run.incidents.length} page(s)`, resolve: '-' });
    expect(run.incidents).toEqual([]);
    expect(pd.events.filter((e) => e.action === 'trigger')).toEqual([]);
    // The heartbeats did start: their first datapoints took them to OK.
    const ok = run.timeline.alarms.filter((a) => a.state === 'OK').map((a) => a.name.slice(PREFIX.length));
    expect(ok).toEqual(expect.arrayContaining(['P1-monitoring-blind-publish-metrics', 'P1-job-failing-or-silent-health-check', 'P0-view-missing']));
  });

  it('P0 view dropped at minute 70 pages within 5 minutes; recreated at 100, resolves', async () => {
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
    // view missing watches a 10-minute Minimum: the fault's zero leaves the window 10 minutes after the fix.
    assess('P0 view missing', run, { alarm: 'P0-view-missing', faultAt: FAULT, fixAt: FIX, resolveWithin: 11 * MIN });
  });

  it('P0 poison row inserted at minute 70 pages within 5 minutes; deleted at 100, resolves', async () => {
    const run = await simulate({
      minutes: 120,
      at: {
        70: async () => insertResult(db.admin, { id: 9001, student: 'legacy-9001', json: { questionId: '12.5' } }),
        100: async () => {
          await db.admin.query('DELETE FROM exam_results WHERE id = 9001');
        },
      },
    });
    assess('P0 poison row', run, { alarm: 'P0-view-broken', faultAt: FAULT, fixAt: FIX, resolveWithin: 2 * MIN });
  });

  it('P1 an old row set to NULL student_id at minute 70 pages within 20 minutes; fixed at 100, resolves', async () => {
    let old: { id: number; student_id: string } | undefined;
    const run = await simulate({
      minutes: 120,
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
    assess('P1 NULL student_id', run, { alarm: 'P1-nulls', faultAt: FAULT, fixAt: FIX, resolveWithin: 2 * MIN });
  });

  // The case the first version of this test found failing: the hourly run at minute 60 read recent
  // rows (its first run with the capture) and resolved what the full run had found, then the next
  // one opened it again. Runs that read recent rows now re-read the open findings too. refresh-mv
  // fails while the duplicate is there (the unique index, as the materialized view's refresh would),
  // so its job-failed alarms open too, and resolve an hour after its first good run.
  it('P2 an old duplicate found by the daily full run opens one incident across the hourly runs, resolved once after the fix', async () => {
    // The duplicate exists from minute 5, written with the capture off (as a restore would): no change names it.
    const fault = 5 * MIN;
    const fix = 190 * MIN;
    const run = await simulate({
      minutes: 6 * 60 + 5,
      fullAt: [30],
      at: {
        5: async () => {
          await db.admin.query('ALTER TABLE exam_results DISABLE TRIGGER attempt_ops_capture_insert');
          await db.admin.query(`INSERT INTO exam_results SELECT id, student_id, result_json, completed_at FROM exam_results WHERE id = (SELECT min(id) FROM exam_results)`);
          await db.admin.query('ALTER TABLE exam_results ENABLE ALWAYS TRIGGER attempt_ops_capture_insert');
        },
        190: async () => {
          await db.admin.query(`DELETE FROM exam_results WHERE ctid = (SELECT max(ctid) FROM exam_results WHERE id = (SELECT min(id) FROM exam_results))`);
        },
      },
    });
    // Six hourly CONCURRENTLY refreshes leave attempt_mv's 24 rows with over 10 % dead tuples, which
    // autovacuum never vacuums at this size (its threshold is 50 rows): a tiny test table's page,
    // opened after the fix and not this fault's.
    const incident = assess('P2 old duplicate (daily full run)', run, {
      alarm: 'P2-duplicates', faultAt: fault, fixAt: fix, resolveWithin: 2 * HOUR, unrelated: ['P2-dead-tuples-attempt_mv'],
    });
    // Found by the full run at minute 30, not before; open through the hourly runs at 60, 120 and 180.
    expect(incident.openedAt).toBeGreaterThan(30 * MIN);
    expect(incident.resolvedAt!).toBeGreaterThan(fix);
  });

  it('the database unreachable at minute 70 pages P1 monitoring blind within 10 minutes; back at 100, resolves', async () => {
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
    const incident = assess('P1 database unreachable (monitoring blind)', run, { alarm: 'P1-monitoring-blind-publish-metrics', faultAt: FAULT, fixAt: FIX, resolveWithin: 10 * MIN });
    expect(incident.openedAt - FAULT).toBeLessThanOrEqual(10 * MIN);
  });
});

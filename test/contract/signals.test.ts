/**
 * SIGNALS is the one table: the checks' specs, the verdicts, the alarms, the dashboard's threshold
 * lines and the docs' alarm tables must all be what it says, and nothing of theirs may come from
 * anywhere else.
 */
import { readFileSync } from 'node:fs';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { describe, expect, it } from 'vitest';
import { CATALOG } from '../../functions/checks/catalog.ts';
import {
  ALL_ALARM_SPECS, CHECK_NAMES, CHECK_SPECS, DASHBOARD_GRAPHS, EVERY_MINUTE_SCOPES, METRICS, SEVERITIES, SIGNALS, THRESHOLDS,
  TOPIC_COLOURS, alarmSpecOf, allLevels, annotationLabel, failureStatus, judge, signalOf, topicFor,
  type AlarmComparison, type SignalLevel, type SignalSpec,
} from '../../functions/contract/index.ts';
import { PUBLISH_METRICS_CHECKS } from '../../functions/jobs/publish-metrics.ts';
import { DEPLOY_DOC, README_DOC, readmeWithFreshTable, renderAlarmTable, withFreshTable } from '../../lib/alarm-table.ts';
import { AttemptDashboard, signalsOf } from '../../lib/dashboard.ts';

const signals = SIGNALS as readonly SignalSpec[];
const levels = allLevels();

/** What CloudWatch does with each comparison operator. */
const CLOUDWATCH: Record<AlarmComparison, (value: number, threshold: number) => boolean> = {
  GreaterThanThreshold: (v, t) => v > t,
  GreaterThanOrEqualToThreshold: (v, t) => v >= t,
  LessThanThreshold: (v, t) => v < t,
  LessThanOrEqualToThreshold: (v, t) => v <= t,
};

/** A value just past the level, and the nearest value that still passes it. */
function sides(level: SignalLevel): { failing: number; passing: number } {
  const step = Number.isInteger(level.threshold) ? 1 : 0.001;
  switch (level.comparison) {
    case 'greater':
      return { failing: level.threshold + step, passing: level.threshold };
    case 'less':
      return { failing: level.threshold - step, passing: level.threshold };
    case 'atMost':
      return { failing: level.threshold, passing: level.threshold + step };
  }
}

describe('SIGNALS', () => {
  it('gives every check exactly one signal, and the check\'s spec is that signal\'s', () => {
    for (const name of CHECK_NAMES) {
      const own = signals.filter((s) => s.check?.name === name);
      expect(own.map((s) => s.metric), name).toHaveLength(1);
      const [signal] = own as [SignalSpec];
      const spec = CHECK_SPECS[name];
      expect(spec.metric, name).toBe(signal.metric);
      expect(spec.runbook, name).toBe(signal.runbook);
      expect(spec.levels, name).toBe(signal.levels);
      expect([spec.severity, spec.threshold, spec.comparison], name).toEqual([signal.levels![0]!.severity, signal.levels![0]!.threshold, signal.levels![0]!.comparison]);
      expect([...(spec.extraMetrics ?? [])].sort(), name).toEqual(signals.filter((s) => s.alsoFrom === name).map((s) => s.metric).sort());
      // The registry hands each check the derived spec, not a copy that could differ.
      expect(CATALOG[name].spec, name).toBe(spec);
    }
    expect(signals.filter((s) => s.check && !CHECK_NAMES.includes(s.check.name))).toEqual([]);
  });

  it('lists levels most severe first, with alarm ids and threshold names used once', () => {
    for (const s of signals) {
      const ranks = (s.levels ?? []).map((l) => SEVERITIES.indexOf(l.severity));
      expect(ranks, s.metric).toEqual([...ranks].sort((a, b) => a - b));
    }
    const ids = levels.flatMap(({ level }) => (level.alarm ? [level.alarm.id] : []));
    expect(new Set(ids).size).toBe(ids.length);
    const names = levels.flatMap(({ level }) => (level.name ? [level.name] : []));
    expect(new Set(names).size).toBe(names.length);
    for (const { level } of levels) if (level.name) expect(THRESHOLDS[level.name as keyof typeof THRESHOLDS], level.name).toBe(level.threshold);
  });

  it('publishes as METRICS exactly the signals of our namespace, with their units', () => {
    const ours = signals.filter((s) => s.source === undefined);
    expect(Object.keys(METRICS).sort()).toEqual(ours.map((s) => s.metric).sort());
    for (const s of ours) expect(METRICS[s.metric as keyof typeof METRICS].unit, s.metric).toBe(s.unit);
  });

  it('derives every alarm from one signal level, and every level\'s alarm is deployed', () => {
    const fromLevels = levels.filter(({ level }) => level.alarm);
    expect(ALL_ALARM_SPECS.map((a) => a.id).sort()).toEqual(fromLevels.map(({ level }) => level.alarm!.id).sort());
    for (const alarm of ALL_ALARM_SPECS) {
      const [{ signal, level }] = fromLevels.filter(({ level: l }) => l.alarm!.id === alarm.id) as [(typeof fromLevels)[number]];
      expect(alarm, alarm.id).toEqual(alarmSpecOf(signal, level));
      expect([alarm.severity, alarm.threshold, alarm.runbook, alarm.source.metric], alarm.id).toEqual([level.severity, level.threshold, signal.runbook, signal.metric]);
      // The docs' "fires when" states the level's own number.
      expect(alarm.firesWhen, alarm.id).toContain(String(level.threshold));
    }
  });

  it('judges each level on both sides of its threshold, as its alarm compares', () => {
    for (const { signal, level } of levels) {
      const { failing, passing } = sides(level);
      const alone = { levels: [level] };
      expect(judge(alone, failing), `${signal.metric} ${level.severity} at ${failing}`).toBe(failureStatus(level.severity));
      expect(judge(alone, passing), `${signal.metric} ${level.severity} at ${passing}`).toBe('ok');
      if (level.alarm) {
        const { comparison } = ALL_ALARM_SPECS.find((a) => a.id === level.alarm!.id)!;
        expect(CLOUDWATCH[comparison](failing, level.threshold), `${level.alarm.id} at ${failing}`).toBe(true);
        expect(CLOUDWATCH[comparison](passing, level.threshold), `${level.alarm.id} at ${passing}`).toBe(false);
      }
    }
  });

  it('reports the most severe level breached: query_latency is a P2 warning above 400 ms and a P1 critical above 2000 ms', () => {
    const latency = signalOf('query_latency');
    expect([399, 400, 401, 2000, 2001].map((ms) => judge(latency, ms))).toEqual(['ok', 'ok', 'warning', 'warning', 'critical']);
    expect([400, 401, 2001].map((ms) => judge(CHECK_SPECS.query_latency, ms))).toEqual(['ok', 'warning', 'critical']);
    expect(judge(CHECK_SPECS.view_exists, 0)).toBe('critical');
    expect(judge(CHECK_SPECS.freshness, THRESHOLDS.latestAgeSeconds + 1)).toBe('warning');
  });

  it('runs on every publish-metrics run exactly the checks whose signal is sampled every minute', () => {
    const everyMinute = CHECK_NAMES.filter((n) => EVERY_MINUTE_SCOPES.includes(signalOf(n).scope));
    expect([...PUBLISH_METRICS_CHECKS].sort()).toEqual([...everyMinute].sort());
    // An alarm with one period per publish-metrics run needs a datapoint on every run.
    for (const a of ALL_ALARM_SPECS.filter((x) => x.cadence)) {
      const { signal } = levels.find(({ level }) => level.alarm?.id === a.id)!;
      expect(EVERY_MINUTE_SCOPES, a.id).toContain(signal.scope);
    }
  });
});

describe('the dashboard', () => {
  const app = new App();
  const stack = new Stack(app, 'DashboardOnly');
  new AttemptDashboard(stack, 'Dashboard', { target: 'prod', namespace: 'AttemptView', rds: { name: 'DBInstanceIdentifier', value: 'db' }, functions: {}, alarms: [] });
  const [dashboard] = Object.values(Template.fromStack(stack).findResources('AWS::CloudWatch::Dashboard')) as [{ Properties: { DashboardBody: unknown } }];
  const raw = dashboard.Properties.DashboardBody;
  // Region tokens become a placeholder: only the widgets' own text matters here.
  const body = JSON.parse(typeof raw === 'string' ? raw : (raw as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1].map((p) => (typeof p === 'string' ? p : 'REGION')).join(''));
  const graphs = (body.widgets as { properties: { title: string; metrics?: unknown[][]; annotations?: { horizontal?: { value: number; label: string; color: string }[] } } }[])
    .map((w) => w.properties)
    .filter((p) => DASHBOARD_GRAPHS.some((g) => g.title === p.title));

  it('draws a graph per entry of DASHBOARD_GRAPHS, with a line for each of its signals', () => {
    expect(graphs.map((g) => g.title)).toEqual(DASHBOARD_GRAPHS.map((g) => g.title));
    for (const g of DASHBOARD_GRAPHS) {
      const drawn = new Set(graphs.find((p) => p.title === g.title)!.metrics!.map((m) => m[1]));
      expect([...drawn].sort(), g.id).toEqual(signalsOf(g.id).map((s) => s.metric).sort());
    }
  });

  it('draws each threshold line at a level\'s threshold, labelled and coloured by its severity', () => {
    const wanted = levels.flatMap(({ signal, level }) => {
      const label = annotationLabel(level);
      return label === undefined ? [] : [{ graph: signal.dashboard?.graph, value: level.threshold, label, color: TOPIC_COLOURS[topicFor(level.severity)] }];
    });
    const drawn = DASHBOARD_GRAPHS.flatMap((g) => (graphs.find((p) => p.title === g.title)!.annotations?.horizontal ?? []).map((a) => ({ graph: g.id, value: a.value, label: a.label, color: a.color })));
    expect(drawn.length).toBeGreaterThan(0);
    expect(drawn).toEqual(expect.arrayContaining(wanted));
    expect(drawn).toHaveLength(wanted.length);
  });
});

describe('the docs\' alarm tables', () => {
  it('are the rendering of the alarm specs, in README.md and docs/DEPLOY.md', () => {
    const readme = readFileSync(README_DOC, 'utf8');
    const deploy = readFileSync(DEPLOY_DOC, 'utf8');
    expect(readmeWithFreshTable(readme)).toBe(readme);
    expect(withFreshTable(deploy)).toBe(deploy);
    expect(readme).toContain(renderAlarmTable());
    // One row per alarm, each naming its level's severity and runbook section.
    const rows = renderAlarmTable().split('\n').slice(2);
    expect(rows).toHaveLength(ALL_ALARM_SPECS.length);
    ALL_ALARM_SPECS.forEach((a, i) => expect(rows[i], a.id).toContain(`| ${a.severity} → ${topicFor(a.severity)} |`));
  });
});

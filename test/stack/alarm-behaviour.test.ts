/**
 * The synthesized alarms under CloudWatch's documented evaluation rules (alarm-evaluator.ts):
 * the heartbeats see a failing job (job_success 0) and a silent one, a fresh deploy pages nothing
 * whenever the first runs land, the manual-invoke functions' "job failed" returns to OK with no
 * data, and a scheduled job failing on every run stays in one incident.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { timeline, every, type Sample } from './alarm-evaluator.ts';
import { exampleConfig, resourcesOf, synth, SYNTH_TIMEOUT_MS, type Synthesized, type TemplateJson } from './support.ts';

const MIN = 60;
const HOUR = 3600;
const DAY = 24 * HOUR;

let s: Synthesized;
let t: TemplateJson;

beforeAll(() => {
  s = synth(exampleConfig(), { skipBundling: true });
  t = s.json();
}, SYNTH_TIMEOUT_MS);

afterAll(() => s?.cleanup());

const alarm = (name: string) => {
  const hit = resourcesOf(t, 'AWS::CloudWatch::Alarm').find(([, p]) => p.AlarmName === `attempt-ops-prod-${name}`);
  if (!hit) throw new Error(`no alarm ${name}`);
  return hit[1];
};
const states = (changes: { state: string }[]) => changes.map((c) => c.state);

/** The heartbeats of the example config: alarm name and the job's rate in seconds. */
const HEARTBEATS: [string, number][] = [
  ['P1-monitoring-blind-publish-metrics', MIN],
  ['P1-job-failing-or-silent-health-check', HOUR],
  ['P1-job-failing-or-silent-refresh-mv', HOUR],
  ['P1-job-failing-or-silent-analyze', DAY],
];

describe('a fresh deploy', () => {
  it.each(HEARTBEATS)('%s: no datapoint yet is INSUFFICIENT_DATA, never ALARM, for three days', (name) => {
    expect(timeline(alarm(name), [], MIN, 3 * DAY)).toEqual([]);
  });

  it('view missing: no datapoint yet is INSUFFICIENT_DATA, never ALARM', () => {
    expect(timeline(alarm('P0-view-missing'), [], MIN, 3 * DAY)).toEqual([]);
  });

  it.each(HEARTBEATS)('%s: first runs landing late (after the alarm exists) go straight to OK', (name, rate) => {
    // The first run started at deploy publishes a few minutes after the alarm was created.
    for (const firstAt of [30, 4 * MIN + 50, 11 * MIN]) {
      const samples = every(rate, firstAt, 3 * DAY, 1);
      expect(states(timeline(alarm(name), samples, MIN, 3 * DAY)), `${name}, first run at ${firstAt} s`).toEqual(['OK']);
    }
  });
});

describe('heartbeats see failure', () => {
  it('monitoring blind: 5 minutes of job_success 0 page, 4 do not, and the first success resolves', () => {
    const a = alarm('P1-monitoring-blind-publish-metrics');
    const failing = (from: number, minutes: number): Sample[] => [
      ...every(MIN, 10, from, 1),
      ...every(MIN, from, from + minutes * MIN, 0),
      ...every(MIN, from + minutes * MIN, 2 * HOUR, 1),
    ];
    expect(states(timeline(a, failing(HOUR, 4), MIN, 2 * HOUR))).toEqual(['OK']);
    const changes = timeline(a, failing(HOUR, 5), MIN, 2 * HOUR);
    expect(states(changes)).toEqual(['OK', 'ALARM', 'OK']);
    // The fifth failed run's minute closes at 1 h 5 min: paged by then, well within P1's 20 minutes.
    expect(changes[1]!.at - HOUR).toBeLessThanOrEqual(6 * MIN);
  });

  it('monitoring blind: 5 silent minutes page, the alarm holds through hours of silence, and the next run resolves', () => {
    const a = alarm('P1-monitoring-blind-publish-metrics');
    const samples = [...every(MIN, 10, HOUR, 1), ...every(MIN, 5 * HOUR + 10, 6 * HOUR, 1)];
    const changes = timeline(a, samples, MIN, 6 * HOUR);
    expect(states(changes)).toEqual(['OK', 'ALARM', 'OK']);
    expect(changes[1]!.at - HOUR).toBeLessThanOrEqual(6 * MIN);
    expect(changes[2]!.at).toBeGreaterThan(5 * HOUR);
  });

  it('job failing or silent (health-check): two failed runs page, one does not', () => {
    const a = alarm('P1-job-failing-or-silent-health-check');
    const runs = (failed: number[]): Sample[] => every(HOUR, 120, 12 * HOUR, 1).map((x, i) => (failed.includes(i) ? { ...x, v: 0 } : x));
    expect(states(timeline(a, runs([4]), MIN, 12 * HOUR))).toEqual(['OK']);
    const changes = timeline(a, runs([4, 5]), MIN, 12 * HOUR);
    expect(states(changes)).toEqual(['OK', 'ALARM', 'OK']);
    // The second failed run is at 5 h 2 min; its 0 is judged at the next evaluation.
    expect(changes[1]!.at).toBeLessThanOrEqual(5 * HOUR + 3 * MIN);
  });

  it('job failing or silent (analyze): two missed daily runs page, and the alarm holds until a run succeeds', () => {
    const a = alarm('P1-job-failing-or-silent-analyze');
    const samples = [...every(DAY, 120, 2 * DAY, 1), ...every(DAY, 6 * DAY + 120, 8 * DAY, 1)];
    const changes = timeline(a, samples, MIN, 8 * DAY);
    expect(states(changes)).toEqual(['OK', 'ALARM', 'OK']);
    // Last run at 1 d 0 h 2 min; two empty days after it is 3 d 0 h 2 min.
    expect(changes[1]!.at).toBeLessThanOrEqual(3 * DAY + 3 * MIN);
    expect(changes[2]!.at).toBeGreaterThan(6 * DAY);
  });

  it('a SampleCount heartbeat would have called the failing job alive: the statistic is Minimum', () => {
    for (const [name] of HEARTBEATS) {
      const stat = alarm(name).Metrics.find((m: any) => m.MetricStat).MetricStat.Stat;
      expect(stat, name).toBe('Minimum');
    }
  });
});

describe('job failed', () => {
  it.each(['ops', 'bootstrap'])('%s: one failed manual invoke pages and returns to OK with no further data', (fn) => {
    const a = alarm(`P2-job-failed-${fn}`);
    const changes = timeline(a, [{ t: HOUR + 100, v: 1 }], MIN, 3 * HOUR, 'OK');
    expect(states(changes)).toEqual(['ALARM', 'OK']);
    expect(changes[0]!.at - HOUR).toBeLessThanOrEqual(5 * MIN);
    // Back to OK once the datapoint has left the evaluation range: no new invoke needed.
    expect(changes[1]!.at - HOUR).toBeLessThanOrEqual(30 * MIN);
  });

  it('health-check failing on every hourly run is one incident, resolved after the fix without a page in between', () => {
    const a = alarm('P2-job-failed-health-check');
    const errors = [...every(HOUR, 120, 6 * HOUR, 1), ...every(HOUR, 6 * HOUR + 120, 12 * HOUR, 0)];
    const changes = timeline(a, errors, MIN, 12 * HOUR, 'OK');
    expect(states(changes)).toEqual(['ALARM', 'OK']);
    // Last failure at 5 h 2 min: OK within two of the job's periods after the fix.
    expect(changes[1]!.at).toBeLessThanOrEqual(5 * HOUR + 2 * MIN + 2 * HOUR + MIN);
  });
});

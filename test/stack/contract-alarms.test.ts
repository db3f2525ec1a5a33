/**
 * The alarm and schedule data in functions/contract, checked against the rest of the contract:
 * every watched metric is one the jobs emit, every threshold is the checks' own, every schedule
 * payload is one its handler accepts, and docs/DEPLOY.md shows exactly this table.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ALARM_SPECS,
  ALL_ALARM_SPECS,
  CHECK_SPECS,
  JOB_FAILED_ALARM,
  JOB_FAILING_ALARM,
  JOB_SILENT_ALARM,
  LIVE_SIGNAL_PUBLISHER,
  METRIC_NAMES,
  MONITORING_BLIND_ALARM,
  MONITORING_BLIND_SECONDS,
  VIEW_MISSING_SILENCE_SECONDS,
  PAYLOAD_SCHEMAS,
  RUNBOOK,
  THRESHOLDS,
  alarmDescription,
  alarmName,
  alarmSeverity,
  alarmWindow,
  armedFillExpression,
  checkAlarmWindow,
  heartbeatAlarmFor,
  jobFailedWindow,
  runbookAnchorOf,
  runbookLink,
  topicFor,
} from '../../functions/contract/index.ts';
import { DEPLOY_BOOTSTRAP_PAYLOAD, SCHEDULES, deployedFunctionName } from '../../functions/contract/schedules.ts';
import { PUBLISH_METRICS_CHECKS } from '../../functions/jobs/publish-metrics.ts';
import { DEPLOY_DOC, renderAlarmTable, withFreshTable } from '../../lib/alarm-table.ts';

const spec = (id: string) => ALL_ALARM_SPECS.find((s) => s.id === id)!;

describe('contract alarms', () => {
  it('watch only metrics in METRICS (our namespace) or the two RDS and one Lambda metric', () => {
    for (const s of ALL_ALARM_SPECS) {
      if (s.source.kind === 'custom' || s.source.kind === 'heartbeat') expect(METRIC_NAMES, s.id).toContain(s.source.metric);
      else if (s.source.kind === 'rds') expect(['DatabaseConnections', 'CPUUtilization']).toContain(s.source.metric);
      else expect(s.source.metric).toBe('Errors');
    }
  });

  it('take every threshold from THRESHOLDS, the same numbers the checks judge by', () => {
    const expected: Record<string, number> = {
      'view-missing': THRESHOLDS.viewExists,
      'schema-drift': THRESHOLDS.schemaDrift,
      'view-broken': THRESHOLDS.poisonRows,
      'p99-latency': THRESHOLDS.latencyCriticalMs,
      'latency-degraded': THRESHOLDS.latencyWarningMs,
      connections: THRESHOLDS.connections,
      cpu: THRESHOLDS.cpuPercent,
      permissions: THRESHOLDS.permissionMissing,
      nulls: THRESHOLDS.nullRequiredFields,
      orphans: THRESHOLDS.orphanResults,
      blocked: THRESHOLDS.blockedQueries,
      duplicates: THRESHOLDS.duplicateIds,
      'stale-statistics': THRESHOLDS.statsAgeHours,
      'dead-tuples': THRESHOLDS.deadTupleRatio,
      'mv-stale': THRESHOLDS.mvStalenessSeconds,
      'long-running': THRESHOLDS.longRunningQueries,
      'no-fresh-data': THRESHOLDS.latestAgeSeconds,
      capture: THRESHOLDS.captureProblems,
      'copy-differs': THRESHOLDS.mvDivergentRows,
      ties: THRESHOLDS.noTieGroups,
      'idle-in-transaction': THRESHOLDS.idleInTransactionSessions,
      'analyze-due': THRESHOLDS.modifiedRatio,
      'no-queries': 0,
    };
    expect(ALARM_SPECS.map((s) => s.id).sort()).toEqual(Object.keys(expected).sort());
    for (const s of ALARM_SPECS) expect(s.threshold, s.id).toBe(expected[s.id]);
    expect(spec('cpu').evaluationPeriods * (spec('cpu').period as number)).toBe(THRESHOLDS.cpuMinutes * 60);
  });

  it('agree with the checks on metric, severity and runbook section where a check judges the same metric', () => {
    for (const s of ALARM_SPECS) {
      if (s.source.kind !== 'custom') continue;
      const check = Object.values(CHECK_SPECS).find((c) => c.metric === s.source.metric || c.extraMetrics?.includes(s.source.metric as never));
      if (!check) {
        expect(s.id).toBe('no-queries');
        continue;
      }
      expect(s.runbook, s.id).toBe(check.runbook);
      // latency-degraded is the P2 half of the P1 query_latency check.
      if (s.id !== 'latency-degraded') expect(s.severity, s.id).toBe(check.severity);
    }
  });

  it('route P0/P1 to critical, P2 to warning, P3 to info', () => {
    expect(['P0', 'P1', 'P2', 'P3'].map((p) => topicFor(p as never))).toEqual(['critical', 'critical', 'warning', 'info']);
  });

  it('let no alarm treat missing data as breaching; silence counts only through the armed FILL, with ignore', () => {
    expect(ALL_ALARM_SPECS.filter((s) => s.treatMissingData === 'breaching').map((s) => s.id)).toEqual([]);
    const filled = ALL_ALARM_SPECS.filter((s) => s.fillMissingWith !== undefined);
    expect(filled.map((s) => s.id).sort()).toEqual(['job-failing-or-silent', 'monitoring-blind', 'view-missing']);
    for (const s of filled) {
      expect(s.fillMissingWith, s.id).toBe(0);
      // Before the first datapoint the expression is empty: ignore keeps INSUFFICIENT_DATA, no page.
      expect(s.treatMissingData, s.id).toBe('ignore');
    }
    expect(armedFillExpression(0)).toBe('IF(DATAPOINT_COUNT(m) > 0, FILL(m, 0))');
    expect(spec('view-missing').period).toBe(VIEW_MISSING_SILENCE_SECONDS);
  });

  it('judge heartbeats by Minimum, so a job_success of 0 breaches, and silence only after data', () => {
    for (const s of [MONITORING_BLIND_ALARM, JOB_FAILING_ALARM]) {
      expect(s, s.id).toMatchObject({ severity: 'P1', statistic: 'Minimum', comparison: 'LessThanThreshold', threshold: 1, period: 'schedule' });
      expect(s.source).toMatchObject({ kind: 'heartbeat', metric: 'job_success' });
    }
    expect(heartbeatAlarmFor('publish-metrics')).toBe(MONITORING_BLIND_ALARM);
    for (const job of ['health-check', 'analyze', 'refresh-mv'] as const) expect(heartbeatAlarmFor(job)).toBe(JOB_FAILING_ALARM);
    // The forwarder test still knows the heartbeat by its old export name.
    expect(JOB_SILENT_ALARM).toBe(JOB_FAILING_ALARM);
  });

  it('size the heartbeat windows from the schedules: 5 minutes for publish-metrics, 2 runs for the others', () => {
    const blind = (rate: number) => alarmWindow(MONITORING_BLIND_ALARM, { own: rate, publishMetrics: rate });
    expect(blind(1)).toEqual({ period: 60, evaluationPeriods: 5, datapointsToAlarm: 5 });
    expect(blind(2)).toEqual({ period: 120, evaluationPeriods: 3, datapointsToAlarm: 3 });
    expect(blind(5)).toEqual({ period: 300, evaluationPeriods: 2, datapointsToAlarm: 2 });
    for (const rate of [1, 2, 5, 10]) {
      const w = blind(rate);
      expect(w.period * w.evaluationPeriods, `rate ${rate}`).toBeGreaterThanOrEqual(MONITORING_BLIND_SECONDS);
    }
    const failing = (rate: number) => alarmWindow(JOB_FAILING_ALARM, { own: rate, publishMetrics: 1 });
    expect(failing(60)).toEqual({ period: 3600, evaluationPeriods: 2, datapointsToAlarm: 2 });
    expect(failing(120)).toEqual({ period: 7200, evaluationPeriods: 2, datapointsToAlarm: 2 });
    expect(failing(1440)).toEqual({ period: 86400, evaluationPeriods: 2, datapointsToAlarm: 2 });
    expect(() => alarmWindow(JOB_FAILING_ALARM, { publishMetrics: 1 })).toThrow(/needs a schedule period/);
  });

  it('give "job failed" notBreaching, a plain window for manual invokes and one schedule interval for scheduled jobs', () => {
    expect(JOB_FAILED_ALARM).toMatchObject({ statistic: 'Sum', comparison: 'GreaterThanThreshold', threshold: 0, treatMissingData: 'notBreaching', holdForSchedule: true });
    expect(alarmWindow(JOB_FAILED_ALARM, { publishMetrics: 1 })).toEqual({ period: 300, evaluationPeriods: 1, datapointsToAlarm: 1 });
    expect(jobFailedWindow(1)).toEqual({ period: 300, evaluationPeriods: 2, datapointsToAlarm: 1 });
    expect(jobFailedWindow(5)).toEqual({ period: 300, evaluationPeriods: 2, datapointsToAlarm: 1 });
    expect(jobFailedWindow(30)).toEqual({ period: 300, evaluationPeriods: 7, datapointsToAlarm: 1 });
    expect(jobFailedWindow(60)).toEqual({ period: 3600, evaluationPeriods: 2, datapointsToAlarm: 1 });
    expect(jobFailedWindow(1440)).toEqual({ period: 3600, evaluationPeriods: 25, datapointsToAlarm: 1 });
    // The window always outlasts one schedule interval: the next failed run lands inside it.
    for (const rate of [1, 5, 15, 30, 45, 60, 90, 120, 720, 1440]) {
      const w = jobFailedWindow(rate);
      expect(w.period * w.evaluationPeriods, `rate ${rate}`).toBeGreaterThan(rate * 60);
      expect(() => checkAlarmWindow('job-failed', w), `rate ${rate}`).not.toThrow();
    }
  });

  it('need 2 breaching datapoints of 3 for the live signals, one period per publish-metrics run', () => {
    const live = ALL_ALARM_SPECS.filter((s) => s.cadence === LIVE_SIGNAL_PUBLISHER && s.datapointsToAlarm > 1);
    expect(live.map((s) => s.id).sort()).toEqual(['blocked', 'idle-in-transaction', 'latency-degraded', 'long-running', 'p99-latency']);
    for (const s of live) {
      expect(s, s.id).toMatchObject({ period: 'schedule', statistic: 'Maximum', evaluationPeriods: 3, datapointsToAlarm: 2, treatMissingData: 'ignore' });
      expect(alarmWindow(s, { publishMetrics: 1 }), s.id).toEqual({ period: 60, evaluationPeriods: 3, datapointsToAlarm: 2 });
      expect(alarmWindow(s, { publishMetrics: 5 }), s.id).toEqual({ period: 300, evaluationPeriods: 3, datapointsToAlarm: 2 });
    }
    expect(spec('connections')).toMatchObject({ period: 60, statistic: 'Average', evaluationPeriods: 3, datapointsToAlarm: 2 });
  });

  it('publish every live signal from publish-metrics, or 2 of 3 one-run periods could never fill', () => {
    for (const s of ALL_ALARM_SPECS.filter((x) => x.cadence === LIVE_SIGNAL_PUBLISHER)) {
      const metric = s.source.metric;
      const checks = Object.values(CHECK_SPECS).filter((c) => c.metric === metric || c.extraMetrics?.includes(metric as never)).map((c) => c.name);
      expect(checks.some((c) => PUBLISH_METRICS_CHECKS.includes(c)), `${s.id}: ${metric} from ${checks.join(', ')}`).toBe(true);
    }
  });

  it('page the P0 and P1 facts on one datapoint of every publish-metrics run, within P0\'s 5 minutes', () => {
    const fast = ALL_ALARM_SPECS.filter((s) => s.cadence === LIVE_SIGNAL_PUBLISHER && s.datapointsToAlarm === 1);
    expect(fast.map((s) => s.id).sort()).toEqual(['capture', 'copy-differs', 'nulls', 'orphans', 'permissions', 'schema-drift', 'view-broken']);
    for (const s of fast) {
      expect(['P0', 'P1']).toContain(s.severity);
      expect(alarmWindow(s, { publishMetrics: 1 }), s.id).toEqual({ period: 60, evaluationPeriods: 1, datapointsToAlarm: 1 });
    }
    // view missing: any 0 in ten minutes, or ten minutes without a sample.
    expect(spec('view-missing')).toMatchObject({ period: 600, statistic: 'Minimum', fillMissingWith: 0, severity: 'P0' });
  });

  it('keep the alarms on hourly health-check metrics to one sample, within P2\'s 80 minutes', () => {
    // An hourly sample lands in one five-minute period; 2 of 3 of them would need two hours.
    expect(spec('analyze-due')).toMatchObject({ period: 300, evaluationPeriods: 1, datapointsToAlarm: 1, treatMissingData: 'ignore', severity: 'P2' });
    const hourly = SCHEDULES.find((x) => x.id === 'health-check-incremental')!.defaultRateMinutes * 60;
    expect(hourly + 300 + 60).toBeLessThanOrEqual(80 * 60);
  });

  it('page within the contract\'s bounds at the default schedules, for the live signals and AWS/RDS', () => {
    // Worst case from the condition holding to the page: a fault just after a sample waits one
    // period for its first breaching datapoint, M periods in all, then up to a minute more for
    // publishing and CloudWatch's evaluation. CPU's own 5-minute definition aside.
    const bound: Record<string, number> = { P0: 5 * 60, P1: 20 * 60, P2: 80 * 60 };
    for (const s of ALL_ALARM_SPECS.filter((x) => x.cadence === LIVE_SIGNAL_PUBLISHER || x.source.kind === 'rds')) {
      if (s.id === 'cpu') continue;
      const w = alarmWindow(s, { publishMetrics: SCHEDULES.find((x) => x.job === 'publish-metrics')!.defaultRateMinutes });
      const worst = (w.datapointsToAlarm + 1) * w.period + 60;
      expect(worst, s.id).toBeLessThanOrEqual(bound[s.severity]!);
    }
    // monitoring blind: 5 minutes of failure or silence, then the minute of evaluation.
    const blind = alarmWindow(MONITORING_BLIND_ALARM, { own: 1, publishMetrics: 1 });
    expect(blind.period * blind.evaluationPeriods + 60).toBeLessThanOrEqual(bound.P1!);
  });

  it('send the AWS/RDS alarms to INSUFFICIENT_DATA when their metric never arrives, mailed to info', () => {
    const rds = ALL_ALARM_SPECS.filter((s) => s.source.kind === 'rds');
    expect(rds.map((s) => s.id).sort()).toEqual(['connections', 'cpu']);
    for (const s of rds) expect(s, s.id).toMatchObject({ treatMissingData: 'missing', insufficientDataTopic: 'info' });
    expect(ALL_ALARM_SPECS.filter((s) => s.insufficientDataTopic).map((s) => s.id).sort()).toEqual(['connections', 'cpu']);
  });

  it('refuse windows CloudWatch refuses', () => {
    expect(() => checkAlarmWindow('x', { period: 90, evaluationPeriods: 1, datapointsToAlarm: 1 })).toThrow(/multiple of 60/);
    expect(() => checkAlarmWindow('x', { period: 1800, evaluationPeriods: 49, datapointsToAlarm: 1 })).toThrow(/exceeds 86400/);
    expect(() => checkAlarmWindow('x', { period: 86400, evaluationPeriods: 8, datapointsToAlarm: 8 })).toThrow(/exceeds 604800/);
    expect(() => checkAlarmWindow('x', { period: 60, evaluationPeriods: 2, datapointsToAlarm: 3 })).toThrow(/datapoints to alarm/);
    expect(() => checkAlarmWindow('x', { period: 86400, evaluationPeriods: 2, datapointsToAlarm: 2 })).not.toThrow();
  });

  it('keep only "no queries" optional', () => {
    expect(ALL_ALARM_SPECS.filter((s) => s.optional).map((s) => s.id)).toEqual(['no-queries']);
  });

  it('name the severity and runbook section so the forwarder can read them back', () => {
    for (const s of ALL_ALARM_SPECS) {
      const name = alarmName('eu-prod', s, 'exam_results');
      const description = alarmDescription(s, { target: 'eu-prod', runbookUrl: 'https://x.example/rb.md#old', qualifier: 'exam_results' });
      expect(description.length).toBeLessThanOrEqual(1024);
      expect(name.length).toBeLessThanOrEqual(255);
      expect(alarmSeverity(name, description)).toBe(s.severity);
      expect(alarmSeverity(name, null)).toBe(s.severity);
      expect(runbookAnchorOf(description)).toBe(s.runbook);
      expect(description).toContain(`https://x.example/rb.md${s.runbook}`);
    }
    // A target name that looks like a severity does not fool the parser.
    expect(alarmSeverity(alarmName('x-P1-y', spec('duplicates')))).toBe('P2');
    expect(alarmSeverity('someone-elses-alarm', 'disk full')).toBeUndefined();
    expect(runbookLink('https://x.example/rb.md', RUNBOOK.viewMissing)).toBe('https://x.example/rb.md#1-view-missing-p0');
  });
});

describe('contract schedules', () => {
  it('send payloads their handlers accept', () => {
    for (const s of SCHEDULES) expect(PAYLOAD_SCHEMAS[s.job].safeParse(s.payload).success, s.id).toBe(true);
    expect(PAYLOAD_SCHEMAS.bootstrap.parse(DEPLOY_BOOTSTRAP_PAYLOAD)).toEqual({ apply: true });
  });

  it('are the issue\'s schedules', () => {
    expect(SCHEDULES.map((s) => [s.id, s.job, s.payload, s.defaultRateMinutes])).toEqual([
      ['health-check-incremental', 'health-check', { scope: 'incremental' }, 60],
      ['health-check-full', 'health-check', { scope: 'full' }, 1440],
      ['publish-metrics', 'publish-metrics', {}, 1],
      ['refresh-mv', 'refresh-mv', {}, 60],
      ['analyze', 'analyze', {}, 1440],
    ]);
  });

  it('name functions within Lambda\'s limits for the longest target name', () => {
    const name = deployedFunctionName('a'.repeat(30), 'pagerduty-forwarder');
    expect(name).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
  });
});

describe('docs/DEPLOY.md', () => {
  it('shows the alarm table generated from the contract', () => {
    const doc = readFileSync(DEPLOY_DOC, 'utf8');
    expect(doc).toContain(renderAlarmTable());
    // Regenerating changes nothing: the section holds the table and only the table.
    expect(withFreshTable(doc)).toBe(doc);
    for (const s of ALL_ALARM_SPECS) expect(doc).toContain(`| ${s.title}`);
  });
});

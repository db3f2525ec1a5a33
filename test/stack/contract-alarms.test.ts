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
  JOB_SILENT_ALARM,
  METRIC_NAMES,
  PAYLOAD_SCHEMAS,
  RUNBOOK,
  THRESHOLDS,
  alarmDescription,
  alarmName,
  alarmSeverity,
  runbookAnchorOf,
  runbookLink,
  topicFor,
} from '../../functions/contract/index.ts';
import { DEPLOY_BOOTSTRAP_PAYLOAD, SCHEDULES, deployedFunctionName } from '../../functions/contract/schedules.ts';
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

  it('make missing data breach only for view missing and job silent, which count empty periods as 0', () => {
    const breaching = ALL_ALARM_SPECS.filter((s) => s.treatMissingData === 'breaching').map((s) => s.id);
    expect(breaching.sort()).toEqual(['job-silent', 'view-missing']);
    for (const id of breaching) expect(spec(id).fillMissingWith).toBe(0);
    expect(spec('view-missing').period).toBe(2 * 3600);
    expect(JOB_SILENT_ALARM).toMatchObject({ period: 'schedule', evaluationPeriods: 2, datapointsToAlarm: 2 });
    expect(JOB_FAILED_ALARM).toMatchObject({ statistic: 'Sum', comparison: 'GreaterThanThreshold', threshold: 0 });
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

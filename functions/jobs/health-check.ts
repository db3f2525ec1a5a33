/**
 * The hourly health check: every check of the catalog, each isolated in its own read-only
 * transaction with its own statement timeout, so one that fails or hangs reports `unknown` and
 * the others still report.
 */
import { CATALOG } from '../checks/catalog.ts';
import { loadFacts } from '../checks/facts.ts';
import type { CheckContext, CheckSettings, DatabaseFacts, HealthCheck, Measurement } from '../checks/types.ts';
import {
  CHECK_NAMES, DATA_QUALITY_CHECKS, REPORT_VERSION, THRESHOLDS, datum, judge as judgeValue, overallStatus,
  type CheckName, type CheckResult, type HealthReport, type MetricDatum, type Scope,
} from '../contract/index.ts';
import { AttemptOpsError, classifyDbError } from '../db/errors.ts';
import { inTransaction } from '../db/pool.ts';
import { JOB_RUNS } from '../sql/ops-schema.ts';
import { JOB_RUN_RECORD_SQL } from '../sql/audit.ts';
import type { JobDeps } from './deps.ts';
import { advanceScope, captureScope, findingsKept, openFindingStudents } from './health-scope.ts';
import { FINDINGS_MERGE_SQL } from '../sql/findings.ts';

export interface HealthCheckOptions {
  checks?: readonly CheckName[];
  scope?: Scope;
  /** Compute and report; record nothing in the audit table. */
  dryRun?: boolean;
  settings?: Partial<CheckSettings>;
  /** Default statement timeout of one check (ms). */
  checkTimeoutMs?: number;
  /** Per-check statement timeouts (ms), over the check's own and the default. */
  timeouts?: Partial<Record<CheckName, number>>;
  /** How long a check may wait for a lock before it reports unknown (ms). */
  lockTimeoutMs?: number;
  /** Checks in flight at once: small, the checks must not become the load they watch. */
  concurrency?: number;
  /**
   * Data-quality checks run only over the change capture's rows: without a change scope they are
   * skipped rather than read recent rows (publish-metrics, every minute, leaves that to the hourly run).
   */
  changesOnly?: boolean;
}

export const DEFAULT_SETTINGS: CheckSettings = {
  blockedWaitSeconds: THRESHOLDS.blockedWaitSeconds,
  longRunningSeconds: THRESHOLDS.longRunningSeconds,
  latencySamples: 5,
};

const DAY_MS = 24 * 3600 * 1000;

/**
 * Incremental scope reads rows since the last recorded run, and never less than the last 24 h
 * (late rows, and an alarm that does not clear the moment a bad row leaves the window). With no
 * recorded run there is no "since": every row is read once.
 */
async function incrementalSince(deps: JobDeps, facts: DatabaseFacts, now: Date): Promise<Date | null> {
  if (!facts.hasJobRuns) return null;
  const { rows } = await deps.pool.query<{ last: Date | null }>(
    `SELECT max(started_at) AS last FROM ${JOB_RUNS} WHERE job = 'health-check' AND outcome = 'success'`,
  );
  const last = rows[0]?.last;
  if (!last) return null;
  const dayAgo = new Date(now.getTime() - DAY_MS);
  return last < dayAgo ? last : dayAgo;
}

/**
 * A check's statement timeout: its own, or the scope's default. An hourly check reads an hour of
 * rows and should take well under a second, so 20 s means something is wrong; the daily full scan
 * of a duplicate check takes ~10 s at 2M rows, so it gets two minutes. Never past the run's budget.
 */
function checkTimeout(check: HealthCheck, scope: Scope, options: HealthCheckOptions, deps: JobDeps): number {
  const wanted = options.timeouts?.[check.spec.name] ?? check.timeoutMs ?? options.checkTimeoutMs ?? (scope === 'full' ? 120_000 : 20_000);
  const left = deps.remainingMs?.();
  return left === undefined ? wanted : Math.max(1_000, Math.min(wanted, left));
}

/** A check that judged itself (skipped, or its own levels) says so; otherwise its signal's levels decide. */
function judge(check: HealthCheck, m: Measurement): CheckResult['status'] {
  if (m.status) return m.status;
  if (m.value === null) return 'unknown';
  return judgeValue(check.spec, m.value);
}

/** Where this run's findings go: the rows it re-read (every row, or these students'). */
export interface FindingsScope {
  full: boolean;
  students: string[];
  nullStudent: boolean;
}

/**
 * Open findings: what the check found replaces what was open for the rows it re-read, and what
 * stays open elsewhere still counts. Outside the check's read-only transaction.
 */
export async function mergeFindings(deps: JobDeps, name: string, m: Measurement, scope: FindingsScope): Promise<Measurement> {
  if (m.found === undefined || m.value === null) return m;
  const { rows } = await deps.pool.query<{ carried: string }>(FINDINGS_MERGE_SQL, [deps.schema, name, scope.full, scope.students, scope.nullStudent, JSON.stringify(m.found)]);
  const carried = Number(rows[0]?.carried ?? 0);
  if (carried === 0) return m;
  return { ...m, value: m.value + carried, message: `${m.message}; ${carried} more from earlier findings not re-read since`, details: [...(m.details ?? []), { openFindingsCarried: carried }] };
}

async function runOne(check: HealthCheck, ctx: Omit<CheckContext, 'db'>, deps: JobDeps, options: HealthCheckOptions, findings: FindingsScope | null): Promise<{ result: CheckResult; metrics: MetricDatum[]; error?: AttemptOpsError }> {
  const started = performance.now();
  const { name, severity, runbook } = check.spec;
  if (options.changesOnly && !ctx.changes && DATA_QUALITY_CHECKS.includes(name)) {
    return {
      result: {
        name, severity, status: 'skipped', value: null, threshold: check.spec.threshold,
        message: `not read here: ${ctx.scopeFallback ?? 'no change scope'}; the hourly health check reads these rows`,
        runbook, durationMs: 0, details: [],
      },
      metrics: [],
    };
  }
  try {
    const measured = await inTransaction(
      deps.pool,
      { readOnly: true, statementTimeoutMs: checkTimeout(check, ctx.scope, options, deps), lockTimeoutMs: check.lockTimeoutMs ?? options.lockTimeoutMs ?? 2_000 },
      (client) => check.measure({ ...ctx, db: client }),
    );
    const m = findings && DATA_QUALITY_CHECKS.includes(name) ? await mergeFindings(deps, name, measured, findings) : measured;
    const metrics = [...(m.metrics ?? [])];
    if (m.value !== null && m.emitValue !== false) metrics.unshift(datum(check.spec.metric, m.value, ctx.target));
    return {
      // Key order as in the contract's example report.
      result: {
        name, severity, status: judge(check, m), value: m.value, threshold: m.threshold !== undefined ? m.threshold : check.spec.threshold,
        message: m.message, runbook, durationMs: Math.round(performance.now() - started), details: m.details ?? [],
      },
      metrics,
    };
  } catch (err) {
    const e = classifyDbError(err, check.spec.name);
    return {
      result: {
        name, severity, status: 'unknown', value: null, threshold: check.spec.threshold, message: e.message,
        runbook, durationMs: Math.round(performance.now() - started), details: [{ error: e.kind }],
      },
      metrics: [],
      error: e,
    };
  }
}

export async function runHealthCheck(deps: JobDeps, options: HealthCheckOptions = {}): Promise<HealthReport> {
  const clock = deps.clock ?? (() => new Date());
  const startedAt = clock();
  const t0 = performance.now();
  const scope: Scope = options.scope ?? 'incremental';
  const names = options.checks ? CHECK_NAMES.filter((n) => options.checks!.includes(n)) : [...CHECK_NAMES];
  const facts = await loadFacts(deps.pool, deps.schema);
  // Incremental scope: the rows the change capture says changed; without it, recent rows.
  const wantsData = names.some((n) => DATA_QUALITY_CHECKS.includes(n));
  const capture = scope === 'incremental' && wantsData ? await captureScope(deps, !options.dryRun) : null;
  const changes = capture?.changes ?? null;
  const since = scope === 'full' || changes ? null : await incrementalSince(deps, facts, startedAt).catch((err) => {
    throw classifyDbError(err);
  });
  // Reading recent rows instead of the changes: the open findings' rows are re-read all the same,
  // so a defect found earlier is neither forgotten nor resolved by a run that did not look at it.
  const keeps = scope === 'incremental' && wantsData && !changes && (await findingsKept(deps));
  const alsoStudents = keeps && since ? await openFindingStudents(deps) : null;
  const ctx: Omit<CheckContext, 'db'> = {
    schema: deps.schema, appRole: deps.appRole, target: deps.target, scope, since, changes, alsoStudents, scopeFallback: capture?.fallback ?? null,
    now: startedAt, facts, settings: { ...DEFAULT_SETTINGS, ...options.settings },
  };
  // Findings are remembered where the run knows exactly which rows it re-read: every row, or the changed ones.
  const findings: FindingsScope | null = options.dryRun
    ? null
    : changes
      ? { full: false, students: changes.students, nullStudent: changes.nullStudent }
      : (scope === 'full' && wantsData && (await findingsKept(deps))) || (keeps && !since)
        ? { full: true, students: [], nullStudent: false }
        : alsoStudents
          ? { full: false, students: alsoStudents.students, nullStudent: alsoStudents.nullStudent }
          : null;
  deps.log?.info('health check started', { scope, since: since?.toISOString() ?? 'every row', checks: names.length });

  const outcomes = new Array<Awaited<ReturnType<typeof runOne>>>(names.length);
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const i = next++;
      if (deps.signal?.aborted) throw new AttemptOpsError('timeout', 'health check aborted: out of time');
      outcomes[i] = await runOne(CATALOG[names[i]!], ctx, deps, options, findings);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, options.concurrency ?? 2) }, worker));

  // Every check failing at the connection level is not an unhealthy view: the job itself failed.
  const connectionErrors = outcomes.filter((o) => o.error && (o.error.kind === 'connection' || o.error.kind === 'authentication'));
  if (outcomes.length > 0 && connectionErrors.length === outcomes.length) throw connectionErrors[0]!.error!;

  const checks = outcomes.map((o) => o.result);
  const report: HealthReport = {
    version: REPORT_VERSION,
    job: 'health-check',
    target: deps.target,
    scope,
    startedAt: startedAt.toISOString(),
    durationMs: Math.round(performance.now() - t0),
    status: overallStatus(checks.map((c) => c.status)),
    checks,
    metrics: outcomes.flatMap((o) => o.metrics),
  };
  // The starting point moves only over what every data-quality check measured: an unknown check
  // keeps its rows for the next run.
  const measured = DATA_QUALITY_CHECKS.every((n) => names.includes(n)) && checks.every((c) => !DATA_QUALITY_CHECKS.includes(c.name) || c.status !== 'unknown');
  if (!options.dryRun && measured && capture?.snapshot) {
    const problem = await advanceScope(deps, capture.snapshot);
    if (problem) deps.log?.warn(problem);
  }
  if (!options.dryRun && facts.hasJobRuns) await recordRun(deps, report, since, measured);
  return report;
}

/** The next incremental run starts from here. A role that may not write here still gets its report. */
async function recordRun(deps: JobDeps, report: HealthReport, since: Date | null, complete: boolean): Promise<void> {
  // Only a run whose every data-quality check measured moves the watermark: a partial run, or one
  // with an unknown check, saw partial data.
  try {
    // Through attempt_ops.job_run_record (functions/sql/audit.ts): the monitor role has no INSERT on job_runs.
    await deps.pool.query(
      JOB_RUN_RECORD_SQL,
      ['health-check', deps.target, report.startedAt, complete ? 'success' : 'skipped', report.scope, JSON.stringify({ status: report.status, since: since?.toISOString() ?? null, checks: report.checks.length })],
    );
  } catch (err) {
    deps.log?.warn('could not record the run in attempt_ops.job_runs; the next run reads a wider window', { error: classifyDbError(err).message });
  }
}

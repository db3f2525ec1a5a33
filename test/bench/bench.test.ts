/**
 * The benchmark harness, end to end on a tiny dataset: every measurement runs once and the report
 * renders. It asserts what was measured and how it is reported, never how fast anything was:
 * performance is what the bench itself is for.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, handlerEntries, packageOf } from '../../bench/bundles.ts';
import { RUNBOOK_QUERIES } from '../../bench/health.ts';
import { describeMachine, renderMarkdown, targetRows } from '../../bench/report.ts';
import { defaultSettings, measureBundles, measureDatabase, type BenchResult } from '../../bench/run.ts';
import { createTestDatabase, type TestDatabase } from '../support/db.ts';
import { measureWriters, renderWriters } from '../../bench/writers.ts';

const ROWS = 2000;

describe('benchmark harness on 2,000 rows', () => {
  let db: TestDatabase;
  let result: BenchResult;
  let outDir: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    outDir = mkdtempSync(path.join(os.tmpdir(), 'attempt-ops-bench-test-'));
    const settings = { ...defaultSettings(ROWS, 1, 1), mvProbes: 20, viewProbes: 1 };
    const figures = await measureDatabase(db.url, settings, () => undefined);
    // A real handler bundles zod and pg: seconds on a busy machine. A small entry with the same
    // kinds of imports (our sources, an external AWS SDK client) proves the build-and-require path.
    const entry = path.join(outDir, 'handler.ts');
    writeFileSync(entry, [
      `import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';`,
      `import { JOBS } from ${JSON.stringify(path.join(REPO_ROOT, 'functions/contract/vocabulary.ts'))};`,
      `export const handler = async () => ({ jobs: JOBS.length, client: typeof CloudWatchClient });`,
    ].join('\n'));
    const bundles = await measureBundles({ reps: 1, entries: [entry] });
    result = { ...figures, settings, bundles };
  });
  afterAll(async () => {
    await db?.drop();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('measures the hourly check in its steady state, the full scope and every runbook query on the same data', () => {
    // Assess
    const { incremental, full, runbook } = result.health;
    expect(incremental.scope).toBe('incremental');
    // An hour after the last run the window is still the last 24 h: a slice of the data, not all of it.
    expect(incremental.window).toMatch(/^since \d{4}-\d\d-\d\dT/);
    expect(incremental.windowRows).toBeGreaterThan(0);
    expect(incremental.windowRows).toBeLessThan(ROWS);
    // The data's verdicts, not the overall status: query_latency is a wall-clock probe, and a
    // loaded machine makes it a warning (over 400 ms) without anything being wrong with the data.
    expect(full).toMatchObject({ scope: 'full', window: 'every row', windowRows: ROWS });
    const clean = { view_queryable: 'ok', required_nulls: 'ok', orphan_results: 'ok', duplicate_ids: 'ok', attempt_no_ties: 'ok' };
    expect(full.dataQuality).toEqual(clean);
    expect(incremental.dataQuality).toEqual(clean);
    expect(incremental.dbMs.samples).toHaveLength(1);
    expect(incremental.statements).toBeGreaterThan(0);
    expect(incremental.problems).toEqual([]);
    expect(incremental.slowest).toHaveLength(3);
    expect(runbook.map((q) => q.id)).toEqual(RUNBOOK_QUERIES.map((q) => q.id));
    expect(runbook.find((q) => q.id === 'row count')?.result).toBe(`total_attempts=${ROWS}`);
    expect(runbook.find((q) => q.id === 'duplicate ids')?.result).toBe('0 row(s)');
    expect(result.health.runbookDbMs).toBeCloseTo(runbook.reduce((n, q) => n + q.dbMs.median, 0), 5);
    expect(result.health.incrementalVsRunbook.db).toBeGreaterThan(0);
  });

  it('refreshes after each 0.1 % delta with late rows, in every mode the refresh job offers', () => {
    // Assess
    const { modes, deltaRows, lateRows } = result.refresh;
    expect(deltaRows).toBe(20);
    expect(lateRows).toBe(10);
    expect(modes.map((m) => m.mode)).toEqual(['full', 'concurrent', 'incremental']);
    expect(modes[0]).toMatchObject({ available: true, ranAs: ['full'], published: { calls: 1, fewest: 1 } });
    expect(modes[1]).toMatchObject({ available: true, ranAs: ['concurrent'] });
    const incremental = modes[2]!;
    if (incremental.available) expect(incremental.differingRows).toBe(0);
    else expect(incremental.unavailable).toMatch(/incremental/);
  });

  it('probes section 3 on attempt_mv and on the view for real students', () => {
    // Assess
    expect(result.section3.mv).toMatchObject({ relation: 'attempt_mv', probes: 20, passes: 1 });
    expect(result.section3.view).toMatchObject({ relation: 'attempt', probes: 1, passes: 1 });
    expect(result.section3.mv.meanRows).toBeGreaterThan(0);
    expect(result.section3.mv.p99Ms).toBeGreaterThanOrEqual(result.section3.mv.p50Ms);
  });

  it('counts the PutMetricData calls of every job run', () => {
    // Assess
    expect(result.publishing.map((p) => p.job)).toEqual(
      expect.arrayContaining(['health-check', 'refresh-mv', 'publish-metrics', 'analyze', 'bootstrap']),
    );
    for (const p of result.publishing) {
      // Every run publishes at least its job_success heartbeat, in one call.
      expect(p.published.datums).toBeGreaterThan(0);
      expect(p.published).toMatchObject({ calls: 1, fewest: 1 });
    }
  });

  it('bundles an entry as the stack does, the AWS SDK left external, and times its cold require', () => {
    // Assess
    const [bundle] = result.bundles;
    expect(bundle).toMatchObject({ name: 'handler' });
    expect(bundle!.bytes).toBeGreaterThan(100);
    expect(bundle!.initMs.samples).toHaveLength(1);
    expect(bundle!.initNoSourceMapsMs.samples).toHaveLength(1);
    expect(bundle!.largest.map((p) => p.name)).toContain('functions');
    expect(handlerEntries().map((e) => path.basename(e))).toContain('health-check.ts');
    expect(handlerEntries().map((e) => path.basename(e))).not.toContain('runtime.ts');
  });

  it('writes a BENCHMARKS-like report with a verdict per target', () => {
    // Act
    const file = path.join(outDir, 'BENCHMARKS.md');
    writeFileSync(file, renderMarkdown(result, { machine: describeMachine(), date: new Date('2026-11-25T03:00:00Z'), server: 'test', command: 'npm run bench -- --rows 2000' }));
    const md = readFileSync(file, 'utf8');
    // Assess
    for (const heading of ['# Benchmarks', '## Targets', '## a. ', '## b. ', '## c. ', '## d. ', '## e. ', '## How to reproduce']) expect(md).toContain(heading);
    expect(md).toContain('| date | 2026-11-25T03:00:00.000Z |');
    expect(md).toContain('2,000 exam_results rows');
    expect(md).toContain('npm run bench -- --rows 2000');
    expect(md).toMatch(/\| \*\*hourly health check\*\* \(incremental, last run 1 h ago\) \| [\d.]+ m?s \|/);
    expect(md).toMatch(/\| handler \| [\d.]+ KB \|/);
    const targets = targetRows(result);
    expect(targets).toHaveLength(7);
    for (const t of targets) expect(md).toContain(`| ${t.verdict} |`);
    const incremental = targets.find((t) => t.target.startsWith('incremental refresh'))!;
    if (!result.refresh.modes[2]!.available) expect(incremental).toMatchObject({ measured: 'n/a (not available yet)', verdict: 'n/a' });
  });
});

describe('bundle composition', () => {
  it('names the package each bundled input comes from', () => {
    // Assess
    expect(packageOf('node_modules/zod/v4/classic/schemas.js')).toBe('zod');
    expect(packageOf('node_modules/@middy/core/index.js')).toBe('@middy/core');
    expect(packageOf('node_modules/a/node_modules/pg-protocol/dist/parser.js')).toBe('pg-protocol');
    expect(packageOf('functions/jobs/health-check.ts')).toBe('functions');
  });
});

describe('the writers bench', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db?.drop());

  it('inserts through both schemas, the captured one logging every statement, and reports each client count', async () => {
    const figures = await measureWriters(db.url, { clients: [2], perClient: 10, rounds: 1 });
    expect(figures.runs).toEqual([expect.objectContaining({ clients: 2, insertsPerRound: 20, rounds: 1 })]);
    expect(figures.runs[0]!.ratio).toBeCloseTo(figures.runs[0]!.withMs / figures.runs[0]!.withoutMs, 6);
    // The schemas are gone, and the captured side's statements were logged while it existed.
    expect((await db.admin.query(`SELECT count(*)::int AS n FROM pg_namespace WHERE nspname LIKE 'bench_writers_%'`)).rows[0].n).toBe(0);
    const logged = await db.admin.query(`SELECT source_schema, count(*)::int AS n FROM attempt_ops.attempt_changes WHERE students IS NOT NULL GROUP BY 1`);
    // One log row per INSERT statement on the captured side (warm-up included), none for the plain one.
    expect(logged.rows).toEqual([{ source_schema: 'bench_writers_captured', n: 2 * 50 + 20 }]);
    const md = renderWriters(figures);
    expect(md).toMatch(/\| 2 \| 20 \| \d+ µs \| \d+ µs \| \*\*\d+\.\d\dx\*\* \|/);
  });
});

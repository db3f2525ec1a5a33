/** BENCHMARKS.md: the machine, the data, the issue's targets with a verdict each, every figure, how to reproduce. */
import os from 'node:os';
import type { BenchResult } from './run.ts';
import type { Samples } from './stats.ts';

export interface Machine {
  cpu: string;
  cores: number;
  memoryGiB: number;
  os: string;
  node: string;
}

export function describeMachine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
  };
}

export interface ReportContext {
  machine: Machine;
  /** os.loadavg() when the run started and when it ended: other work on the machine shows here. */
  load?: { start: number[]; end: number[] };
  date: Date;
  /** embedded, or DATABASE_URL. */
  server: string;
  command: string;
}

/** The issue's targets. */
export const TARGETS = {
  hourlyVsRunbook: 50,
  hourlyMs: 1000,
  incrementalVsConcurrent: 50,
  mvP99Ms: 5,
  bundleBytes: 250_000,
  initMs: 150,
} as const;

export type Verdict = 'pass' | 'FAIL' | 'n/a';

export interface TargetRow {
  target: string;
  measured: string;
  verdict: Verdict;
}

export const NOT_YET = 'n/a (not available yet)';

export function ms(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  if (n >= 1000) return `${(n / 1000).toFixed(n >= 100_000 ? 0 : 1)} s`;
  if (n >= 100) return `${Math.round(n)} ms`;
  if (n >= 10) return `${n.toFixed(1)} ms`;
  return `${n.toFixed(2)} ms`;
}

export function times(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a';
  return `${n >= 100 ? Math.round(n).toLocaleString('en-US') : n.toFixed(1)}×`;
}

export function kb(bytes: number): string {
  return `${(bytes / 1000).toFixed(1)} KB`;
}

function mb(bytes: number): string {
  return `${Math.round(bytes / 1e6).toLocaleString('en-US')} MB`;
}

const truncate = (text: string, n: number) => (text.length > n ? `${text.slice(0, n - 1)}…` : text);
const loadText = (l: number[]) => l.map((x) => x.toFixed(1)).join(', ');
const verdict = (ok: boolean): Verdict => (ok ? 'pass' : 'FAIL');
const med = (s: Samples | null | undefined) => (s ? ms(s.median) : 'n/a');

function table(head: string[], rows: string[][]): string {
  const esc = (c: string) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ');
  return [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function targetRows(r: BenchResult): TargetRow[] {
  const h = r.health;
  const inc = h.incremental;
  const rows: TargetRow[] = [];
  const serverRatio = h.incrementalVsRunbook.server;
  rows.push({
    target: `hourly health check uses ≥ ${TARGETS.hourlyVsRunbook}× less database time than the runbook's whole-view queries`,
    measured: `${times(h.incrementalVsRunbook.db)} (${ms(h.runbookDbMs)} vs ${ms(inc.dbMs.median)})${serverRatio !== null ? `; pg_stat_statements: ${times(serverRatio)}` : ''}`,
    verdict: verdict((h.incrementalVsRunbook.db ?? 0) >= TARGETS.hourlyVsRunbook && (serverRatio === null || serverRatio >= TARGETS.hourlyVsRunbook)),
  });
  rows.push({
    target: `hourly health check under 1 s`,
    measured: `${ms(inc.wallMs.median)} wall, ${ms(inc.dbMs.median)} database time`,
    verdict: verdict(inc.wallMs.median < TARGETS.hourlyMs && inc.dbMs.median < TARGETS.hourlyMs),
  });
  const incremental = r.refresh.modes.find((m) => m.mode === 'incremental');
  const concurrent = r.refresh.modes.find((m) => m.mode === 'concurrent');
  if (!incremental?.available) {
    rows.push({ target: `incremental refresh of a 0.1 % delta ≥ ${TARGETS.incrementalVsConcurrent}× faster than CONCURRENTLY, identical result`, measured: NOT_YET, verdict: 'n/a' });
  } else {
    const speed = r.refresh.incrementalVsConcurrent;
    const same = incremental.differingRows;
    rows.push({
      target: `incremental refresh of a 0.1 % delta ≥ ${TARGETS.incrementalVsConcurrent}× faster than CONCURRENTLY, identical result`,
      measured: `${times(speed)} (${med(concurrent?.wallMs)} vs ${med(incremental.wallMs)}); ${same === null ? 'not compared' : same === 0 ? 'attempt_mv = attempt' : `${same} rows differ`}`,
      verdict: verdict((speed ?? 0) >= TARGETS.incrementalVsConcurrent && same !== null && same === 0),
    });
  }
  rows.push({
    target: `section 3's query on attempt_mv: p99 under ${TARGETS.mvP99Ms} ms`,
    measured: `p99 ${ms(r.section3.mv.p99Ms)} over ${r.section3.mv.probes} students (median of ${r.section3.mv.passes} passes)`,
    verdict: verdict(r.section3.mv.p99Ms < TARGETS.mvP99Ms),
  });
  if (r.bundles.length > 0) {
    const biggest = r.bundles.reduce((a, b) => (b.bytes > a.bytes ? b : a));
    const slowest = r.bundles.reduce((a, b) => (b.initMs.median > a.initMs.median ? b : a));
    const over = r.bundles.filter((b) => b.bytes >= TARGETS.bundleBytes).length;
    const slow = r.bundles.filter((b) => b.initMs.median >= TARGETS.initMs).length;
    rows.push({
      target: `every Lambda bundle under ${kb(TARGETS.bundleBytes)} minified`,
      measured: `largest ${biggest.name} ${kb(biggest.bytes)}; ${over} of ${r.bundles.length} over`,
      verdict: verdict(over === 0),
    });
    rows.push({
      target: `every Lambda bundle initialises in under ${TARGETS.initMs} ms`,
      measured: `slowest ${slowest.name} ${ms(slowest.initMs.median)}; ${slow} of ${r.bundles.length} over`,
      verdict: verdict(slow === 0),
    });
  }
  const extra = r.publishing.filter((p) => p.published.calls !== p.published.fewest);
  rows.push({
    target: 'each job run publishes in the fewest PutMetricData calls the API allows',
    measured: extra.length === 0
      ? `${r.publishing.length} runs: ${r.publishing.map((p) => p.published.calls).join(', ')} call(s), each the minimum`
      : extra.map((p) => `${p.job} ${p.run}: ${p.published.calls} calls for ${p.published.datums} datums (fewest ${p.published.fewest})`).join('; '),
    verdict: verdict(extra.length === 0),
  });
  return rows;
}

function healthSection(r: BenchResult): string {
  const h = r.health;
  const server = r.database.serverStatements.available;
  const head = ['measure', 'database time', ...(server ? ['pg_stat_statements'] : []), 'wall', 'runs', 'notes'];
  const srv = (s: Samples | null) => (server ? [med(s)] : []);
  const checkRow = (label: string, c: typeof h.incremental) => [
    label, ms(c.dbMs.median), ...srv(c.serverMs), ms(c.wallMs.median), String(c.dbMs.samples.length),
    [
      `${c.window} (${c.windowRows.toLocaleString('en-US')} rows); ${c.statements} statements`,
      `slowest checks: ${c.slowest.map((x) => `${x.name} ${ms(x.ms)}`).join(', ')}`,
      `status ${c.status}${c.problems.length > 0 ? ` (${c.problems.map((p) => truncate(p, 120)).join('; ')})` : ''}`,
    ].join('; '),
  ];
  const rows: string[][] = [
    checkRow('**hourly health check** (incremental, last run 1 h ago)', h.incremental),
    checkRow('health check, full scope (daily)', h.full),
    ...h.runbook.map((q) => [`runbook: ${q.id} (${q.source})`, ms(q.dbMs.median), ...srv(q.serverMs), ms(q.dbMs.median), String(q.dbMs.samples.length), q.result]),
    ["**the runbook's whole-view queries, one pass**", ms(h.runbookDbMs), ...(server ? [ms(h.runbookServerMs)] : []), ms(h.runbookDbMs), '', 'sum of the medians above'],
    ['ratio: runbook / hourly check', times(h.incrementalVsRunbook.db), ...(server ? [times(h.incrementalVsRunbook.server)] : []), '', '', `target ≥ ${TARGETS.hourlyVsRunbook}×`],
    ['ratio: runbook / full-scope check', times(h.fullVsRunbook.db), ...(server ? [times(h.fullVsRunbook.server)] : []), '', '', ''],
  ];
  return table(head, rows);
}

function refreshSection(r: BenchResult): string {
  const server = r.database.serverStatements.available;
  const head = ['mode', 'wall', 'database time', ...(server ? ['pg_stat_statements'] : []), 'runs', 'ran as', 'the delta\'s INSERT', 'notes'];
  const rows = r.refresh.modes.map((m) => {
    if (!m.available) return [m.mode, NOT_YET, '', ...(server ? [''] : []), '0', '', '', m.unavailable ?? ''];
    const same = m.differingRows === null ? [] : [m.differingRows === 0 ? 'attempt_mv EXCEPT ALL attempt, both ways: 0 rows' : `${m.differingRows} rows differ from the view`];
    const notes = [...(m.mode === 'incremental' && m.lastMessage ? [`last run: ${truncate(m.lastMessage, 160)}`] : []), ...same].join('; ');
    return [m.mode === 'full' ? 'full (plain REFRESH)' : m.mode === 'concurrent' ? 'concurrent (REFRESH … CONCURRENTLY)' : m.mode,
      med(m.wallMs), med(m.dbMs), ...(server ? [med(m.serverMs)] : []), String(m.wallMs?.samples.length ?? 0), [...new Set(m.ranAs)].join(', '), med(m.insertMs), notes];
  });
  rows.push(['ratio: CONCURRENTLY / incremental', times(r.refresh.incrementalVsConcurrent), '', ...(server ? [''] : []), '', '', '', `target ≥ ${TARGETS.incrementalVsConcurrent}×`]);
  const incremental = r.refresh.modes.find((m) => m.mode === 'incremental' && m.topStatements.length > 0);
  const where = incremental
    ? `\n\nWhere the last incremental run's time went (pg_stat_statements, its costliest statements):\n\n${table(
        ['statement', 'calls', 'time'],
        incremental.topStatements.map((t) => [`\`${truncate(t.query, 150).replace(/`/g, "'")}\``, String(t.calls), ms(t.ms)]),
      )}`
    : '';
  return `${table(head, rows)}${where}`;
}

function section3Section(r: BenchResult): string {
  const rows = [r.section3.mv, r.section3.view].map((l) => [l.relation, String(l.probes), String(l.passes), ms(l.p50Ms), ms(l.p99Ms), ms(l.maxMs), String(l.meanRows)]);
  rows.push(['ratio: view / attempt_mv (p50)', '', '', times(r.section3.speedup), '', '', '']);
  return table(['relation', 'students', 'passes', 'p50', 'p99', 'max', 'rows per query'], rows);
}

function bundleSection(r: BenchResult): string {
  const rows = r.bundles.map((b) => [
    b.name, kb(b.bytes), ms(b.initMs.median), ms(b.initNoSourceMapsMs.median), String(b.initMs.samples.length),
    b.largest.map((p) => `${p.name} ${kb(p.bytes)}`).join(', '),
    verdict(b.bytes < TARGETS.bundleBytes && b.initMs.median < TARGETS.initMs),
  ]);
  return table(['function', 'minified', 'cold init (as deployed)', 'cold init without source maps', 'runs', 'largest parts', `< ${kb(TARGETS.bundleBytes)}, < ${TARGETS.initMs} ms`], rows);
}

function publishSection(r: BenchResult): string {
  const rows = r.publishing.map((p) => [p.job, p.run, p.status, String(p.published.datums), String(p.published.calls), String(p.published.fewest), verdict(p.published.calls === p.published.fewest)]);
  return table(['job', 'run', 'run status', 'datums', 'PutMetricData calls', 'fewest possible', 'result'], rows);
}

export function renderTargets(r: BenchResult): string {
  return table(['target (issue 7)', 'measured', 'result'], targetRows(r).map((t) => [t.target, t.measured, t.verdict]));
}

export function renderMarkdown(r: BenchResult, ctx: ReportContext): string {
  const m = ctx.machine;
  const s = r.settings;
  const db = r.database;
  const delta = r.refresh;
  const info = table(['', ''], [
    ['date', ctx.date.toISOString()],
    ['machine', `${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB memory, ${m.os}`],
    ['Node.js', m.node],
    ...(ctx.load ? [['load average (1, 5, 15 min)', `${loadText(ctx.load.start)} at the start, ${loadText(ctx.load.end)} at the end, on ${m.cores} cores`]] : []),
    ['PostgreSQL', `${db.version} (${ctx.server}); ${Object.entries(db.settings).map(([k, v]) => `${k} ${v}`).join(', ')}`],
    ['data', `${s.rows.toLocaleString('en-US')} exam_results rows (${mb(r.seed.tableBytes)} with indexes), attempt_mv ${mb(r.ops.mvBytes)}`],
    ['setup', `seeding ${ms(r.seed.seedMs)} (set-based SQL), ANALYZE ${ms(r.seed.analyzeMs)}, bootstrap --apply ${ms(r.ops.bootstrapMs)} (attempt_mv populated, its indexes, the completed_at index)`],
    ['repetitions', `${s.reps} (${s.slowReps} for full-scope checks, whole-view queries and refreshes); figures are medians`],
    ['server-side database time', db.serverStatements.available ? 'pg_stat_statements: execution + planning time of this database\'s statements' : `not measured: ${db.serverStatements.reason}`],
  ]);
  return `# Benchmarks

Measured by \`${ctx.command}\` (bench/main.ts). Every figure below comes from that one run.

${info}

## Targets

${renderTargets(r)}

## a. Health checks and the runbook's whole-view queries

Database time is the time the statements took, summed over every statement of the run, measured
by the client on loopback (send to last row). Two checks run at a time (as in Lambda), so a run's
database time can exceed its wall time. The health checks run as the Lambda runs them (through
\`executeJob\`, recorded in \`attempt_ops.job_runs\`, metrics published) on a warm pool. The
runbook's queries run verbatim on the view, one at a time.

${healthSection(r)}

## b. Refreshing attempt_mv after an hour's changes

Before each run, ${Math.round(delta.deltaRows).toLocaleString('en-US')} new rows (0.1 %) are appended, ${Math.round(delta.lateRows).toLocaleString('en-US')} of them
late (completed days to months ago, so they renumber \`attempt_no\` of rows already there). Each
refresh is one run of the refresh-mv job (\`runRefresh\`, advisory lock, audit rows included).
Plain and CONCURRENTLY run first, on the materialized view. The first incremental run (untimed)
converts attempt_mv into the table-backed copy with change capture and catches up; the timed
runs are the hourly steady state after it. The delta's INSERT column is the writers' side: with
the change capture's triggers installed for the incremental runs.

${refreshSection(r)}

## c. Runbook section 3's per-student query

\`${'SELECT * FROM <relation> WHERE student_id = $1 AND completed_at >= CURRENT_DATE - INTERVAL \'30 days\''}\`,
for students spread over the population, each an unnamed statement parsed and planned as an
application sends it; time from send to last row. On attempt_mv the same students are probed in
several passes and p50, p99 and max are the medians of the passes' own; on the view, where one
query takes seconds, a single pass over a few students.

${section3Section(r)}

## d. Lambda bundles

Each \`functions/handlers/*.ts\` entry bundled as the CDK stack bundles it (esbuild, minified,
CommonJS, platform node, target node22, \`@aws-sdk/*\` and \`pg-native\` external, dynamic import()
compiled to require(), linked source map). Cold init: one \`require\` of the bundle in a fresh
\`node\`, timed around the require, with the AWS SDK resolved from node_modules (a handler that
loads an SDK client on first use pays for it in its first invocation, not here); as deployed
means \`NODE_OPTIONS=--enable-source-maps\`,
which the stack sets. Measured on this machine's ${m.os.split(' ').pop()} with Node.js ${m.node}; Lambda runs
Node.js 22 on arm64. KB are 1,000 bytes.

${bundleSection(r)}

## e. PutMetricData calls per job run

Each job run through \`executeJob\` with \`cloudWatchSink\` on a CloudWatch client whose calls are
counted (aws-sdk-client-mock). The fewest possible is what the API's limits allow for that many
datums: 1,000 per call and 1 MB per payload.

${publishSection(r)}

## How to reproduce

\`\`\`sh
npm ci
npm run bench -- --rows ${s.rows}            # embedded PostgreSQL, started and stopped by the run
DATABASE_URL=postgres://user:password@host:5432/postgres npm run bench -- --rows ${s.rows}
                                           # a fresh database attempt_bench_<random> there, dropped afterwards
npm run bench -- --help                    # --reps N, --keep, --out FILE
\`\`\`

The dataset is deterministic for a given --rows (functions/demo/seed.ts): exams of ten answers,
one student per ${30} rows, 500 questions, completed_at spread over 180 days. The refresh
repetitions append their deltas, so the table ends ${(s.slowReps * 3 * 0.1).toFixed(1)} % larger at most. Figures
on a shared or busy machine vary from run to run; the ratios vary far less than the times.
`;
}

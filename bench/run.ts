/**
 * One benchmark over one database: seed, bootstrap, then a. to e. in an order where nothing
 * measured disturbs what comes after it (the refresh, which appends deltas, runs after the reads).
 */
import type { Logger } from '../functions/runtime/log.ts';
import { silentLogger } from '../functions/runtime/log.ts';
import { measureBundles, type BundleFigures } from './bundles.ts';
import { datasetSpec, deltaRowsFor, prepareOps, seedDataset, type OpsFigures, type SeedFigures } from './dataset.ts';
import { measureHealth, type HealthFigures } from './health.ts';
import { adminClient, countingCloudWatch, meteredDeps } from './jobs.ts';
import { serverStatements } from './meter.ts';
import { measurePublishing, type PublishFigures } from './metrics.ts';
import { measureRefresh, type RefreshFigures } from './refresh.ts';
import { measureSection3, type Section3Figures } from './section3.ts';

export interface BenchSettings {
  rows: number;
  reps: number;
  slowReps: number;
  /** Students probed on attempt_mv (c). */
  mvProbes: number;
  /** Students probed on the view (c): seconds each at scale. */
  viewProbes: number;
  /** Compare attempt_mv with the view after incremental refreshes. */
  verifyIncremental: boolean;
}

export function defaultSettings(rows: number, reps: number, slowReps: number): BenchSettings {
  return { rows, reps, slowReps, mvProbes: 200, viewProbes: slowReps, verifyIncremental: true };
}

export interface DatabaseInfo {
  version: string;
  settings: Record<string, string>;
  /** How database time was read on the server side, or why it was not. */
  serverStatements: { available: boolean; reason: string | null };
}

export interface DatabaseFigures {
  database: DatabaseInfo;
  seed: SeedFigures;
  ops: OpsFigures;
  health: HealthFigures;
  section3: Section3Figures;
  refresh: RefreshFigures;
  publishing: PublishFigures[];
}

export interface BenchResult extends DatabaseFigures {
  settings: BenchSettings;
  bundles: BundleFigures[];
}

export type Progress = (line: string) => void;

/** Seeding progress, at most every 10 %, or on one rewritten line on a terminal. */
export function seedProgress(progress: Progress, tty: boolean): (done: number, total: number) => void {
  let shown = -1;
  return (done, total) => {
    const pct = Math.floor((100 * done) / total);
    const line = `seeding exam_results: ${done.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} rows (${pct} %)`;
    if (tty) {
      process.stderr.write(`\r${line}${done === total ? '\n' : ''}`);
      return;
    }
    if (pct >= shown + 10 || done === total) {
      shown = pct;
      progress(line);
    }
  };
}

const SHOWN_SETTINGS = ['shared_buffers', 'work_mem', 'maintenance_work_mem', 'max_parallel_workers_per_gather', 'effective_cache_size'];

export async function measureDatabase(url: string, s: BenchSettings, progress: Progress, opts: { tty?: boolean; log?: Logger } = {}): Promise<DatabaseFigures> {
  const log = opts.log ?? silentLogger;
  const admin = await adminClient(url);
  const m = meteredDeps(url, 'bench', log);
  try {
    const { rows: v } = await admin.query<{ v: string }>('SELECT version() AS v');
    const { rows: set } = await admin.query<{ name: string; setting: string }>(
      `SELECT name, current_setting(name) AS setting FROM pg_settings WHERE name = ANY($1) ORDER BY name`,
      [SHOWN_SETTINGS],
    );
    const server = await serverStatements(admin);
    const database: DatabaseInfo = {
      version: v[0]!.v,
      settings: Object.fromEntries(set.map((r) => [r.name, r.setting])),
      serverStatements: { available: server.available, reason: server.reason },
    };
    const spec = datasetSpec(s.rows);
    const seed = await seedDataset(admin, spec, seedProgress(progress, opts.tty ?? false));
    progress(`seeded in ${(seed.seedMs / 1000).toFixed(1)} s; bootstrap (attempt_ops, attempt_mv populated, indexes)...`);
    const ops = await prepareOps(admin, m.deps);
    progress(`bootstrap applied in ${(ops.bootstrapMs / 1000).toFixed(1)} s`);
    const cw = countingCloudWatch();
    const health = await measureHealth(m, cw, admin, server, s, progress);
    progress(`c. section 3's query: ${s.mvProbes} students on attempt_mv (${s.reps} passes), ${s.viewProbes} on the view`);
    const section3 = await measureSection3(admin, { mvProbes: s.mvProbes, mvPasses: s.reps, viewProbes: s.viewProbes });
    const refresh = await measureRefresh(
      { reps: s.slowReps, deltaRows: deltaRowsFor(s.rows), verifyIncremental: s.verifyIncremental }, spec, m, cw, admin, server, log, progress,
    );
    progress('e. the remaining jobs, once each, for their PutMetricData calls');
    const publishing = await measurePublishing(health, refresh, m, cw, log);
    return { database, seed, ops, health, section3, refresh, publishing };
  } finally {
    await m.pool.end().catch(() => undefined);
    await admin.end().catch(() => undefined);
  }
}

export { measureBundles };

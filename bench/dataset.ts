/**
 * The benchmark's data: the reference dataset (functions/demo/seed.ts, set-based in the server),
 * the objects the jobs maintain (bootstrap, as `cdk deploy` runs it), and the hourly delta the
 * refresh is measured on.
 */
import type pg from 'pg';
import { ANSWERS_PER_EXAM, createReferenceSchema, generatedResultJsonSql, generatedStudentSql, seedReferenceData } from '../functions/demo/seed.ts';
import { runBootstrap } from '../functions/jobs/bootstrap.ts';
import type { JobDeps } from '../functions/jobs/deps.ts';
import { JOB_RUNS } from '../functions/sql/ops-schema.ts';

export interface DatasetSpec {
  rows: number;
  questions: number;
  days: number;
}

/** seedReferenceData's own defaults, passed explicitly because the delta must match them. */
export function datasetSpec(rows: number): DatasetSpec {
  return { rows, questions: 500, days: 180 };
}

/** seedReferenceData's student count for a size; the delta's exams go to these existing students. */
export function studentsFor(rows: number): number {
  return Math.max(50, Math.floor(rows / 30));
}

export interface SeedFigures {
  seedMs: number;
  analyzeMs: number;
  tableBytes: number;
}

export async function seedDataset(client: pg.Client, spec: DatasetSpec, progress: (done: number, total: number) => void): Promise<SeedFigures> {
  await createReferenceSchema(client);
  const t0 = performance.now();
  await seedReferenceData(client, { rows: spec.rows, questions: spec.questions, days: spec.days, onProgress: progress });
  const t1 = performance.now();
  await client.query('ANALYZE exam_results; ANALYZE questions');
  const t2 = performance.now();
  const { rows } = await client.query<{ bytes: string }>(`SELECT pg_total_relation_size('exam_results') AS bytes`);
  return { seedMs: t1 - t0, analyzeMs: t2 - t1, tableBytes: Number(rows[0]?.bytes ?? 0) };
}

export interface OpsFigures {
  /** Bootstrap with apply: attempt_ops, attempt_mv populated, its indexes, the completed_at index. */
  bootstrapMs: number;
  mvBytes: number;
}

/**
 * What a deployed target has: bootstrap applied (it also runs whatever the incremental refresh
 * will need, once bootstrap creates it), statistics on attempt_mv, and the steady state of the
 * hourly check: a successful run recorded an hour ago.
 */
export async function prepareOps(client: pg.Client, deps: JobDeps): Promise<OpsFigures> {
  const t0 = performance.now();
  const report = await runBootstrap(deps, { apply: true });
  const bootstrapMs = performance.now() - t0;
  const blocked = report.actions.filter((a) => a.outcome === 'blocked');
  if (blocked.length > 0) throw new Error(`bootstrap is blocked: ${blocked.map((a) => `${a.object}: ${a.message}`).join('; ')}`);
  await client.query('ANALYZE attempt_mv');
  await recordPreviousHealthCheck(client, 60);
  const { rows } = await client.query<{ bytes: string }>(`SELECT pg_total_relation_size('attempt_mv') AS bytes`);
  return { bootstrapMs, mvBytes: Number(rows[0]?.bytes ?? 0) };
}

/** A successful hourly health check `minutesAgo` minutes ago: where the next incremental run starts. */
export async function recordPreviousHealthCheck(client: pg.Client, minutesAgo: number): Promise<void> {
  await client.query(
    `INSERT INTO ${JOB_RUNS} (job, target, started_at, finished_at, mode, outcome, details)
     VALUES ('health-check', 'bench', now() - make_interval(mins => $1), now() - make_interval(mins => $1) + interval '1 second',
             'incremental', 'success', '{"seededBy": "bench"}')`,
    [minutesAgo],
  );
}

export interface Delta {
  rows: number;
  /** Rows whose completed_at is days or months old: they renumber attempt_no of rows already there. */
  lateRows: number;
}

/** 0.1 % of the table, in whole exams, at least two (so even a tiny run has a late one). */
export function deltaRowsFor(rows: number): number {
  return Math.max(2, Math.round(rows / 1000 / ANSWERS_PER_EXAM)) * ANSWERS_PER_EXAM;
}

/**
 * One hour's new results, appended with fresh exam ids, by students who already have results:
 * every fourth exam arrives late (completed days to months ago, synced only now), the others
 * completed within the last hour. Generated the way the seed generates rows, so the view's ids
 * stay unique.
 */
export async function insertDelta(client: pg.Client, spec: DatasetSpec, rows: number): Promise<Delta> {
  const exams = Math.ceil(rows / ANSWERS_PER_EXAM);
  const { rows: out } = await client.query<{ inserted: string; late: string }>(
    `WITH base AS (SELECT coalesce(max(id), 0) + 1 AS first FROM exam_results),
     ins AS (
       INSERT INTO exam_results (id, student_id, result_json, completed_at)
       SELECT e, ${generatedStudentSql()},
              ${generatedResultJsonSql('$2')},
              CASE WHEN j % 4 = 0
                   THEN now() - make_interval(days => (1 + (e * 7919) % ($4 - 1))::int) - make_interval(secs => k * 20)
                   ELSE now() - make_interval(mins => (e % 60)::int) - make_interval(secs => k * 20) END
         FROM base, generate_series(0, $1::int - 1) j, generate_series(0, ${ANSWERS_PER_EXAM - 1}) k,
              LATERAL (SELECT base.first + j AS e) ex,
              LATERAL (SELECT (ex.e * 31) % $3 AS s) st
       RETURNING completed_at)
     SELECT count(*) AS inserted, count(*) FILTER (WHERE completed_at < now() - interval '1 day') AS late FROM ins`,
    [exams, spec.questions, studentsFor(spec.rows), spec.days],
  );
  return { rows: Number(out[0]?.inserted ?? 0), lateRows: Number(out[0]?.late ?? 0) };
}

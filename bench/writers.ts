/**
 * The writers' side of the change capture: single-row autocommit INSERTs into exam_results, a few
 * clients at once, with and without the capture, side by side. Two schemas of one database, the
 * same table and indexes; rounds alternate between them so that machine load falls on both alike.
 * The figure is the ratio of the median round times (with / without), the issue's target ≤ 1.15.
 */
import pg from 'pg';
import { createPool } from '../functions/db/pool.ts';
import { fromUrl } from '../functions/db/connection.ts';
import { runBootstrap } from '../functions/jobs/bootstrap.ts';
import { referenceTablesSql, v1ViewSql } from '../functions/sql/reference.ts';
import { silentLogger } from '../functions/runtime/log.ts';
import { completedAtIndexSql } from '../functions/sql/ops-schema.ts';
import { studentIndexSql } from '../functions/sql/incremental.ts';

export interface WriterRun {
  clients: number;
  insertsPerRound: number;
  rounds: number;
  withoutMs: number;
  withMs: number;
  ratio: number;
}

export interface WriterFigures {
  runs: WriterRun[];
}

const SCHEMAS = { plain: 'bench_writers_plain', captured: 'bench_writers_captured' } as const;

async function prepare(url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    for (const s of Object.values(SCHEMAS)) {
      await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
      await c.query(referenceTablesSql(s));
      await c.query(v1ViewSql(s));
      await c.query(`INSERT INTO ${s}.questions SELECT q, 100 + q, 'q', 'a', ARRAY['t'] FROM generate_series(1, 50) q`);
      // The indexes a production exam_results has: the health check's and the incremental refresh's.
      // Under bootstrap's own names, so that it builds no second copy of either on the captured side.
      for (const sql of [completedAtIndexSql(s), ...studentIndexSql(s, false)]) await c.query(sql);
    }
  } finally {
    await c.end();
  }
  const pool = createPool(fromUrl(url, 'bench url'), { job: 'bench', max: 2 });
  try {
    const report = await runBootstrap({ pool, target: 'bench', schema: SCHEMAS.captured, appRole: 'postgres', log: silentLogger }, { apply: true });
    if (!report.actions.some((a) => a.action === 'install change capture' && (a.outcome === 'done' || a.outcome === 'exists'))) {
      throw new Error('bench: the change capture was not installed');
    }
  } finally {
    await pool.end();
  }
}

async function round(clients: pg.Client[], schema: string, perClient: number, offset: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(
    clients.map(async (c, k) => {
      for (let i = 0; i < perClient; i++) {
        const id = offset + k * perClient + i;
        await c.query(`INSERT INTO ${schema}.exam_results VALUES ($1, $2, $3::jsonb, now())`, [
          id, `student-${id % 997}`, JSON.stringify({ questionId: 1 + (id % 50), studentAnswer: 'a', isCorrect: id % 2 === 0, responseTime: 900 }),
        ]);
      }
    }),
  );
  return performance.now() - t0;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/**
 * 2 clients, and 4. The bench's own client shares the machine's two cores with the server, so at
 * 4 clients the machine is CPU-bound and the ratio is the ratio of CPU per INSERT; at 2 it is the
 * latency a writer sees, which is what an application on its own host pays.
 */
export async function measureWriters(url: string, opts: { clients?: number[]; perClient?: number; rounds?: number } = {}): Promise<WriterFigures> {
  await prepare(url);
  const runs: WriterRun[] = [];
  try {
    // Rounds of about a second or more: shorter ones measured the machine's noise more than the trigger.
  for (const clients of opts.clients ?? [2, 4]) runs.push(await measureAt(url, clients, opts.perClient ?? 1500, opts.rounds ?? 7));
  } finally {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    for (const s of Object.values(SCHEMAS)) await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`).catch(() => undefined);
    await c.end();
  }
  return { runs };
}

async function measureAt(url: string, clientsN: number, perClient: number, rounds: number): Promise<WriterRun> {
  const clients = await Promise.all(Array.from({ length: clientsN }, async () => {
    const c = new pg.Client({ connectionString: url, application_name: 'bench-writer' });
    await c.connect();
    return c;
  }));
  try {
    // One untimed round each: plan caches, the capture function compiled per session.
    await round(clients, SCHEMAS.plain, 50, 0);
    await round(clients, SCHEMAS.captured, 50, 0);
    const plain: number[] = [];
    const captured: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const offset = 1_000_000 * (r + 1);
      // Alternate which side goes first, so neither always runs on a warmer machine.
      if (r % 2 === 0) {
        plain.push(await round(clients, SCHEMAS.plain, perClient, offset));
        captured.push(await round(clients, SCHEMAS.captured, perClient, offset));
      } else {
        captured.push(await round(clients, SCHEMAS.captured, perClient, offset));
        plain.push(await round(clients, SCHEMAS.plain, perClient, offset));
      }
    }
    const withoutMs = median(plain);
    const withMs = median(captured);
    return { clients: clientsN, insertsPerRound: clientsN * perClient, rounds, withoutMs, withMs, ratio: withMs / withoutMs };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

export function renderWriters(w: WriterFigures): string {
  const rows = w.runs.map((r) => `| ${r.clients} | ${r.insertsPerRound.toLocaleString('en-US')} | ${((r.withoutMs * 1000) / r.insertsPerRound).toFixed(0)} µs | ${((r.withMs * 1000) / r.insertsPerRound).toFixed(0)} µs | **${r.ratio.toFixed(2)}x** |`);
  return `## Writers: single-row INSERTs with and without the change capture

Single-row autocommit INSERTs into exam_results, rounds alternating between a schema without the
capture and one with it (bootstrap --apply), both with bootstrap's indexes; medians of ${w.runs[0]?.rounds ?? 0} rounds.
Target: at most 1.15x. At 4 clients the bench's client and the server saturate the two cores, so
that row is the ratio of CPU per INSERT rather than what a writer waits.

| clients | INSERTs per round | without | with | ratio |
|---|---|---|---|---|
${rows.join('\n')}
`;
}

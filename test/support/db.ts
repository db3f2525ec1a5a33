/**
 * A fresh database per test file, with the reference schema, the V1 view and the app role's
 * grants: a clean database on which every check passes. Fault helpers inject one runbook fault each.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { DEFAULT_APP_ROLE } from '../../functions/contract/index.ts';
import { fromUrl } from '../../functions/db/connection.ts';
import { createPool, type Pool, type SessionTimeouts } from '../../functions/db/pool.ts';
import { referenceTablesSql, v1ViewSql } from '../../functions/sql/reference.ts';

export interface TestDatabase {
  name: string;
  url: string;
  /** A superuser-ish client for setup and fault injection. */
  admin: pg.Client;
  pool(job?: string, timeouts?: Partial<SessionTimeouts>): Pool;
  drop(): Promise<void>;
}

export function adminUrl(): string {
  return inject('adminUrl');
}

export function urlFor(database: string, base = adminUrl()): string {
  const u = new URL(base);
  u.pathname = `/${database}`;
  return u.toString();
}

/** Roles are cluster-wide; creating one concurrently from two files must not fail. */
export async function ensureRole(client: pg.Client | pg.Pool, role: string, attributes = 'NOLOGIN'): Promise<void> {
  await client.query(`DO $$ BEGIN
      CREATE ROLE "${role}" ${attributes};
    EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`);
}

/** `server`: the admin URL of another server than the run's (e.g. one the test started itself). */
export async function createTestDatabase(options: { view?: boolean; grants?: boolean; server?: string } = {}): Promise<TestDatabase> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  const server = options.server ?? adminUrl();
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  try {
    await root.query(`CREATE DATABASE ${name}`);
    await ensureRole(root, DEFAULT_APP_ROLE);
  } finally {
    await root.end();
  }
  const url = urlFor(name, server);
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(referenceTablesSql('public'));
  if (options.view !== false) await admin.query(v1ViewSql('public'));
  if (options.grants !== false) {
    await admin.query(`GRANT SELECT ON exam_results, questions TO ${DEFAULT_APP_ROLE}`);
    if (options.view !== false) await admin.query(`GRANT SELECT ON attempt TO ${DEFAULT_APP_ROLE}`);
  }
  const pools: Pool[] = [];
  return {
    name,
    url,
    admin,
    pool(job = 'test', timeouts) {
      const p = createPool(fromUrl(url, 'test url'), { job, timeouts, max: 4 });
      pools.push(p);
      return p;
    },
    async drop() {
      await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
      await admin.end().catch(() => undefined);
      const c = new pg.Client({ connectionString: server });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

/**
 * Back to a fresh start inside one test database: no attempt_ops, the reference schema and V1
 * view, the clean seed (for files whose tests each need the start state, cheaper than a database each).
 */
export async function resetToClean(client: pg.Client): Promise<void> {
  await client.query(`DROP SCHEMA IF EXISTS attempt_ops CASCADE; DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT USAGE ON SCHEMA public TO PUBLIC`);
  await client.query(referenceTablesSql('public'));
  await client.query(v1ViewSql('public'));
  await seedClean(client);
}

const STUDENTS = [
  '3f1c2a9e-8b7d-4c6e-9a1b-2c3d4e5f6a7b',
  '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d',
  'legacy-student-0042',
];

/**
 * A small clean dataset: 4 questions, 3 students (two uuid, one legacy id), 24 results completed
 * over the last 10 days. Every check passes on it.
 */
export async function seedClean(client: pg.Client): Promise<void> {
  await client.query(`INSERT INTO questions (id, item_id, question_text, correct_answer, tags) VALUES
    (1, 101, 'What is 2+2?', '4', ARRAY['math']), (2, 102, 'Capital of France?', 'Paris', ARRAY['geo']),
    (3, 103, 'H2O is?', 'water', ARRAY['chem']), (4, 104, 'Largest planet?', 'Jupiter', NULL)`);
  await client.query(
    `INSERT INTO exam_results (id, student_id, result_json, completed_at)
     SELECT 1000 + s * 10 + q, st, jsonb_build_object('questionId', q, 'studentAnswer', 'a' || q,
              'isCorrect', (q % 2 = 0), 'responseTime', 1000 + q * 10),
            now() - make_interval(hours => (s * 40 + q)::int)
       FROM unnest($1::text[]) WITH ORDINALITY AS t(st, s), generate_series(1, 4) q
     UNION ALL
     SELECT 2000 + s * 10 + q, st, jsonb_build_object('questionId', q, 'studentAnswer', 'b', 'isCorrect', true, 'responseTime', '850.6'),
            now() - make_interval(mins => (s * 7 + q)::int)
       FROM unnest($1::text[]) WITH ORDINALITY AS t(st, s), generate_series(1, 4) q`,
    [STUDENTS],
  );
  await client.query('ANALYZE exam_results; ANALYZE questions');
}

/** Insert one exam result; completed_at defaults to now. */
export async function insertResult(client: pg.Client, row: { id: number; student: string | null; json: unknown; at?: string }): Promise<void> {
  await client.query(`INSERT INTO exam_results (id, student_id, result_json, completed_at) VALUES ($1, $2, $3::jsonb, coalesce($4::timestamptz, now()))`, [
    row.id,
    row.student,
    JSON.stringify(row.json),
    row.at ?? null,
  ]);
}

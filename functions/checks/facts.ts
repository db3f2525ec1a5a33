import { OPS_SCHEMA } from '../contract/index.ts';
import { classifyDbError } from '../db/errors.ts';
import { qualified } from '../db/identifiers.ts';
import type { DatabaseFacts, Queryable } from './types.ts';

/**
 * One round trip before the checks (on the pool, or on a diagnosis' own read-only transaction): the server version and which of our relations exist. When
 * this fails the database is unreachable and the job itself has failed. A table called attempt_mv
 * (the table-backed copy that incremental refreshes keep) always has rows to read: it counts as
 * populated.
 */
export async function loadFacts(db: Queryable, schema: string): Promise<DatabaseFacts> {
  try {
    const { rows } = await db.query<{ version: number; attempt_kind: string | null; mv: string | null; mv_populated: boolean | null; job_runs: string | null }>(
      `SELECT current_setting('server_version_num')::int AS version,
              (SELECT relkind::text FROM pg_class WHERE oid = to_regclass($1)) AS attempt_kind,
              to_regclass($2)::text AS mv,
              (SELECT relkind = 'r' OR relispopulated FROM pg_class WHERE oid = to_regclass($2) AND relkind IN ('m', 'r')) AS mv_populated,
              to_regclass($3)::text AS job_runs`,
      [qualified(schema, 'attempt'), qualified(schema, 'attempt_mv'), qualified(OPS_SCHEMA, 'job_runs')],
    );
    const r = rows[0]!;
    return {
      serverVersion: r.version,
      attemptKind: r.attempt_kind,
      attemptMv: { exists: r.mv !== null, populated: r.mv_populated === true },
      hasJobRuns: r.job_runs !== null,
    };
  } catch (err) {
    throw classifyDbError(err);
  }
}

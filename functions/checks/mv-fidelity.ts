import { CHECK_SPECS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import type { HealthCheck } from './types.ts';

/**
 * Is the table-backed attempt_mv still equal to the view? Each refresh compares a rotating sample
 * of students with the view (ties as multisets: a tie renumbered is not a divergence) and records
 * what it found in attempt_ops.attempt_mv_state; a full rebuild is equal by construction. A
 * materialized view needs none of this: REFRESH computes it from the view.
 */
export const mvFidelity: HealthCheck = {
  spec: CHECK_SPECS.mv_fidelity,
  async measure({ db, schema, facts }) {
    if (!facts.attemptMv.exists) return { value: null, status: 'skipped', message: `${schema}.attempt_mv does not exist` };
    const { rows } = await db.query<{
      table_copy: boolean; has_state: boolean;
      divergent_rows: string | null; verified_at: Date | null; verified_students: number | null; full_verified_at: Date | null; details: unknown;
    }>(
      `SELECT (SELECT relkind = 'r' FROM pg_class WHERE oid = to_regclass($1)) AS table_copy,
              to_regclass('attempt_ops.attempt_mv_state') IS NOT NULL AS has_state`,
      [qualified(schema, 'attempt_mv')],
    );
    // REFRESH computes a materialized view from the view: it can be stale (mv_staleness), never different.
    if (!rows[0]?.table_copy) return { value: 0, message: `${schema}.attempt_mv is a materialized view: each REFRESH computes it from the view` };
    if (!rows[0].has_state) return { value: null, status: 'warning', message: 'attempt_ops.attempt_mv_state is missing: run attempt-ops bootstrap --apply' };
    const { rows: st } = await db.query<{
      divergent_rows: string; verified_at: Date | null; verified_students: number | null; full_verified_at: Date | null; verify_details: Record<string, unknown>;
    }>(`SELECT divergent_rows, verified_at, verified_students, full_verified_at, verify_details FROM attempt_ops.attempt_mv_state WHERE source_schema = $1`, [schema]);
    const s = st[0];
    if (!s || !s.verified_at) return { value: null, status: 'warning', message: 'no refresh has verified attempt_mv against the view yet: run attempt-ops refresh --mode incremental' };
    const value = Number(s.divergent_rows);
    const details = [{ verifiedAt: s.verified_at.toISOString(), sampledStudents: s.verified_students, wholeCopyVerifiedAt: s.full_verified_at?.toISOString() ?? null, ...s.verify_details }];
    const when = `at ${s.verified_at.toISOString()}`;
    if (value === 0) return { value, message: `attempt_mv matched the view for the ${s.verified_students ?? 'rebuilt'} student(s) last verified ${when}`, details };
    return { value, message: `${value} row(s) of attempt_mv differ from the view (verified ${when}): the next refresh rebuilds it`, details };
  },
};

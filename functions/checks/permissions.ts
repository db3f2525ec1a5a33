import { CHECK_SPECS } from '../contract/index.ts';
import type { HealthCheck } from './types.ts';

/**
 * Runbook section 2. The app role needs SELECT on the view and the base tables, USAGE on the
 * schema; and a view runs with its owner's rights, so the owner needs SELECT on the base tables
 * (the "role mismatch" cause).
 */
export const permissions: HealthCheck = {
  spec: CHECK_SPECS.permissions,
  async measure({ db, schema, appRole, facts }) {
    const roleRows = await db.query<{ exists: boolean }>('SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) AS exists', [appRole]);
    const relations = ['exam_results', 'questions'];
    if (facts.attemptKind !== null) relations.push('attempt');
    if (facts.attemptMv.exists) relations.push('attempt_mv');
    if (!roleRows.rows[0]?.exists) {
      return {
        value: relations.length,
        message: `role ${appRole} does not exist`,
        details: relations.map((relation) => ({ role: appRole, relation, privilege: 'SELECT' })),
      };
    }
    const { rows } = await db.query<{ role: string; relation: string; privilege: string; granted: boolean }>(
      `WITH rel AS (SELECT r AS relation, to_regclass(format('%I.%I', $2::text, r)) AS oid FROM unnest($3::text[]) AS r)
       SELECT $1::text AS role, '(schema ' || $2 || ')' AS relation, 'USAGE' AS privilege, has_schema_privilege($1, $2, 'USAGE') AS granted
       UNION ALL
       SELECT $1, rel.relation, 'SELECT', has_table_privilege($1, rel.oid, 'SELECT') FROM rel WHERE rel.oid IS NOT NULL
       UNION ALL
       SELECT v.viewowner::text, rel.relation, 'SELECT (view owner)', has_table_privilege(v.viewowner, rel.oid, 'SELECT')
         FROM pg_views v, rel
        WHERE v.schemaname = $2 AND v.viewname = 'attempt' AND rel.relation IN ('exam_results', 'questions') AND rel.oid IS NOT NULL`,
      [appRole, schema, relations],
    );
    const missing = rows.filter((r) => !r.granted).map(({ role, relation, privilege }) => ({ role, relation, privilege }));
    if (missing.length === 0) return { value: 0, message: `${appRole} may read ${relations.map((r) => `${schema}.${r}`).join(', ')}` };
    const list = missing.map((m) => `${m.privilege} on ${m.relation} for ${m.role}`).join(', ');
    return { value: missing.length, message: `missing: ${list}`, details: missing };
  },
};

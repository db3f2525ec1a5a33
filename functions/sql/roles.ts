/**
 * Least privilege in the database: three group roles (NOLOGIN), one per kind of job. A DBA grants
 * membership to the login users whose credentials the functions' secrets hold:
 *   GRANT attempt_ops_monitor TO health_check_login;
 * The names are fixed so the grants are reviewable; the schema and app role come validated.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';

export const ROLES = {
  /** health-check and publish-metrics: read the view, its tables, statistics and activity. */
  monitor: 'attempt_ops_monitor',
  /** analyze and refresh-mv: owns attempt_mv, may ANALYZE. */
  maintainer: 'attempt_ops_maintainer',
  /**
   * the ops function's remediations: quarantine, cancelling queries, the audit. recreate-view,
   * grant-select and create-indexes also need the owner of the view's tables (PostgreSQL lets
   * only an owner index a table or grant on it): grant that owner role to the ops login too.
   */
  operator: 'attempt_ops_operator',
} as const;

function createRole(name: string): string {
  // CREATE ROLE has no IF NOT EXISTS; two bootstraps at once must not fail either.
  return `DO $$ BEGIN CREATE ROLE ${quoteIdent(name)} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`;
}

/**
 * The statements, in order. Each is idempotent. `serverVersion` decides how ANALYZE on the base
 * tables is granted: the MAINTAIN privilege exists from PostgreSQL 17; before that only a table's
 * owner (or a superuser) may ANALYZE it, which docs/RELIABILITY.md explains.
 */
export function rolesSql(schema: string, serverVersion: number): string[] {
  const s = quoteIdent(schema);
  const ops = quoteIdent(OPS_SCHEMA);
  const monitor = quoteIdent(ROLES.monitor);
  const maintainer = quoteIdent(ROLES.maintainer);
  const operator = quoteIdent(ROLES.operator);
  const watched = ['exam_results', 'questions', 'attempt'].map((r) => qualified(schema, r)).join(', ');
  const statements = [
    createRole(ROLES.monitor),
    createRole(ROLES.maintainer),
    createRole(ROLES.operator),
    // pg_monitor: other sessions' queries in pg_stat_activity, pg_stat_statements.
    `GRANT pg_monitor TO ${monitor}`,
    `GRANT USAGE ON SCHEMA ${s} TO ${monitor}, ${maintainer}, ${operator}`,
    `GRANT SELECT ON ${watched} TO ${monitor}, ${maintainer}, ${operator}`,
    `GRANT USAGE ON SCHEMA ${ops} TO ${monitor}, ${maintainer}, ${operator}`,
    // Every job records its runs; nobody but the operator may rewrite history.
    `GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA ${ops} TO ${monitor}, ${maintainer}`,
    `GRANT USAGE ON ALL SEQUENCES IN SCHEMA ${ops} TO ${monitor}, ${maintainer}, ${operator}`,
    `GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ${ops} TO ${operator}`,
    // Tables created later in attempt_ops (the remediation audit, the quarantine) get the same.
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${ops} GRANT SELECT, INSERT, UPDATE ON TABLES TO ${monitor}, ${maintainer}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${ops} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO ${operator}`,
    `ALTER DEFAULT PRIVILEGES IN SCHEMA ${ops} GRANT USAGE ON SEQUENCES TO ${monitor}, ${maintainer}, ${operator}`,
    `GRANT CREATE ON SCHEMA ${ops} TO ${operator}`,
    // quarantine-duplicates moves rows out of exam_results and back.
    `GRANT INSERT, DELETE ON ${qualified(schema, 'exam_results')} TO ${operator}`,
    `GRANT ${maintainer} TO ${operator}`,
    `GRANT pg_signal_backend TO ${operator}`,
  ];
  if (serverVersion >= 170000) statements.push(`GRANT MAINTAIN ON ${qualified(schema, 'exam_results')}, ${qualified(schema, 'questions')} TO ${maintainer}`);
  return statements;
}

/**
 * attempt_mv belongs to the maintainer: REFRESH needs ownership. A no-op while attempt_mv does not
 * exist (bootstrap may be blocked from creating it), so the roles never depend on it. It may be a
 * materialized view or, once incremental refresh converted it, a table.
 */
export function attemptMvOwnerSql(schema: string): string[] {
  const mv = qualified(schema, 'attempt_mv');
  const literal = `'${mv.replace(/'/g, "''")}'`;
  return [
    `DO $$ DECLARE kind "char" := (SELECT relkind FROM pg_class WHERE oid = to_regclass(${literal})); BEGIN
       IF kind IS NOT NULL THEN
         EXECUTE format('ALTER %s %s OWNER TO %I', CASE kind WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE 'TABLE' END, ${literal}, '${ROLES.maintainer}');
         EXECUTE format('GRANT SELECT ON %s TO %I', ${literal}, '${ROLES.monitor}');
       END IF; END $$`,
  ];
}

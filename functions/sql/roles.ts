/**
 * Least privilege in the database: three group roles (NOLOGIN), one per kind of job. A DBA grants
 * membership to the login users whose credentials the functions' secrets hold:
 *   GRANT attempt_ops_monitor TO health_check_login;
 * The names are fixed so the grants are reviewable; the schema and app role come validated.
 *
 * In attempt_ops no job role may write the audit (job_runs, metric_state, remediations) directly:
 * rows are written through the SECURITY DEFINER functions of functions/sql/audit.ts, which take
 * the writer from session_user and check that it may write that job. Table write rights would let
 * a login forge a refresh (mv_staleness reads it), rewrite other rows, or LOCK any attempt_ops
 * table (modes above ACCESS SHARE need only UPDATE, DELETE or TRUNCATE), e.g. the change log every
 * application write appends to. So the monitor and the maintainer get SELECT on what they read,
 * EXECUTE on their functions, and the maintainer writes only its own bookkeeping (attempt_mv_state,
 * the legacy-student map); the operator writes only its quarantine table.
 */
import { OPS_SCHEMA } from '../contract/vocabulary.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';
import { MAINTAINER_AUDIT_FUNCTIONS, MONITOR_AUDIT_FUNCTIONS, OPERATOR_AUDIT_FUNCTIONS } from './audit.ts';
import { CAPTURE_PRIVILEGES } from './incremental.ts';
import { EXAM_RESULTS_QUARANTINE, JOB_RUNS, METRIC_STATE, REMEDIATIONS } from './ops-schema.ts';

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

const QUARANTINE = qualified(OPS_SCHEMA, EXAM_RESULTS_QUARANTINE);
/** What the monitor and the maintainer read in attempt_ops (the operator inherits the maintainer's). */
const READABLE: readonly string[] = [JOB_RUNS, METRIC_STATE, ...CAPTURE_PRIVILEGES.readable];
const MAINTAINER_WRITABLE: readonly string[] = CAPTURE_PRIVILEGES.maintainerWritable;
const MONITOR_FUNCTIONS: readonly string[] = [...MONITOR_AUDIT_FUNCTIONS, ...CAPTURE_PRIVILEGES.monitorFunctions];
const MAINTAINER_FUNCTIONS: readonly string[] = [...MAINTAINER_AUDIT_FUNCTIONS, ...CAPTURE_PRIVILEGES.maintainerFunctions];
const OPERATOR_FUNCTIONS: readonly string[] = OPERATOR_AUDIT_FUNCTIONS;
/** The privileges that write, or that LOCK TABLE accepts for modes above ACCESS SHARE. */
const WRITE_PRIVILEGES = ['INSERT', 'UPDATE', 'DELETE', 'TRUNCATE', 'REFERENCES', 'TRIGGER'];

const lit = (s: string) => `'${s.replace(/'/g, "''")}'`;
const array = (items: readonly string[]) => `ARRAY[${items.map(lit).join(', ')}]::text[]`;

function createRole(name: string): string {
  // CREATE ROLE has no IF NOT EXISTS; two bootstraps at once must not fail either.
  return `DO $$ BEGIN CREATE ROLE ${quoteIdent(name)} NOLOGIN; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$`;
}

/**
 * A relation or function of attempt_ops may not exist yet (the capture, the quarantine are made
 * later), and may belong to a role this session cannot grant for (a quarantine table made by an
 * operator login): the grant runs only where it can.
 */
const grantable = (owner: string) => `pg_has_role(current_user, ${owner}, 'USAGE')`;
function onRelation(rel: string, sql: string): string {
  return `DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_class WHERE oid = to_regclass(${lit(rel)}) AND ${grantable('relowner')}) THEN EXECUTE ${lit(sql)}; END IF;
END $$`;
}
function onFunction(signature: string, sql: string): string {
  return `DO $$ BEGIN
  IF EXISTS (SELECT 1 FROM pg_proc WHERE oid = to_regprocedure(${lit(signature)}) AND ${grantable('proowner')}) THEN EXECUTE ${lit(sql)}; END IF;
END $$`;
}

/**
 * Earlier versions granted SELECT, INSERT, UPDATE on every attempt_ops table to the monitor and
 * the maintainer (and DELETE to the operator), and default privileges that gave the same on tables
 * made later. Revoked here, relation by relation (only those whose owner this session may act
 * for), before the grants below give back what each role needs; one transaction, so no job sees
 * the gap.
 */
function repairSql(): string[] {
  const roles = [ROLES.monitor, ROLES.maintainer, ROLES.operator];
  const to = roles.map(quoteIdent).join(', ');
  return [
    `DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT c.oid::regclass::text AS rel, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = ${lit(OPS_SCHEMA)} AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND ${grantable('c.relowner')}
              AND c.relowner NOT IN (SELECT oid FROM pg_roles WHERE rolname IN (${roles.map(lit).join(', ')})) LOOP
    EXECUTE format('REVOKE ALL ON %s %s FROM ${to}', CASE WHEN r.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, r.rel);
  END LOOP;
END $$`,
    `DO $$ DECLARE r record; BEGIN
  FOR r IN SELECT DISTINCT d.defaclrole::regrole::text AS owner FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace
            WHERE n.nspname = ${lit(OPS_SCHEMA)} AND ${grantable('d.defaclrole')} LOOP
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %I REVOKE ALL ON TABLES FROM ${to}', r.owner, ${lit(OPS_SCHEMA)});
    EXECUTE format('ALTER DEFAULT PRIVILEGES FOR ROLE %s IN SCHEMA %I REVOKE ALL ON SEQUENCES FROM ${to}', r.owner, ${lit(OPS_SCHEMA)});
  END LOOP;
END $$`,
  ];
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
    ...repairSql(),
    // Read what they read; write the audit only through its functions.
    ...READABLE.map((rel) => onRelation(rel, `GRANT SELECT ON ${rel} TO ${monitor}, ${maintainer}`)),
    ...MAINTAINER_WRITABLE.map((rel) => onRelation(rel, `GRANT SELECT, INSERT, UPDATE, DELETE ON ${rel} TO ${maintainer}`)),
    ...MONITOR_FUNCTIONS.map((f) => onFunction(f, `GRANT EXECUTE ON FUNCTION ${f} TO ${monitor}`)),
    ...MAINTAINER_FUNCTIONS.map((f) => onFunction(f, `GRANT EXECUTE ON FUNCTION ${f} TO ${maintainer}`)),
    ...OPERATOR_FUNCTIONS.map((f) => onFunction(f, `GRANT EXECUTE ON FUNCTION ${f} TO ${operator}`)),
    // The operator reads its audit and moves rows in and out of its quarantine; it creates that table on first use.
    onRelation(REMEDIATIONS, `GRANT SELECT ON ${REMEDIATIONS} TO ${operator}`),
    onRelation(QUARANTINE, `GRANT SELECT, INSERT, DELETE ON ${QUARANTINE} TO ${operator}`),
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
 * One boolean: are the grants of attempt_ops what rolesSql leaves? Every grant it would make where
 * it could make it is in place, and no job role holds a write privilege (or a default privilege)
 * in attempt_ops beyond those: a role set made by an earlier version (monitor with UPDATE on
 * job_runs, say) reads false, so bootstrap --roles repairs it. Assumes the three roles exist.
 */
export function opsGrantsReadySql(): string {
  const role = (r: string) => `(SELECT oid FROM pg_roles WHERE rolname = ${lit(r)})`;
  const relsWhere = (rels: readonly string[]) =>
    `SELECT c.oid FROM unnest(${array(rels)}) AS x(name) JOIN pg_class c ON c.oid = to_regclass(x.name) WHERE ${grantable('c.relowner')}`;
  const funcsWhere = (fns: readonly string[]) =>
    `SELECT p.oid FROM unnest(${array(fns)}) AS x(name) JOIN pg_proc p ON p.oid = to_regprocedure(x.name) WHERE ${grantable('p.proowner')}`;
  // has_table_privilege with a list is true when any one is held: each is asked on its own.
  const everyRel = (rels: readonly string[], r: string, privileges: string) =>
    `NOT EXISTS (SELECT 1 FROM (${relsWhere(rels)}) t, unnest(${array(privileges.split(', '))}) AS p(privilege)
                  WHERE NOT has_table_privilege(${role(r)}, t.oid, p.privilege))`;
  const everyFn = (fns: readonly string[], r: string) =>
    `NOT EXISTS (SELECT 1 FROM (${funcsWhere(fns)}) f WHERE NOT has_function_privilege(${role(r)}, f.oid, 'EXECUTE'))`;
  const allowedWrites = [
    ...MAINTAINER_WRITABLE.flatMap((rel) => ['INSERT', 'UPDATE', 'DELETE'].map((p) => `(${lit(ROLES.maintainer)}, ${lit(rel)}, ${lit(p)})`)),
    ...['INSERT', 'DELETE'].map((p) => `(${lit(ROLES.operator)}, ${lit(QUARANTINE)}, ${lit(p)})`),
  ].join(', ');
  const ours = `ARRAY[${[ROLES.monitor, ROLES.maintainer, ROLES.operator].map(role).join(', ')}]`;
  return `(
  ${everyRel(READABLE, ROLES.monitor, 'SELECT')}
  AND ${everyRel(READABLE, ROLES.maintainer, 'SELECT')}
  AND ${everyRel(MAINTAINER_WRITABLE, ROLES.maintainer, 'SELECT, INSERT, UPDATE, DELETE')}
  AND ${everyRel([QUARANTINE], ROLES.operator, 'SELECT, INSERT, DELETE')}
  AND ${everyRel([REMEDIATIONS], ROLES.operator, 'SELECT')}
  AND ${everyFn(MONITOR_FUNCTIONS, ROLES.monitor)}
  AND ${everyFn(MAINTAINER_FUNCTIONS, ROLES.maintainer)}
  AND ${everyFn(OPERATOR_FUNCTIONS, ROLES.operator)}
  AND NOT EXISTS (
    SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) a
     WHERE n.nspname = ${lit(OPS_SCHEMA)} AND ${grantable('c.relowner')}
       AND a.grantee = ANY (${ours}) AND a.grantee <> c.relowner AND a.privilege_type = ANY (${array(WRITE_PRIVILEGES)})
       AND (a.grantee::regrole::text, c.oid, a.privilege_type) NOT IN (
             SELECT v.r, to_regclass(v.rel), v.p FROM (VALUES ${allowedWrites}) AS v(r, rel, p) WHERE to_regclass(v.rel) IS NOT NULL))
  AND NOT EXISTS (
    SELECT 1 FROM pg_default_acl d JOIN pg_namespace n ON n.oid = d.defaclnamespace, aclexplode(d.defaclacl) a
     WHERE n.nspname = ${lit(OPS_SCHEMA)} AND ${grantable('d.defaclrole')} AND a.grantee = ANY (${ours}))
)`;
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

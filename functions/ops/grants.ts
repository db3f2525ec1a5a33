/**
 * Runbook section 2 in one catalog read: what the app role may do on the schema and the view's
 * relations, and what the view's owner may read (a view reads its tables with its owner's rights).
 */
import type { Queryable } from '../checks/types.ts';

/** The relations the app role reads: the base tables, the view, and its materialized copy. */
export const GRANT_RELATIONS = ['exam_results', 'questions', 'attempt', 'attempt_mv'] as const;
export type GrantRelation = (typeof GRANT_RELATIONS)[number];
/** The ones the view itself reads, so its owner needs SELECT on them. */
export const VIEW_BASE_TABLES: readonly GrantRelation[] = ['exam_results', 'questions'];

export interface RelationGrant {
  relation: GrantRelation;
  exists: boolean;
  /** has_table_privilege for the app role (through PUBLIC and memberships too); null without role or relation. */
  appSelect: boolean | null;
  /** The same for the view's owner, on the base tables only. */
  ownerSelect: boolean | null;
  /** Privileges granted to the app role by name, from the ACL. */
  explicitGrants: string[];
}

export interface GrantState {
  roleExists: boolean;
  canLogin: boolean | null;
  memberOf: string[];
  schemaUsage: boolean | null;
  viewOwner: string | null;
  relations: RelationGrant[];
}

/**
 * Catalog only, no table lock. Explicit grants come from the ACL: information_schema, which the
 * runbook reads, hides grants between roles the caller is not a member of.
 */
export async function readGrants(db: Queryable, schema: string, appRole: string): Promise<GrantState> {
  const { rows } = await db.query<{
    role_exists: boolean; can_login: boolean | null; member_of: string[] | null; usage: boolean | null; view_owner: string | null;
    relations: { relation: GrantRelation; exists: boolean; app_select: boolean | null; owner_select: boolean | null; explicit: string[] }[];
  }>(
    `WITH who AS (
       SELECT (SELECT oid FROM pg_roles WHERE rolname = $1) AS app,
              (SELECT c.relowner FROM pg_class c WHERE c.oid = to_regclass(format('%I.%I', $2::text, 'attempt')) AND c.relkind = 'v') AS owner),
     rel AS (SELECT r AS relation, ord, to_regclass(format('%I.%I', $2::text, r)) AS oid FROM unnest($3::text[]) WITH ORDINALITY AS t(r, ord))
     SELECT who.app IS NOT NULL AS role_exists,
            (SELECT rolcanlogin FROM pg_roles WHERE oid = who.app) AS can_login,
            (SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid WHERE m.member = who.app) AS member_of,
            CASE WHEN who.app IS NOT NULL AND EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $2)
                 THEN has_schema_privilege(who.app, (SELECT oid FROM pg_namespace WHERE nspname = $2), 'USAGE') END AS usage,
            pg_get_userbyid(who.owner)::text AS view_owner,
            (SELECT json_agg(json_build_object(
                      'relation', rel.relation, 'exists', rel.oid IS NOT NULL,
                      'app_select', CASE WHEN rel.oid IS NOT NULL AND who.app IS NOT NULL THEN has_table_privilege(who.app, rel.oid, 'SELECT') END,
                      'owner_select', CASE WHEN rel.oid IS NOT NULL AND who.owner IS NOT NULL AND rel.relation = ANY ($4::text[])
                                           THEN has_table_privilege(who.owner, rel.oid, 'SELECT') END,
                      'explicit', coalesce((SELECT array_agg(DISTINCT a.privilege_type ORDER BY a.privilege_type)
                                              FROM pg_class k, aclexplode(k.relacl) a WHERE k.oid = rel.oid AND a.grantee = who.app), '{}'))
                    ORDER BY rel.ord) FROM rel) AS relations
       FROM who`,
    [appRole, schema, GRANT_RELATIONS, VIEW_BASE_TABLES],
  );
  const r = rows[0]!;
  return {
    roleExists: r.role_exists,
    canLogin: r.can_login,
    memberOf: r.member_of ?? [],
    schemaUsage: r.usage,
    viewOwner: r.view_owner,
    relations: r.relations.map((x) => ({
      relation: x.relation, exists: x.exists, appSelect: x.app_select, ownerSelect: x.owner_select, explicitGrants: x.explicit ?? [],
    })),
  };
}

/**
 * The runbook's medium-term indexes (section 3), on the base tables. Its other two suggestions are
 * left out on purpose: an index on the view `attempt` cannot exist (a view has no storage; the
 * materialized copy attempt_mv carries that index), and its "Prevention" CHECK constraint with a
 * subquery is rejected by PostgreSQL (orphan_results watches for the same fault instead).
 */
import type { Queryable } from '../checks/types.ts';
import { qualified, quoteIdent } from '../db/identifiers.ts';

export interface RunbookIndex {
  name: string;
  table: 'exam_results' | 'questions';
  /** Column list and predicate, as the runbook writes them. */
  definition: string;
  why: string;
}

export const RUNBOOK_INDEXES: readonly RunbookIndex[] = [
  {
    name: 'idx_exam_results_student_completed',
    table: 'exam_results',
    definition: "(student_id, completed_at) WHERE (result_json->>'questionId') IS NOT NULL",
    why: "one student's results by time: section 3's query",
  },
  { name: 'idx_questions_item_id', table: 'questions', definition: '(item_id)', why: 'questions by item_id' },
];

/**
 * CONCURRENTLY: writers keep writing while it builds. IF NOT EXISTS: a second run does nothing.
 * An index always lives in its table's schema, so its own name takes no schema.
 */
export function createIndexSql(schema: string, index: RunbookIndex): string {
  return `CREATE INDEX CONCURRENTLY IF NOT EXISTS ${quoteIdent(index.name)} ON ${qualified(schema, index.table)} ${index.definition}`;
}

export function dropIndexSql(schema: string, index: RunbookIndex): string {
  return `DROP INDEX CONCURRENTLY IF EXISTS ${qualified(schema, index.name)}`;
}

export interface IndexState {
  index: RunbookIndex;
  /** schema.name, for people. */
  relation: string;
  tableExists: boolean;
  /** relkind of whatever holds the name: 'i' for an index, null when the name is free. */
  kind: string | null;
  /** The index is on the runbook's table. */
  onTable: boolean;
  valid: boolean;
  definition: string | null;
}

/** Catalog reads only: no lock on the tables. */
export async function readIndexes(db: Queryable, schema: string): Promise<IndexState[]> {
  const { rows } = await db.query<{ name: string; table_exists: boolean; kind: string | null; on_table: boolean | null; valid: boolean | null; def: string | null }>(
    `SELECT t.name, to_regclass(t.tbl) IS NOT NULL AS table_exists, c.relkind::text AS kind,
            i.indrelid = to_regclass(t.tbl) AS on_table, i.indisvalid AND i.indisready AS valid,
            CASE WHEN c.relkind = 'i' THEN pg_get_indexdef(c.oid) END AS def
       FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS t(name, idx, tbl, ord)
       LEFT JOIN pg_class c ON c.oid = to_regclass(t.idx)
       LEFT JOIN pg_index i ON i.indexrelid = c.oid
      ORDER BY t.ord`,
    [
      RUNBOOK_INDEXES.map((i) => i.name),
      RUNBOOK_INDEXES.map((i) => qualified(schema, i.name)),
      RUNBOOK_INDEXES.map((i) => qualified(schema, i.table)),
    ],
  );
  return RUNBOOK_INDEXES.map((index, n) => {
    const r = rows[n]!;
    return {
      index,
      relation: `${schema}.${index.name}`,
      tableExists: r.table_exists,
      kind: r.kind,
      onTable: r.on_table === true,
      valid: r.valid === true,
      definition: r.def,
    };
  });
}

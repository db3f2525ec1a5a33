/**
 * Runbook section 3 says what to look for in the plan of its query: a sequential scan on
 * exam_results, an expensive hash join, excessive planning time; and a sort that spills to disk is
 * the window function (attempt_no) sorting the whole join in temporary files. This names each sign
 * found in an `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` answer.
 */

/** Runbook section 3: "Planning Time > 10ms (excessive)". */
export const PLANNING_TIME_LIMIT_MS = 10;
/** Runbook section 3: "Hash Join cost > 10000 (slow)". */
export const HASH_JOIN_COST_LIMIT = 10_000;

export type PlanSignKind = 'seq_scan_exam_results' | 'sort_spill' | 'expensive_hash_join' | 'slow_planning';

export interface PlanSign {
  kind: PlanSignKind;
  message: string;
  /** The plan node's own numbers, as EXPLAIN reported them. */
  node?: Record<string, unknown>;
}

export interface PlanSummary {
  planningMs: number | null;
  executionMs: number | null;
  /** Temporary blocks written by the whole plan: a spill of any kind. */
  tempWrittenBlocks: number;
  signs: PlanSign[];
}

type PlanNode = Record<string, unknown> & { Plans?: PlanNode[] };

function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

function pick(node: PlanNode, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (node[k] !== undefined) out[k] = node[k];
  return out;
}

function* walk(node: PlanNode): Generator<PlanNode> {
  yield node;
  for (const child of node.Plans ?? []) yield* walk(child);
}

/** The first element of EXPLAIN's FORMAT JSON array (or the array pg hands back parsed). */
export function summarizePlan(explain: unknown): PlanSummary {
  const top = (Array.isArray(explain) ? explain[0] : explain) as Record<string, unknown> | undefined;
  const root = top?.Plan as PlanNode | undefined;
  const planningMs = num(top?.['Planning Time']);
  const executionMs = num(top?.['Execution Time']);
  const signs: PlanSign[] = [];
  let tempWrittenBlocks = 0;
  if (root) {
    for (const node of walk(root)) {
      const type = node['Node Type'];
      if (type === 'Seq Scan' && node['Relation Name'] === 'exam_results') {
        signs.push({
          kind: 'seq_scan_exam_results',
          message: `Seq Scan on exam_results${node['Actual Rows'] !== undefined ? ` (${node['Actual Rows']} rows read)` : ''}: no index serves the query`,
          node: pick(node, ['Relation Name', 'Schema', 'Alias', 'Actual Rows', 'Actual Loops', 'Total Cost', 'Filter', 'Rows Removed by Filter']),
        });
      }
      const method = typeof node['Sort Method'] === 'string' ? (node['Sort Method'] as string) : '';
      if (type === 'Sort' || type === 'Incremental Sort') {
        if (node['Sort Space Type'] === 'Disk' || /external/i.test(method)) {
          signs.push({
            kind: 'sort_spill',
            message: `Sort spilled to disk (Sort Method: ${method || 'external'}, ${node['Sort Space Used'] ?? '?'} kB): work_mem is too small for the whole join`,
            node: pick(node, ['Sort Key', 'Sort Method', 'Sort Space Used', 'Sort Space Type', 'Actual Rows']),
          });
        }
      }
      const cost = num(node['Total Cost']);
      if (type === 'Hash Join' && cost !== null && cost > HASH_JOIN_COST_LIMIT) {
        signs.push({
          kind: 'expensive_hash_join',
          message: `Hash Join cost ${cost} > ${HASH_JOIN_COST_LIMIT}`,
          node: pick(node, ['Hash Cond', 'Total Cost', 'Actual Rows']),
        });
      }
    }
    // A node's buffer counts include its children's: the root's is the whole plan's.
    tempWrittenBlocks = num(root['Temp Written Blocks']) ?? 0;
  }
  if (planningMs !== null && planningMs > PLANNING_TIME_LIMIT_MS) {
    signs.push({ kind: 'slow_planning', message: `Planning Time ${planningMs.toFixed(1)} ms > ${PLANNING_TIME_LIMIT_MS} ms` });
  }
  return { planningMs, executionMs, tempWrittenBlocks, signs };
}

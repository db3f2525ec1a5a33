import { CHECK_SPECS, V1_COLUMNS } from '../contract/index.ts';
import { qualified } from '../db/identifiers.ts';
import type { HealthCheck } from './types.ts';

interface Column {
  name: string;
  type: string;
}

/** Positions that differ from the V1 lock: a change at one position counts once. */
export function schemaDrift(actual: readonly Column[]): { count: number; differences: unknown[] } {
  const differences: unknown[] = [];
  const length = Math.max(actual.length, V1_COLUMNS.length);
  for (let i = 0; i < length; i++) {
    const want = V1_COLUMNS[i];
    const got = actual[i];
    if (want && !got) differences.push({ position: i + 1, expected: want, actual: null, change: 'missing' });
    else if (!want && got) differences.push({ position: i + 1, expected: null, actual: got, change: 'added' });
    else if (want && got && (want.name !== got.name || want.type !== got.type)) {
      const change = want.name !== got.name ? (V1_COLUMNS.some((c) => c.name === got.name) ? 'reordered' : 'renamed') : 'retyped';
      differences.push({ position: i + 1, expected: want, actual: got, change });
    }
  }
  return { count: differences.length, differences };
}

/** The V1 schema lock: the psychometrics pipeline reads these 13 columns by position and type. */
export const viewSchema: HealthCheck = {
  spec: CHECK_SPECS.view_schema,
  async measure({ db, schema, facts }) {
    if (facts.attemptKind === null) {
      return { value: null, status: 'skipped', message: `view ${schema}.attempt does not exist (see view_exists)` };
    }
    const { rows } = await db.query<{ name: string; type: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type
         FROM pg_attribute a
        WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [qualified(schema, 'attempt')],
    );
    const { count, differences } = schemaDrift(rows);
    return {
      value: count,
      message: count === 0 ? 'view matches the V1 schema lock' : `view differs from the V1 schema lock at ${count} column position(s)`,
      details: differences,
    };
  },
};

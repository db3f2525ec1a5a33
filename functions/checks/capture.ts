import { CHECK_SPECS } from '../contract/index.ts';
import type { HealthCheck } from './types.ts';

/** Problems that mean "no capture here by choice or by age", not "the capture broke". */
const NOT_THERE = new Set(['not_installed', 'turned_off']);

/**
 * The change capture as the database itself reports it (attempt_ops.capture_status,
 * functions/sql/capture.ts): every watched table and partition carrying its four triggers, enabled
 * always (so they fire in replica mode too), the capture function reading columns that still
 * exist by the names they have now, the DDL watcher in place, and no DDL on a watched table since
 * the copy was last rebuilt. Each problem counts one.
 */
export const capture: HealthCheck = {
  spec: CHECK_SPECS.capture,
  async measure({ db, schema }) {
    const { rows: present } = await db.query<{ ok: boolean }>(`SELECT to_regprocedure('attempt_ops.capture_status(text)') IS NOT NULL AS ok`);
    if (!present[0]?.ok) {
      return { value: null, status: 'skipped', message: 'the change capture is not installed (attempt-ops bootstrap --apply installs it): data-quality scope falls back to recent rows' };
    }
    const { rows } = await db.query<{ problem: string; detail: string }>(`SELECT problem, detail FROM attempt_ops.capture_status($1)`, [schema]);
    const absent = rows.find((r) => NOT_THERE.has(r.problem));
    if (absent) return { value: null, status: 'skipped', message: `${absent.detail}: data-quality scope falls back to recent rows` };
    if (rows.length === 0) return { value: 0, message: `the change capture on ${schema} is complete and firing always`, details: [] };
    return {
      value: rows.length,
      message: `${rows.length} capture problem(s): ${rows.map((r) => r.detail).join('; ')}`,
      details: rows.map((r) => ({ problem: r.problem, detail: r.detail })),
    };
  },
};

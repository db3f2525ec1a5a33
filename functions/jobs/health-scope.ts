/**
 * The health check's incremental scope from the change capture (functions/sql/capture.ts): the
 * rows changed since the last run that measured them, however old, instead of "rows completed
 * lately". The check reads the log (capture_peek) without moving its cursor; the cursor moves
 * (capture_advance) only after every data-quality check measured, so a check that came back
 * unknown leaves its rows for the next run.
 */
import type { ChangeScope } from '../checks/types.ts';
import { classifyDbError, oneLine } from '../db/errors.ts';
import type { JobDeps } from './deps.ts';
import { OPEN_FINDING_STUDENTS_SQL } from '../sql/findings.ts';

export const HEALTH_CONSUMER = 'health-check';

/** Past this many changed students in one run, the list is no longer a cheap filter: read recent rows. */
export const MAX_SCOPE_STUDENTS = 50_000;

export interface CaptureScope {
  /** The changed rows, or null: the checks fall back to recent rows (`fallback` says why). */
  changes: ChangeScope | null;
  /** The snapshot the log was read in: where the cursor moves once every data-quality check measured. */
  snapshot: string | null;
  fallback: string | null;
}

/** Problems that do not make the log untrustworthy for the health check. */
const HARMLESS = new Set(['ddl_since_rebuild', 'consumer_stale', 'ddl_watcher']);

/** register: a first run registers the cursor (a dry run does not, and reads recent rows). */
export async function captureScope(deps: JobDeps, register = true): Promise<CaptureScope> {
  const none = (fallback: string, snapshot: string | null = null): CaptureScope => ({ changes: null, snapshot, fallback });
  try {
    const { rows: present } = await deps.pool.query<{ ok: boolean; registered: boolean }>(
      `SELECT to_regprocedure('attempt_ops.capture_peek(text, text)') IS NOT NULL AS ok,
              to_regclass('attempt_ops.capture_cursors') IS NOT NULL
                AND EXISTS (SELECT 1 FROM attempt_ops.capture_cursors WHERE consumer = $1 AND source_schema = $2) AS registered`,
      [HEALTH_CONSUMER, deps.schema],
    );
    if (!present[0]?.ok) return none('the change capture is not installed (bootstrap --apply installs it)');
    const { rows: problems } = await deps.pool.query<{ problem: string; detail: string }>('SELECT problem, detail FROM attempt_ops.capture_status($1)', [deps.schema]);
    const off = problems.find((p) => p.problem === 'turned_off' || p.problem === 'not_installed');
    if (off) return none(off.detail);
    const broken = problems.filter((p) => !HARMLESS.has(p.problem));
    if (broken.length > 0) return none(`the change capture cannot be trusted (${broken.map((p) => p.detail).join('; ')})`);
    if (!present[0].registered) {
      if (!register) return none('no run has read the change log yet');
      // From now on every change is read; what came before, this run reads as recent rows.
      await deps.pool.query('SELECT attempt_ops.capture_register($1, $2)', [HEALTH_CONSUMER, deps.schema]);
      return none('the first run with the change capture');
    }
    const { rows } = await deps.pool.query<{
      snapshot: string; students: string[]; null_student: boolean; question_ids: number[]; full_rebuild: boolean; reasons: string | null; batches: number;
    }>('SELECT * FROM attempt_ops.capture_peek($1, $2)', [HEALTH_CONSUMER, deps.schema]);
    const r = rows[0]!;
    if (r.full_rebuild) return none(`the change log asks for a full re-read (${r.reasons ?? 'a TRUNCATE or DDL'}): the daily full run reads every row`, r.snapshot);
    if (r.students.length > MAX_SCOPE_STUDENTS) return none(`${r.students.length} students changed, more than ${MAX_SCOPE_STUDENTS}`, r.snapshot);
    // The open findings' rows are re-read too: a defect stays counted until a run finds it fixed.
    const { rows: open } = await deps.pool.query<{ students: string[]; null_student: boolean | null }>(OPEN_FINDING_STUDENTS_SQL, [deps.schema]);
    const students = [...new Set([...r.students, ...(open[0]?.students ?? [])])];
    return {
      changes: { students, nullStudent: r.null_student || open[0]?.null_student === true, questionIds: r.question_ids, batches: r.batches },
      snapshot: r.snapshot,
      fallback: null,
    };
  } catch (err) {
    const e = classifyDbError(err, 'reading the change log');
    if (e.kind === 'connection' || e.kind === 'authentication') throw e;
    // A role without the capture's grants still gets its checks, over recent rows.
    return none(`the change log cannot be read (${oneLine(e)})`);
  }
}

/** Moves the cursor past what this run measured, and prunes what every consumer has passed. */
export async function advanceScope(deps: JobDeps, snapshot: string): Promise<string | null> {
  try {
    await deps.pool.query('SELECT attempt_ops.capture_advance($1, $2, $3)', [HEALTH_CONSUMER, deps.schema, snapshot]);
    await deps.pool.query('SELECT attempt_ops.capture_prune($1)', [deps.schema]);
    return null;
  } catch (err) {
    return `could not move the change-log cursor (${oneLine(classifyDbError(err))}): the next run reads these rows again`;
  }
}

/** The students of every open finding: a run that reads recent rows re-reads theirs too. */
export async function openFindingStudents(deps: JobDeps): Promise<{ students: string[]; nullStudent: boolean }> {
  const { rows } = await deps.pool.query<{ students: string[]; null_student: boolean | null }>(OPEN_FINDING_STUDENTS_SQL, [deps.schema]);
  return { students: rows[0]?.students ?? [], nullStudent: rows[0]?.null_student === true };
}

/** Does this database keep open findings (bootstrap installed the capture, and with it the table)? */
export async function findingsKept(deps: JobDeps): Promise<boolean> {
  const { rows } = await deps.pool.query<{ ok: boolean }>(
    `SELECT to_regprocedure('attempt_ops.findings_merge(text, text, boolean, text[], boolean, jsonb)') IS NOT NULL AS ok`,
  ).catch((err) => {
    throw classifyDbError(err);
  });
  return rows[0]?.ok === true;
}

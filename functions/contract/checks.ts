/**
 * What each health check is (CONTRACT.md section 3): severity, runbook section, metric and the
 * threshold it fails past, read off the signal that carries its value (signals.ts). The checks in
 * functions/checks/ take their spec from here.
 */
import { CHECK_LIMITS, LEVEL_THRESHOLDS, SIGNALS, signalOf, type MetricName, type SignalLevel, type SignalSpec } from './signals.ts';
import { CHECK_NAMES, type CheckName, type RunbookAnchor, type Severity } from './vocabulary.ts';

/** Every level's threshold by name, and the checks' own limits (wait times, minimum rows). */
export const THRESHOLDS = { ...CHECK_LIMITS, ...LEVEL_THRESHOLDS } as const;

export interface CheckSpec {
  readonly name: CheckName;
  /** The severity of the check's first (most severe) level. */
  readonly severity: Severity;
  readonly runbook: RunbookAnchor;
  /** The metric that carries the check's value. */
  readonly metric: MetricName;
  /** Other metrics the check emits. */
  readonly extraMetrics?: readonly MetricName[];
  /** The check fails when value > threshold (or < threshold for view_exists): its first level. */
  readonly threshold: number;
  readonly comparison: 'greater' | 'less';
  readonly summary: string;
  /** Every level of its signal, most severe first: what judge() reads. */
  readonly levels: readonly SignalLevel[];
}

function checkSpecOf(name: CheckName): CheckSpec {
  const signal = signalOf(name);
  const [first] = signal.levels ?? [];
  if (!signal.check || !signal.runbook || !first || first.comparison === 'atMost') {
    throw new Error(`signal ${signal.metric} of check ${name} needs a summary, a runbook section and a greater or less level`);
  }
  const extra = (SIGNALS as readonly SignalSpec[]).filter((s) => s.alsoFrom === name).map((s) => s.metric as MetricName);
  return {
    name,
    severity: first.severity,
    runbook: signal.runbook,
    metric: signal.metric as MetricName,
    ...(extra.length > 0 ? { extraMetrics: extra } : {}),
    threshold: first.threshold,
    comparison: first.comparison,
    summary: signal.check.summary,
    levels: signal.levels ?? [],
  };
}

export const CHECK_SPECS = Object.fromEntries(CHECK_NAMES.map((name) => [name, checkSpecOf(name)])) as Readonly<Record<CheckName, CheckSpec>>;

/** The V1 schema lock: the view's columns, in order, with format_type() names. */
export const V1_COLUMNS: readonly { readonly name: string; readonly type: string }[] = [
  { name: 'id', type: 'bigint' },
  { name: 'exam_result_id', type: 'bigint' },
  { name: 'student_id', type: 'uuid' },
  { name: 'item_id', type: 'integer' },
  { name: 'question_id', type: 'integer' },
  { name: 'question_text', type: 'text' },
  { name: 'correct_answer', type: 'text' },
  { name: 'student_answer', type: 'text' },
  { name: 'is_correct', type: 'integer' },
  { name: 'response_time_ms', type: 'integer' },
  { name: 'completed_at', type: 'timestamp with time zone' },
  { name: 'attempt_no', type: 'bigint' },
  { name: 'tags', type: 'text[]' },
];

export const REQUIRED_COLUMNS = ['id', 'student_id', 'item_id', 'question_id', 'is_correct'] as const;

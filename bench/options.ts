/** `npm run bench -- [--rows N] [--reps N] [--keep] [--out FILE]`, validated before anything starts. */
import { ConfigError } from '../functions/db/errors.ts';

export interface BenchOptions {
  rows: number;
  /** Repetitions of the fast measurements. */
  reps: number;
  /** Repetitions of the ones that take seconds each (whole-view queries, full refreshes). */
  slowReps: number;
  /** Leave the database for inspection: the embedded server runs until Ctrl-C; a DATABASE_URL database is not dropped. */
  keep: boolean;
  /** Where the markdown goes; the repository's BENCHMARKS.md by default. */
  out: string | null;
  help: boolean;
}

export const DEFAULT_ROWS = 1_000_000;
export const DEFAULT_REPS = 5;
/** A whole-view query or a CONCURRENTLY refresh at 2M rows takes up to a minute: three are enough for a median. */
export const MAX_SLOW_REPS = 3;
export const MIN_ROWS = 1_000;

export const USAGE = `usage: npm run bench -- [--rows N] [--reps N] [--keep] [--out FILE]

  --rows N    exam_results rows to generate, a whole number >= ${MIN_ROWS} (default ${DEFAULT_ROWS.toLocaleString('en-US')})
  --reps N    repetitions per measurement (default ${DEFAULT_REPS}; the slow ones use at most ${MAX_SLOW_REPS})
  --keep      leave the database afterwards (embedded: keep it running until Ctrl-C)
  --out FILE  write the report there instead of BENCHMARKS.md

DATABASE_URL set: a fresh database attempt_bench_<random> is created on that server and dropped
at the end. Unset: an embedded PostgreSQL is started and stopped.`;

function wholeNumber(flag: string, raw: string | undefined, min: number): number {
  // Underscores and commas are accepted because "2_000_000" is how people type big row counts.
  const text = raw?.replace(/[_,]/g, '');
  if (!text || !/^\d+$/.test(text)) throw new ConfigError(`${flag} needs a whole number, got ${raw === undefined ? 'nothing' : JSON.stringify(raw)}`);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min) throw new ConfigError(`${flag} must be a whole number >= ${min.toLocaleString('en-US')}, got ${raw}`);
  return n;
}

export function parseBenchArgs(argv: readonly string[]): BenchOptions {
  const o: BenchOptions = { rows: DEFAULT_ROWS, reps: DEFAULT_REPS, slowReps: MAX_SLOW_REPS, keep: false, out: null, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => inline ?? argv[++i];
    switch (flag) {
      case '--rows':
        o.rows = wholeNumber('--rows', value(), MIN_ROWS);
        break;
      case '--reps':
        o.reps = wholeNumber('--reps', value(), 1);
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--out': {
        const v = value();
        if (!v) throw new ConfigError('--out needs a file name');
        o.out = v;
        break;
      }
      case '--help':
      case '-h':
        o.help = true;
        break;
      default:
        throw new ConfigError(`unknown argument ${JSON.stringify(arg)} (see --help)`);
    }
  }
  o.slowReps = Math.min(o.reps, MAX_SLOW_REPS);
  return o;
}

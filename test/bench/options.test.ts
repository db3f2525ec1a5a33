import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../functions/db/errors.ts';
import { DEFAULT_REPS, DEFAULT_ROWS, MAX_SLOW_REPS, parseBenchArgs } from '../../bench/options.ts';

describe('bench arguments', () => {
  it('defaults to a million rows and five repetitions, three for the slow measurements', () => {
    // Act
    const o = parseBenchArgs([]);
    // Assess
    expect(o).toEqual({ rows: DEFAULT_ROWS, reps: DEFAULT_REPS, slowReps: MAX_SLOW_REPS, keep: false, out: null, help: false });
  });

  it('reads --rows and --reps in both spellings, with digit separators, and caps the slow repetitions', () => {
    // Act
    const a = parseBenchArgs(['--rows', '2_000_000', '--reps=7', '--keep', '--out', 'x.md']);
    const b = parseBenchArgs(['--rows=1,000', '--reps', '2']);
    // Assess
    expect(a).toMatchObject({ rows: 2_000_000, reps: 7, slowReps: MAX_SLOW_REPS, keep: true, out: 'x.md' });
    expect(b).toMatchObject({ rows: 1000, reps: 2, slowReps: 2 });
  });

  it.each([
    [['--rows', '999'], /--rows must be a whole number >= 1,000, got 999/],
    [['--rows', '1.5e6'], /--rows needs a whole number, got "1.5e6"/],
    [['--rows', '-5000'], /--rows needs a whole number, got "-5000"/],
    [['--rows'], /--rows needs a whole number, got nothing/],
    [['--reps', '0'], /--reps must be a whole number >= 1, got 0/],
    [['--out'], /--out needs a file name/],
    [['--row', '5000'], /unknown argument "--row"/],
  ])('rejects %j before anything starts', (argv, message) => {
    // Act
    const act = () => parseBenchArgs(argv);
    // Assess
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(message);
  });
});

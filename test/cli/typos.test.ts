/** `--version`, each command's `--help` and "did you mean", on the real binary in a child process (what a user's shell sees). */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { closest } from '../../functions/cli/suggest.ts';
import { CHECK_NAMES, FIXES, INCIDENTS } from '../../functions/contract/index.ts';

const exec = promisify(execFile);
const BIN = 'bin/attempt-ops.js';

async function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await exec(process.execPath, [BIN, ...args], { env: { ...process.env, NO_COLOR: '1', DATABASE_URL: '' } });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('the command line helps with typos', () => {
  it('--version prints the package version and exits 0', async () => {
    const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
    expect(await run(['--version'])).toEqual({ code: 0, stdout: `attempt-ops ${version}\n`, stderr: '' });
  });

  it.each([
    ['check', CHECK_NAMES],
    ['diagnose', INCIDENTS],
    ['remediate', FIXES],
  ] as const)('%s --help lists every choice with its line', async (command, names) => {
    const r = await run([command, '--help']);
    expect(r.code).toBe(0);
    for (const n of names) expect(r.stdout).toMatch(new RegExp(`^  ${n} +\\S`, 'm'));
  });

  it.each([
    [['chek'], 'unknown command "chek" (did you mean check?)'],
    [['check', '--jsn'], "check: Unknown option '--jsn' (did you mean --json?)"],
    [['check', '--only', 'view_exits'], '--only: unknown name view_exits (did you mean view_exists?)'],
    [['refresh', '--mode', 'incremantal'], '--mode must be one of concurrent, full, incremental (did you mean incremental?)'],
    [['diagnose', 'data-qualty'], 'diagnose: unknown incident "data-qualty" (did you mean data-quality?)'],
    [['remediate', 'grant-selct'], 'remediate: unknown fix "grant-selct" (did you mean grant-select?)'],
  ])('%j: exit 3, one line that names the nearest choice', async (args, line) => {
    const r = await run(args);
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
    expect(r.stderr.split('\n').filter(Boolean)).toHaveLength(1);
    expect(r.stderr).toContain(`attempt-ops: ${line}`);
  });

  it('suggests nothing for a name that is no near miss', () => {
    expect(closest('nope', ['view_exists', 'capture'])).toBeUndefined();
    expect(closest('xy', ['check'])).toBeUndefined();
    expect(closest('chekc', ['check', 'metrics'])).toBe('check');
  });
});

/** Runs the CLI in-process, as `npx attempt-ops` would, capturing what it prints and its exit code. */
import type { CliIo } from '../../functions/cli/io.ts';
import { main } from '../../functions/cli/main.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = { stdout: (t) => void (stdout += t), stderr: (t) => void (stderr += t), env, color: false };
  const code = await main(args, io);
  return { code, stdout, stderr };
}

/** The CLI's outside world, injectable so tests run commands in-process. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  /** Colour the human output (a TTY without NO_COLOR). */
  color: boolean;
}

export function processIo(): CliIo {
  const color = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;
  return {
    stdout: (t) => process.stdout.write(t),
    stderr: (t) => process.stderr.write(t),
    env: process.env,
    color: process.env.FORCE_COLOR ? process.env.FORCE_COLOR !== '0' : color,
  };
}

import os from 'node:os';
import { EXIT_CODES, FIXES, type RemediateReport } from '../../contract/index.ts';
import { ConfigError } from '../../db/errors.ts';
import { executeJob } from '../../jobs/execute.ts';
import { runRemediation } from '../../jobs/remediate.ts';
import type { Command } from '../command.ts';
import { renderRemediateReport } from '../render.ts';
import { openSession } from '../session.ts';
import { didYouMean } from '../suggest.ts';

/** Who runs the CLI, for the audit row: the OS user (current_user is recorded beside it). */
export function cliInvoker(env: NodeJS.ProcessEnv): string {
  let user: string | undefined;
  try {
    user = os.userInfo().username;
  } catch {
    // A container user without a passwd entry: fall back to what the shell says.
    user = env.USER ?? env.LOGNAME;
  }
  return `${user || 'unknown'}@${os.hostname()}`;
}

/** 0 when a dry run could apply as planned, or an apply was verified ok; 2 otherwise. */
export function remediateExitCode(report: RemediateReport): number {
  return report.status === 'ok' ? EXIT_CODES.ok : EXIT_CODES.critical;
}

export const remediate: Command = {
  name: 'remediate',
  usage: 'remediate <fix> [--apply] [--restore [--batch ID]] [--json]',
  summary: 'a runbook fix: dry run unless --apply',
  options: { apply: { type: 'boolean' }, restore: { type: 'boolean' }, batch: { type: 'string' } },
  positionals: 1,
  async run({ global, values, positionals, io }) {
    const fix = FIXES.find((f) => f === positionals[0]);
    if (!fix) throw new ConfigError(`remediate: unknown fix ${JSON.stringify(positionals[0])}${didYouMean(String(positionals[0]), FIXES)} (fixes: ${FIXES.join(', ')})`);
    const apply = values.apply === true;
    const restore = values.restore === true;
    const batch = values.batch as string | undefined;
    if (restore && fix !== 'quarantine-duplicates') throw new ConfigError(`remediate: --restore applies only to quarantine-duplicates`);
    if (batch !== undefined && !restore) throw new ConfigError('remediate: --batch needs --restore');
    const session = openSession('ops', global, io);
    try {
      const { report } = await executeJob({
        job: 'ops', target: global.target, sink: session.sink, dryRun: !apply, log: session.log,
        run: () => runRemediation(session.deps, { fix, apply, restore, batch, invokedBy: cliInvoker(io.env) }),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderRemediateReport(report, io.color));
      return remediateExitCode(report);
    } finally {
      await session.close();
    }
  },
};

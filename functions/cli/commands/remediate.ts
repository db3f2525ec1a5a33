import os from 'node:os';
import { EXIT_CODES, FIXES, type Fix, type RemediateReport } from '../../contract/index.ts';
import { ConfigError } from '../../db/errors.ts';
import { executeJob } from '../../jobs/execute.ts';
import { runRemediation } from '../../jobs/remediate.ts';
import { choices, type Command } from '../command.ts';
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

/** One line per fix, for --help. */
const FIX_LINES: Record<Fix, string> = {
  'recreate-view': 'recreate the V1 view attempt (runbook 1)',
  'grant-select': 'grant the app role SELECT on the view and its tables (runbook 2)',
  analyze: 'ANALYZE the watched tables whose statistics are stale (runbook 3)',
  'cancel-long-running': 'cancel queries on the watched relations running past 5 minutes (runbook 3)',
  'quarantine-duplicates': 'move surplus duplicated source rows aside; --restore [--batch ID] puts them back (runbook 5)',
  'create-indexes': "create runbook section 3's indexes, CONCURRENTLY (runbook 3)",
};

export const remediate: Command = {
  name: 'remediate',
  usage: 'remediate <fix> [--apply] [--restore [--batch ID]] [--json]',
  summary: 'a runbook fix: dry run unless --apply',
  options: { apply: { type: 'boolean' }, restore: { type: 'boolean' }, batch: { type: 'string' } },
  help: () => [...choices('fixes', FIXES.map((f) => [f, FIX_LINES[f]] as const)), '', 'A dry run shows the SQL; --apply runs it, verifies, and records it in attempt_ops.'],
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

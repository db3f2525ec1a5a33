import { CHECK_NAMES, CHECK_SPECS, ENV, EXIT_CODES } from '../../contract/index.ts';
import { executeJob } from '../../jobs/execute.ts';
import { runHealthCheck } from '../../jobs/health-check.ts';
import { choices, type Command } from '../command.ts';
import { listOption } from '../options.ts';
import { renderHealthReport } from '../render.ts';
import { openSession } from '../session.ts';

export const check: Command = {
  name: 'check',
  usage: 'check [--only a,b] [--full] [--json]',
  summary: 'run the health checks',
  options: { only: { type: 'string' }, full: { type: 'boolean' } },
  help: () => [
    ...choices('checks (--only a,b)', CHECK_NAMES.map((n) => [n, `${CHECK_SPECS[n].severity}  ${CHECK_SPECS[n].summary}`] as const)),
    '',
    '--full reads every row (the daily run); without it the data-quality checks read what changed since the last run.',
  ],
  async run({ global, values, io }) {
    const only = listOption(values.only as string | undefined, '--only', CHECK_NAMES);
    const session = openSession('health-check', global, io);
    try {
      const { report } = await executeJob({
        job: 'health-check', target: global.target, sink: session.sink, dryRun: false, log: session.log,
        run: () => runHealthCheck(session.deps, { checks: only, scope: values.full ? 'full' : 'incremental' }),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderHealthReport(report, io.color, runbookBase(io.env)));
      return EXIT_CODES[report.status];
    } finally {
      await session.close();
    }
  },
};

/** Where the runbook anchors point in human output: the configured URL, else the shipped copy. */
export function runbookBase(env: NodeJS.ProcessEnv): string {
  return env[ENV.runbookUrl] ?? 'docs/RUNBOOK.md';
}


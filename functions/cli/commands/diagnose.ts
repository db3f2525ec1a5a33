import { EXIT_CODES, INCIDENTS } from '../../contract/index.ts';
import { ConfigError } from '../../db/errors.ts';
import { runDiagnose } from '../../jobs/diagnose.ts';
import { executeJob } from '../../jobs/execute.ts';
import type { Command } from '../command.ts';
import { renderDiagnoseReport } from '../render.ts';
import { openSession } from '../session.ts';
import { runbookBase } from './check.ts';
import { didYouMean } from '../suggest.ts';

export const diagnose: Command = {
  name: 'diagnose',
  usage: 'diagnose <incident> [--json]',
  summary: 'runbook diagnosis of one incident, read-only',
  options: {},
  positionals: 1,
  async run({ global, positionals, io }) {
    const incident = INCIDENTS.find((i) => i === positionals[0]);
    if (!incident) throw new ConfigError(`diagnose: unknown incident ${JSON.stringify(positionals[0])}${didYouMean(String(positionals[0]), INCIDENTS)} (incidents: ${INCIDENTS.join(', ')})`);
    const session = openSession('ops', global, io);
    try {
      // A diagnosis changes nothing and publishes nothing, like a dry run.
      const { report } = await executeJob({
        job: 'ops', target: global.target, sink: session.sink, dryRun: true, log: session.log,
        run: () => runDiagnose(session.deps, { incident }),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderDiagnoseReport(report, io.color, runbookBase(io.env)));
      return EXIT_CODES[report.status];
    } finally {
      await session.close();
    }
  },
};

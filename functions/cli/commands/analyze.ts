import { ANALYZE_TABLES, EXIT_CODES } from '../../contract/index.ts';
import { runAnalyze } from '../../jobs/analyze.ts';
import { executeJob } from '../../jobs/execute.ts';
import type { Command } from '../command.ts';
import { listOption } from '../options.ts';
import { renderActionsReport } from '../render.ts';
import { openSession } from '../session.ts';

export const analyze: Command = {
  name: 'analyze',
  usage: 'analyze [--tables t1,t2] [--force] [--dry-run] [--json]',
  summary: 'ANALYZE the tables whose statistics are due',
  options: { tables: { type: 'string' }, force: { type: 'boolean' }, 'dry-run': { type: 'boolean' } },
  async run({ global, values, io }) {
    const tables = listOption(values.tables as string | undefined, '--tables', ANALYZE_TABLES);
    const dryRun = values['dry-run'] === true;
    const session = openSession('analyze', global, io);
    try {
      const { report } = await executeJob({
        job: 'analyze', target: global.target, sink: session.sink, dryRun, log: session.log,
        run: () => runAnalyze(session.deps, { tables, force: values.force === true, dryRun }),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderActionsReport(report, 'analyze', io.color));
      return EXIT_CODES[report.status];
    } finally {
      await session.close();
    }
  },
};

import { EXIT_CODES, REFRESH_MODES } from '../../contract/index.ts';
import { executeJob } from '../../jobs/execute.ts';
import { REFRESH_STATEMENT_TIMEOUT_MS, runRefresh } from '../../jobs/refresh-mv.ts';
import type { Command } from '../command.ts';
import { oneOfOption } from '../options.ts';
import { renderActionsReport } from '../render.ts';
import { openSession } from '../session.ts';

export const refresh: Command = {
  name: 'refresh',
  usage: 'refresh [--mode concurrent|full|incremental] [--dry-run] [--json]',
  summary: 'refresh attempt_mv (one at a time)',
  options: { mode: { type: 'string' }, 'dry-run': { type: 'boolean' } },
  async run({ global, values, io }) {
    const mode = oneOfOption(values.mode as string | undefined, '--mode', REFRESH_MODES);
    const dryRun = values['dry-run'] === true;
    // The pool's 30 s default suits checks; a refresh or an index build on a big table needs longer.
    const session = openSession('refresh-mv', global, io, { statementTimeoutMs: REFRESH_STATEMENT_TIMEOUT_MS });
    try {
      const { report } = await executeJob({
        job: 'refresh-mv', target: global.target, sink: session.sink, dryRun, log: session.log,
        run: () => runRefresh(session.deps, { mode, dryRun }),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderActionsReport(report, 'refresh', io.color));
      return EXIT_CODES[report.status];
    } finally {
      await session.close();
    }
  },
};

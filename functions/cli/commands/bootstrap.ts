import { EXIT_CODES } from '../../contract/index.ts';
import { runBootstrap } from '../../jobs/bootstrap.ts';
import { executeJob } from '../../jobs/execute.ts';
import { REFRESH_STATEMENT_TIMEOUT_MS } from '../../jobs/refresh-mv.ts';
import type { Command } from '../command.ts';
import { renderActionsReport } from '../render.ts';
import { openSession } from '../session.ts';

export const bootstrap: Command = {
  name: 'bootstrap',
  usage: 'bootstrap [--apply] [--roles] [--no-capture] [--json]',
  summary: 'attempt_ops schema, attempt_mv, indexes, grants (dry run unless --apply)',
  options: { apply: { type: 'boolean' }, roles: { type: 'boolean' }, 'no-capture': { type: 'boolean' } },
  async run({ global, values, io }) {
    const apply = values.apply === true;
    // The pool's 30 s default suits checks; a refresh or an index build on a big table needs longer.
    const session = openSession('bootstrap', global, io, { statementTimeoutMs: REFRESH_STATEMENT_TIMEOUT_MS });
    try {
      const { report } = await executeJob({
        job: 'bootstrap', target: global.target, sink: session.sink, dryRun: !apply, log: session.log,
        run: () => runBootstrap(session.deps, { apply, roles: values.roles === true, capture: values['no-capture'] !== true }),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderActionsReport(report, 'bootstrap', io.color));
      return EXIT_CODES[report.status];
    } finally {
      await session.close();
    }
  },
};

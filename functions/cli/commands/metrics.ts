import { EXIT_CODES } from '../../contract/index.ts';
import { executeJob } from '../../jobs/execute.ts';
import { runPublishMetrics } from '../../jobs/publish-metrics.ts';
import type { Command } from '../command.ts';
import { renderMetricsReport } from '../render.ts';
import { openSession } from '../session.ts';

export const metrics: Command = {
  name: 'metrics',
  usage: 'metrics [--json]',
  summary: 'collect the custom metrics once (published per --metrics)',
  options: {},
  async run({ global, io }) {
    const session = openSession('publish-metrics', global, io);
    try {
      const { report } = await executeJob({
        job: 'publish-metrics', target: global.target, sink: session.sink, dryRun: false, log: session.log,
        run: () => runPublishMetrics(session.deps),
      });
      io.stdout(global.json ? `${JSON.stringify(report, null, 2)}\n` : renderMetricsReport(report, 'metrics', io.color));
      return EXIT_CODES[report.status];
    } finally {
      await session.close();
    }
  },
};

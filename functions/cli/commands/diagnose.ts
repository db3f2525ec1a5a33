import { EXIT_CODES, INCIDENTS, type Incident } from '../../contract/index.ts';
import { ConfigError } from '../../db/errors.ts';
import { runDiagnose } from '../../jobs/diagnose.ts';
import { executeJob } from '../../jobs/execute.ts';
import { choices, type Command } from '../command.ts';
import { renderDiagnoseReport } from '../render.ts';
import { openSession } from '../session.ts';
import { runbookBase } from './check.ts';
import { didYouMean } from '../suggest.ts';

/** One line per incident, for --help: what it looks at, and its runbook section. */
const INCIDENT_LINES: Record<Incident, string> = {
  'view-missing': 'the attempt view missing or drifted from V1 (runbook 1)',
  'permission-denied': 'the app role cannot read the view or its tables (runbook 2)',
  'slow-queries': "section 3's query plan, locks, long queries, statistics and indexes (runbook 3)",
  'data-quality': 'poison rows, NULL required fields, orphans, with samples (runbook 4)',
  duplicates: 'duplicate attempt ids and duplicated source rows (runbook 5)',
};

export const diagnose: Command = {
  name: 'diagnose',
  usage: 'diagnose <incident> [--json]',
  summary: 'runbook diagnosis of one incident, read-only',
  options: {},
  help: () => choices('incidents', INCIDENTS.map((i) => [i, INCIDENT_LINES[i]] as const)),
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

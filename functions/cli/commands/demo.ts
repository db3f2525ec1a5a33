import { runDemo } from '../../demo/demo.ts';
import { ConfigError } from '../../db/errors.ts';
import type { Command } from '../command.ts';

export const demo: Command = {
  name: 'demo',
  usage: 'demo [--rows N] [--keep]',
  summary: 'embedded PostgreSQL, seeded faults, every job (--keep: leave it running to try)',
  options: { rows: { type: 'string' }, keep: { type: 'boolean' } },
  async run({ values, io }) {
    const raw = values.rows as string | undefined;
    if (raw !== undefined && (!/^\d{1,8}$/.test(raw) || Number(raw) < 1000)) throw new ConfigError('--rows must be a whole number from 1000 to 99999999');
    // Loaded here, not at the top: main.ts lists this command, so a static import would be a cycle.
    const { main } = await import('../main.ts');
    return runDemo(io, { rows: raw === undefined ? undefined : Number(raw), keep: values.keep === true, cli: (argv) => main(argv, io) });
  },
};

/**
 * `attempt-ops <command>`: parse, validate, dispatch, and turn every failure into one line on
 * stderr and a Nagios exit code (0 ok, 1 warning, 2 critical or job failed, 3 unknown).
 */
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import { EXIT_CODES } from '../contract/index.ts';
import { AttemptOpsError, ConfigError, oneLine } from '../db/errors.ts';
import type { Command } from './command.ts';
import { COMMANDS } from './commands/index.ts';
import { processIo, type CliIo } from './io.ts';
import { GLOBAL_OPTIONS, readGlobalOptions, type GlobalOptions } from './options.ts';
import { didYouMean } from './suggest.ts';

/** The installed package's version: what `--version` prints and a bug report needs. */
export function version(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version;
}

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.usage.length));
  return [
    'usage: attempt-ops <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'global options:',
    '  --database-url URL        else DATABASE_URL, else the PG* variables',
    '  --app-role NAME           the role whose access matters (default seedtest_user)',
    '  --schema NAME             schema of the attempt view (default public)',
    '  --metrics none|stdout|cloudwatch   where metrics go (default none)',
    '  --target NAME             the Database dimension (default local)',
    '  --json                    print the JSON report',
    '  --verbose                 log lines and stack traces on stderr',
    '  --version                 print the version',
    '',
    'exit codes: 0 ok, 1 warning, 2 critical or job failed, 3 unknown (unreachable, bad config or arguments)',
  ].join('\n');
}

/**
 * Where the CLI tried to connect, for a failure to reach or log in: host, port, database and
 * role (never the password), and where those came from, so a tired human sees what to fix.
 */
function where(global: GlobalOptions | undefined): string {
  if (!global) return '';
  try {
    const c = global.connection();
    const from = c.source === 'url' ? 'DATABASE_URL or --database-url' : 'the PG* variables (PGHOST, PGPORT, PGUSER, PGDATABASE)';
    return ` [${c.user ?? '(default user)'}@${c.host ?? 'localhost'}:${c.port ?? 5432}/${c.database ?? '(default database)'}, from ${from}]`;
  } catch {
    return '';
  }
}

/** SQLSTATEs whose cause one runbook diagnosis explains. */
const DIAGNOSIS_FOR_SQLSTATE: Record<string, string> = {
  '23505': 'duplicates', // a unique index refused a row: duplicate attempt ids (runbook 5)
  '21000': 'duplicates',
  '22P02': 'data-quality', // invalid input syntax: a poison row the view cannot cast (runbook 4)
  '22003': 'data-quality',
  '42501': 'permission-denied',
  '42P01': 'view-missing',
  '57014': 'slow-queries',
  '55P03': 'slow-queries',
};

/** " (attempt-ops diagnose X explains it)" for a failure one diagnosis explains, else nothing. */
function diagnoseHint(e: AttemptOpsError): string {
  let cause: unknown = e;
  for (let depth = 0; cause && depth < 5; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && DIAGNOSIS_FOR_SQLSTATE[code]) return ` (attempt-ops diagnose ${DIAGNOSIS_FOR_SQLSTATE[code]} explains it)`;
    cause = (cause as { cause?: unknown }).cause;
  }
  return '';
}

function parse(command: Command, argv: string[]) {
  const options = { ...GLOBAL_OPTIONS, ...command.options };
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (err) {
    const message = oneLine(err).replace(/\. To specify a positional argument.*$/, '');
    const unknown = /^Unknown option '(--?[^']+)'/.exec(message)?.[1];
    const hint = unknown ? didYouMean(unknown, Object.keys(options).map((o) => `--${o}`)) : '';
    throw new ConfigError(`${command.name}: ${message}${hint}`);
  }
}

export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.stdout(`${help()}\n`);
    return name === undefined ? EXIT_CODES.unknown : EXIT_CODES.ok;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    io.stdout(`attempt-ops ${version()}\n`);
    return EXIT_CODES.ok;
  }
  const command = COMMANDS.find((c) => c.name === name);
  let verbose = rest.includes('--verbose');
  let global: GlobalOptions | undefined;
  try {
    if (!command) {
      const names = COMMANDS.map((c) => c.name);
      throw new ConfigError(`unknown command ${JSON.stringify(name)}${didYouMean(name, names)} (commands: ${names.join(', ')})`);
    }
    const { values, positionals } = parse(command, rest);
    if (values.help) {
      const more = command.help?.() ?? [];
      io.stdout(`usage: attempt-ops ${command.usage}\n${command.summary}\n${more.length ? `\n${more.join('\n')}\n` : ''}`);
      return EXIT_CODES.ok;
    }
    const expected = command.positionals ?? 0;
    if (positionals.length !== expected) {
      throw new ConfigError(`${command.name}: expected ${expected} argument(s), got ${positionals.length} (usage: attempt-ops ${command.usage})`);
    }
    global = readGlobalOptions(values, io.env);
    verbose = global.verbose;
    return await command.run({ global: global!, values: values as Record<string, string | boolean | undefined>, positionals, io });
  } catch (err) {
    const e = err instanceof AttemptOpsError ? err : new AttemptOpsError('job', oneLine(err), { cause: err });
    io.stderr(`attempt-ops: ${oneLine(e)}${e.kind === 'connection' || e.kind === 'authentication' ? where(global) : diagnoseHint(e)}\n`);
    if (verbose && err instanceof Error && err.stack) io.stderr(`${err.stack}\n`);
    return e.exitCode;
  }
}

/** The shape of one CLI command; main.ts parses, validates and dispatches. */
import type { ParseArgsConfig } from 'node:util';
import type { CliIo } from './io.ts';
import type { GlobalOptions } from './options.ts';

export type OptionSpec = NonNullable<ParseArgsConfig['options']>;

export interface CommandInput {
  global: GlobalOptions;
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
  io: CliIo;
}

export interface Command {
  name: string;
  usage: string;
  summary: string;
  options: OptionSpec;
  /** What `<command> --help` lists below the usage: the choices (checks, incidents, fixes), one line each. */
  help?: () => string[];
  /** How many positionals the command takes (exactly). */
  positionals?: number;
  /** Returns the exit code. */
  run(input: CommandInput): Promise<number>;
}

/** A `--help` list in two columns: a name, then its line. */
export function choices(title: string, rows: readonly (readonly [string, string])[]): string[] {
  const width = Math.max(...rows.map(([n]) => n.length));
  return [`${title}:`, ...rows.map(([n, line]) => `  ${n.padEnd(width)}  ${line}`)];
}

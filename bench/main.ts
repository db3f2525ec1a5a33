/**
 * `npm run bench -- --rows N`: generate the reference dataset, measure a. to e. side by side,
 * write BENCHMARKS.md and print it. The database is dropped (or the embedded server stopped) on
 * the way out, Ctrl-C included.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { AttemptOpsError, oneLine } from '../functions/db/errors.ts';
import { REPO_ROOT, measureBundles } from './bundles.ts';
import { parseBenchArgs, USAGE, type BenchOptions } from './options.ts';
import { describeMachine, renderMarkdown, renderTargets } from './report.ts';
import { defaultSettings, measureDatabase, type BenchResult } from './run.ts';
import { checkDatabaseUrl, openBenchServer, type BenchServer } from './server.ts';
import { measureWriters, renderWriters } from './writers.ts';

const started = performance.now();
const say = (line: string) => process.stderr.write(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}\n`);

/** How long cleanup may take after Ctrl-C before we give up on it and exit anyway. */
const CLEANUP_GRACE_MS = 20_000;

function commandLine(o: BenchOptions): string {
  const args = [`--rows ${o.rows}`, ...(o.reps !== 5 ? [`--reps ${o.reps}`] : [])];
  return `npm run bench -- ${args.join(' ')}`;
}

async function main(argv: readonly string[]): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchArgs(argv);
  } catch (err) {
    process.stderr.write(`bench: ${oneLine(err)}\n${USAGE}\n`);
    return 3;
  }
  if (options.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    checkDatabaseUrl();
  } catch (err) {
    process.stderr.write(`bench: ${oneLine(err)}\n`);
    return 3;
  }

  let server: BenchServer | undefined;
  let interrupted = false;
  const cleanUp = async () => {
    const s = server;
    server = undefined;
    await s?.close();
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = true;
    say(`${signal}: ${options.keep ? 'stopping' : 'cleaning up'} the bench database`);
    const grace = setTimeout(() => process.exit(130), CLEANUP_GRACE_MS);
    void cleanUp()
      .catch((err) => say(`cleanup failed: ${oneLine(err)}`))
      .finally(() => {
        clearTimeout(grace);
        process.exit(130);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let keepAlive = false;
  try {
    const settings = defaultSettings(options.rows, options.reps, options.slowReps);
    const loadAtStart = os.loadavg();
    // Before the database exists: nothing else is running, and a failing build fails fast.
    say(`d. Lambda bundles (${options.reps} cold starts each)`);
    const bundles = await measureBundles({ reps: options.reps }, say);

    server = await openBenchServer(process.env, say);
    say(`bench database ${server.database} (${server.kind}); ${options.rows.toLocaleString('en-US')} rows, ${options.reps} reps (${options.slowReps} for the slow ones)`);
    const figures = await measureDatabase(server.url, settings, say, { tty: process.stderr.isTTY });
    const result: BenchResult = { ...figures, settings, bundles };
    say('f. writers: single-row INSERTs with and without the change capture');
    const writers = await measureWriters(server.url);

    const markdown = `${renderMarkdown(result, { machine: describeMachine(), load: { start: loadAtStart, end: os.loadavg() }, date: new Date(), server: server.kind === 'embedded' ? 'embedded, started by the run' : 'DATABASE_URL', command: commandLine(options) })}\n${renderWriters(writers)}`;
    const out = options.out ? path.resolve(options.out) : path.join(REPO_ROOT, 'BENCHMARKS.md');
    writeFileSync(out, markdown);
    process.stdout.write(`${markdown}\n`);
    say(`wrote ${out}`);
    process.stdout.write(`\n${renderTargets(result)}\n`);

    if (options.keep) {
      if (server.kind === 'embedded') {
        const u = new URL(server.url);
        // The embedded server's password is the fixed demo one (functions/demo/embedded.ts): no secret, but not echoed either.
        say(`--keep: the embedded PostgreSQL keeps running: postgres://${u.username}@${u.host}${u.pathname} (password: see functions/demo/embedded.ts); Ctrl-C stops it`);
        keepAlive = true;
      } else {
        say(`--keep: database ${server.database} left in place; drop it with DROP DATABASE ${server.database}`);
        server = undefined;
      }
    }
    return 0;
  } catch (err) {
    if (interrupted) return 130;
    const e = err instanceof AttemptOpsError ? err : undefined;
    say(`bench failed: ${oneLine(err)}`);
    if (process.env.BENCH_DEBUG) console.error(err);
    return e?.exitCode ?? 2;
  } finally {
    if (!keepAlive && !interrupted && server) {
      say(server.kind === 'embedded' ? 'stopping PostgreSQL' : 'dropping the bench database');
      await cleanUp().catch((err) => say(`cleanup failed: ${oneLine(err)}`));
    }
  }
}

const code = await main(process.argv.slice(2));
// With --keep the embedded server's child process keeps node alive until Ctrl-C; the signal handler exits.
process.exitCode = code;

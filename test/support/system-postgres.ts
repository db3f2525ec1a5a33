/**
 * A throw-away cluster from an installed PostgreSQL's bin folder (e.g. Debian's
 * /usr/lib/postgresql/15/bin), started the way functions/demo/embedded.ts starts the embedded one:
 * a fresh data folder made by initdb under the system temp directory, password login for the
 * `postgres` superuser, loopback only, on a free port; stop() shuts it down and removes the folder.
 *
 * PostgreSQL refuses to run as root, so as root initdb and the server run as the `postgres`
 * system user, in a folder it owns. Readiness is polled (a successful login), with a deadline.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort, type EmbeddedDatabase } from '../../functions/demo/embedded.ts';

export interface SystemStartOptions {
  /** Extra postgres flags, e.g. ['-c', 'max_connections=200']. */
  postgresFlags?: string[];
  /** How long to wait for the server to accept a login. */
  readyTimeoutMs?: number;
  /** Extra environment for the server (e.g. a preloaded libfaketime). */
  env?: Record<string, string>;
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const PASSWORD = 'system-test-password';

function postgresIds(): { uid: number; gid: number } {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) throw new Error('running as root, but there is no `postgres` system user to run PostgreSQL as');
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** The last lines a process wrote, for error messages. */
function tail(lines: string[], chunk: Buffer): void {
  lines.push(...chunk.toString('utf8').split('\n').filter((l) => l.trim() !== ''));
  if (lines.length > 40) lines.splice(0, lines.length - 40);
}

function run(cmd: string, args: string[], opts: { ids?: { uid: number; gid: number }; cwd: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const out: string[] = [];
    const child = spawn(cmd, args, { cwd: opts.cwd, ...opts.ids, env: { ...process.env, LC_MESSAGES: 'C' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (c: Buffer) => tail(out, c));
    child.stderr.on('data', (c: Buffer) => tail(out, c));
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(cmd)} failed (code ${code ?? 'null'}, signal ${signal ?? 'null'}):\n${out.join('\n')}`)),
    );
  });
}

async function canLogin(url: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Start a cluster from `binDir` (which holds initdb and postgres). */
export async function startSystemPostgres(binDir: string, options: SystemStartOptions = {}): Promise<EmbeddedDatabase> {
  const initdb = path.join(binDir, 'initdb');
  const postgres = path.join(binDir, 'postgres');
  for (const bin of [initdb, postgres]) if (!existsSync(bin)) throw new Error(`${bin} does not exist`);
  const ids = isRoot ? postgresIds() : undefined;

  // The folder postgres enters, writes its socket to and owns its data folder in.
  const base = mkdtempSync(path.join(os.tmpdir(), 'attempt-ops-syspg-'));
  chmodSync(base, 0o755);
  const dataDir = path.join(base, 'data');
  const pwFile = path.join(base, 'pwfile');
  mkdirSync(dataDir, { mode: 0o700 });
  writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (ids) {
    for (const p of [base, dataDir, pwFile]) chownSync(p, ids.uid, ids.gid);
  }

  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const killOnExit = () => child?.kill('SIGKILL');
  const cleanup = async () => {
    process.off('exit', killOnExit);
    if (child && child.exitCode === null && child.signalCode === null) {
      // SIGINT is a fast shutdown; SIGKILL if it has not gone within the deadline.
      child.kill('SIGINT');
      const timer = setTimeout(() => child?.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(base, { recursive: true, force: true });
  };

  try {
    // UTF8 and a UTF-8 locale, as a production (RDS) database has: regexes then see Unicode classes.
    await run(initdb, [`--pgdata=${dataDir}`, '--username=postgres', `--pwfile=${pwFile}`, '--auth=scram-sha-256', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync'], {
      ids,
      cwd: base,
    });
    rmSync(pwFile, { force: true });

    const port = await freePort();
    const url = `postgres://postgres:${PASSWORD}@127.0.0.1:${port}/postgres`;
    const log: string[] = [];
    const args = ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', `unix_socket_directories=${base}`, ...(options.postgresFlags ?? [])];
    const proc = spawn(postgres, args, { cwd: base, ...ids, env: { ...process.env, LC_MESSAGES: 'C', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child = proc;
    process.on('exit', killOnExit);
    proc.stdout!.on('data', (c: Buffer) => tail(log, c));
    proc.stderr!.on('data', (c: Buffer) => tail(log, c));
    let early: Error | undefined;
    exited = new Promise((resolve) => {
      proc.once('error', (err) => {
        early ??= err;
        resolve();
      });
      proc.once('exit', (code, signal) => {
        early ??= new Error(`postgres exited (code ${code ?? 'null'}, signal ${signal ?? 'null'}) before accepting logins:\n${log.join('\n')}`);
        resolve();
      });
    });

    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    for (;;) {
      if (early) throw early;
      if (await canLogin(url)) break;
      if (early) throw early;
      if (Date.now() > deadline) throw new Error(`postgres from ${binDir} did not accept a login within ${options.readyTimeoutMs ?? 60_000} ms:\n${log.join('\n')}`);
      // Poll interval between login attempts, bounded by the deadline above (not an ordering sleep).
      await Promise.race([new Promise((r) => setTimeout(r, 100)), exited]);
    }

    let stopped = false;
    return {
      port,
      url,
      async stop() {
        if (stopped) return;
        stopped = true;
        await cleanup();
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

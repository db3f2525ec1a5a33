/**
 * moto's server, an AWS API emulator, on a free loopback port: the tests' Secrets Manager and
 * CloudWatch answer over real HTTP, so what the SDK sends and parses is checked, not a mock's
 * idea of it. Tests that need it skip, with MOTO_MISSING as the stated reason, where the machine
 * has no python3 or no moto (`pip install 'moto[server]'`).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { connect, createServer, type Socket } from 'node:net';

/** Why moto's server cannot run here, or undefined when it can. */
export const MOTO_MISSING: string | undefined = (() => {
  const probe = spawnSync('python3', ['-c', 'import moto, moto.server, flask'], { encoding: 'utf8', timeout: 30_000 });
  if (probe.error) return `python3 is not available (${probe.error.message}): the tests against moto's server are skipped`;
  if (probe.status !== 0) return "moto's server is not installed for python3 (pip install 'moto[server]'): the tests against it are skipped";
  return undefined;
})();

/** The environment the SDK needs to talk to moto only: its endpoint, fake credentials, a region. */
export function motoEnvironment(endpoint: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL: endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_SESSION_TOKEN: 'testing',
    AWS_REGION: 'eu-west-1',
    AWS_DEFAULT_REGION: 'eu-west-1',
  };
}

export interface Moto {
  endpoint: string;
  /** Forget every resource (secrets, metrics) between tests. */
  reset(): Promise<void>;
  stop(): Promise<void>;
}

/** A port nothing listens on at the moment of asking (the OS picks it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** Until the server answers HTTP, polled; an exit or the deadline ends the wait with what it printed. */
async function waitUntilAnswering(child: ChildProcess, endpoint: string, output: () => string, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  for (;;) {
    if (exited !== undefined) throw new Error(`moto's server exited (${exited}) before answering: ${output()}`);
    try {
      const res = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) throw new Error(`moto's server did not answer on ${endpoint} within ${deadlineMs / 1000} s: ${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startMoto(options: { deadlineMs?: number } = {}): Promise<Moto> {
  if (MOTO_MISSING) throw new Error(MOTO_MISSING);
  const port = await freeLoopbackPort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child = spawn('python3', ['-m', 'moto.server', '-p', String(port), '-H', '127.0.0.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let printed = '';
  const keep = (chunk: Buffer) => {
    printed = (printed + chunk.toString('utf8')).slice(-2_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  try {
    await waitUntilAnswering(child, endpoint, () => printed.trim(), options.deadlineMs ?? 30_000);
  } catch (err) {
    child.kill();
    throw err;
  }
  return {
    endpoint,
    async reset() {
      const res = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!res.ok) throw new Error(`moto reset answered ${res.status}`);
    },
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill();
      }),
  };
}

export interface FaultyEndpoint {
  endpoint: string;
  close(): Promise<void>;
}

/**
 * A loopback endpoint whose SYNs go unanswered, as in a private subnet without a route: a
 * listener (python3, which moto needs anyway: Node's own listeners always accept) with a backlog
 * of 0 that never accepts, its one queue slot taken, so the kernel drops every further SYN.
 * A non-routable address would do the same where no proxy answers for it; some machines have one.
 */
export async function unansweredEndpoint(): Promise<FaultyEndpoint> {
  const listener = spawn('python3', ['-c', [
    'import socket, sys',
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)",
    'print(s.getsockname()[1], flush=True)',
    'sys.stdin.read()',
  ].join('\n')], { stdio: ['pipe', 'pipe', 'ignore'] });
  const port = await new Promise<number>((resolve, reject) => {
    listener.once('error', reject);
    listener.once('exit', (code) => reject(new Error(`the listener exited (${code}) before naming its port`)));
    listener.stdout!.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
  });
  const filler = connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => filler.once('connect', resolve).once('error', reject));
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: async () => {
      filler.destroy();
      listener.stdin!.end();
      if (listener.exitCode === null) await new Promise((r) => listener.once('exit', r));
    },
  };
}

/** A loopback endpoint that accepts connections and never answers a request. */
export async function silentEndpoint(): Promise<FaultyEndpoint> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

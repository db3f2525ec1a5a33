/**
 * d. Each Lambda's bundle, built as the CDK stack builds it (lib/job-function.ts), its size, and
 * its cold module initialisation: the bundle required once in a fresh `node`, timed around the
 * require, with the AWS SDK resolved from node_modules as the Lambda runtime resolves its own copy.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';
import { summarize, type Samples } from './stats.ts';

const run = promisify(execFile);

export const REPO_ROOT = fileURLToPath(new URL('..', import.meta.url));
export const HANDLERS_DIR = path.join(REPO_ROOT, 'functions', 'handlers');

/**
 * The stack's bundling options (lib/job-function.ts), repeated rather than imported: importing
 * lib/ loads aws-cdk-lib, seconds of startup for four constants.
 */
export const BUNDLING = {
  bundle: true,
  minify: true,
  format: 'cjs',
  platform: 'node',
  target: 'node22',
  sourcemap: true,
  external: ['@aws-sdk/*', 'pg-native'],
  // The stack's esbuildArgs '--supported:dynamic-import=false': the lazily loaded SDK becomes require().
  supported: { 'dynamic-import': false },
} as const;

export interface BundleFigures {
  name: string;
  /** The minified bundle, without its source map. */
  bytes: number;
  /** Cold require of the bundle, as deployed: NODE_OPTIONS=--enable-source-maps (the stack sets it). */
  initMs: Samples;
  /** The same without source maps: what the flag costs. */
  initNoSourceMapsMs: Samples;
  /** Where the bytes come from: the biggest packages (our own code is "functions"), largest first. */
  largest: Array<{ name: string; bytes: number }>;
}

/** node_modules/<pkg> or node_modules/@scope/<pkg> of an esbuild input path; our own sources otherwise. */
export function packageOf(input: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input.split('node_modules/').length > 2 ? input.slice(input.lastIndexOf('node_modules/')) : input);
  return m ? m[1]! : input.startsWith('functions/') ? 'functions' : input;
}

/** Entry points: every handler file that exports `handler` (runtime.ts is shared code, not an entry). */
export function handlerEntries(dir = HANDLERS_DIR): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && !f.endsWith('.d.ts'))
    .filter((f) => /export\s+(const|let|async\s+function|function)\s+handler\b/.test(readFileSync(path.join(dir, f), 'utf8')))
    .map((f) => path.join(dir, f))
    .sort();
}

// Times only the require: node's own start is the same for every function and not ours to shrink.
const TIME_REQUIRE = `const { performance } = require('node:perf_hooks');
const started = performance.now();
require(process.argv[1]);
process.stdout.write(JSON.stringify({ ms: performance.now() - started }));
process.exit(0);`;

async function coldRequireMs(bundle: string, sourceMaps: boolean): Promise<number> {
  const { stdout } = await run(process.execPath, ['-e', TIME_REQUIRE, bundle], {
    // A clean environment: what the parent runs under (tsx, vitest) must not leak into the timing.
    env: {
      PATH: process.env.PATH ?? '',
      NODE_PATH: path.join(REPO_ROOT, 'node_modules'),
      NODE_OPTIONS: sourceMaps ? '--enable-source-maps' : '',
    },
    timeout: 60_000,
  });
  return (JSON.parse(stdout) as { ms: number }).ms;
}

export interface BundleOptions {
  reps: number;
  entries?: string[];
}

export async function measureBundles(o: BundleOptions, progress: (line: string) => void = () => undefined): Promise<BundleFigures[]> {
  const outDir = mkdtempSync(path.join(os.tmpdir(), 'attempt-ops-bench-bundles-'));
  try {
    const figures: BundleFigures[] = [];
    for (const entry of o.entries ?? handlerEntries()) {
      const name = path.basename(entry, '.ts');
      progress(`d. bundling and timing ${name}`);
      const outfile = path.join(outDir, name, 'index.js');
      const result = await build({ ...BUNDLING, external: [...BUNDLING.external], supported: { ...BUNDLING.supported }, entryPoints: [entry], outfile, logLevel: 'silent', metafile: true, absWorkingDir: REPO_ROOT });
      const byPackage = new Map<string, number>();
      for (const [input, { bytesInOutput }] of Object.entries(result.metafile.outputs[path.relative(REPO_ROOT, outfile)]?.inputs ?? {})) {
        byPackage.set(packageOf(input), (byPackage.get(packageOf(input)) ?? 0) + bytesInOutput);
      }
      const largest = [...byPackage].map(([n, bytes]) => ({ name: n, bytes })).sort((a, b) => b.bytes - a.bytes).slice(0, 4);
      const withMaps: number[] = [];
      const without: number[] = [];
      // Interleaved, so a busy moment of the machine touches both variants alike.
      for (let i = 0; i < o.reps; i++) {
        withMaps.push(await coldRequireMs(outfile, true));
        without.push(await coldRequireMs(outfile, false));
      }
      figures.push({ name, bytes: statSync(outfile).size, initMs: summarize(withMaps), initNoSourceMapsMs: summarize(without), largest });
    }
    return figures;
  } finally {
    rmSync(outDir, { recursive: true, force: true });
  }
}

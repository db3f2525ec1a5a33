/**
 * The second run of `npm test`: the SQL test files again, on Debian's PostgreSQL 15 (the oldest
 * version the product supports), started by global-setup.ts from its bin folder.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

export const PG15_BIN = '/usr/lib/postgresql/15/bin';

/**
 * Not rerun: the stack and contract files (no SQL that depends on the server version), bench
 * options (argument parsing), and the paging timeline, which exercises the alarms, not the SQL,
 * and runs its clock-driven cases on a cluster of its own (the jobs' SQL runs on 15 in the others).
 */
const NOT_RERUN = [/^test\/stack\//, /^test\/contract\//, /^test\/bench\/options\.test\.ts$/, /^test\/timeline\//];

/**
 * The test files that talk to the run's server: those that reach it through test/support/db.ts
 * (or its adminUrl directly). The rest (unit tests, and the demo, which starts its own embedded
 * server) would only repeat the first run.
 */
export function sqlTestFiles(root: string): string[] {
  return (readdirSync(path.join(root, 'test'), { recursive: true }) as string[])
    .map((f) => `test/${f.split(path.sep).join('/')}`)
    .filter((f) => f.endsWith('.test.ts') && !NOT_RERUN.some((re) => re.test(f)))
    .filter((f) => /support\/db(\.ts)?['"]|inject\(\s*['"]adminUrl['"]\s*\)/.test(readFileSync(path.join(root, f), 'utf8')))
    .sort();
}

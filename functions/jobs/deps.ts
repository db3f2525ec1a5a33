/** What every job's core takes as arguments, so Lambda, the CLI, the demo and tests can inject it. */
import type { Pool } from '../db/pool.ts';
import type { Logger } from '../runtime/log.ts';

export interface JobDeps {
  pool: Pool;
  /** The Database dimension. */
  target: string;
  /** Validated schema of the watched view. */
  schema: string;
  /** Validated application role whose access matters. */
  appRole: string;
  clock?: () => Date;
  signal?: AbortSignal;
  log?: Logger;
  /** Milliseconds this run may still spend (the Lambda's remaining time less headroom). */
  remainingMs?: () => number;
}

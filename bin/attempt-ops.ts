/** The attempt-ops command line (CONTRACT.md section 2). */
import { main } from '../functions/cli/main.ts';

process.exitCode = await main(process.argv.slice(2));

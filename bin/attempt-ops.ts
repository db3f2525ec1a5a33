/** The attempt-ops command line (CONTRACT.md section 2). */
import { main } from '../functions/cli/main.ts';

// Node, pg and the AWS SDK warn on stderr (pg's sslmode notice, the SDK's Node 20 notice), and the
// CLI's stderr is its one-line error: their warnings show only with --verbose. Removing every
// listener removes Node's own printer too.
process.removeAllListeners('warning');
if (process.argv.includes('--verbose')) process.on('warning', (w) => process.stderr.write(`${w.name}: ${w.message}\n`));

process.exitCode = await main(process.argv.slice(2));

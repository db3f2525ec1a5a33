/** The attempt-ops command line (CONTRACT.md section 2). */
import { main } from '../functions/cli/main.ts';

// Node, pg and the AWS SDK warn on stderr (pg's sslmode notice, the SDK's Node 20 notice), and the
// CLI's stderr is its one-line error: their warnings show only with --verbose. Removing every
// listener removes Node's own printer too.
process.removeAllListeners('warning');
if (process.argv.includes('--verbose')) process.on('warning', (w) => process.stderr.write(`${w.name}: ${w.message}\n`));

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Everything is printed and every pool closed: a socket pg left open after a failure on its own
// side (no password against a server that waits for one, up to authentication_timeout) must not
// keep a finished command alive. Unref'd, so a clean exit never waits for it.
setTimeout(() => process.exit(code), 1_000).unref();

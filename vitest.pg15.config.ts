/**
 * The SQL test files (test/support/pg15.ts) on another server: run by test/support/run-pg15.ts,
 * which sets ATTEMPT_OPS_TEST_PG_BIN so that global-setup.ts starts that installation's server.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from './vitest.config.ts';
import { sqlTestFiles } from './test/support/pg15.ts';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  ...base,
  test: { ...base.test, include: sqlTestFiles(root) },
});

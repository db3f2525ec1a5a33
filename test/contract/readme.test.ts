/** The README's alarm table is the one the contract renders: it cannot drift from the stack. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_ALARM_SPECS } from '../../functions/contract/index.ts';
import { renderAlarmTable } from '../../lib/alarm-table.ts';

describe('README', () => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

  it('shows the alarm table generated from the contract, one row per alarm', () => {
    expect(readme).toContain(renderAlarmTable());
    for (const s of ALL_ALARM_SPECS) expect(readme).toContain(`| ${s.title}`);
  });

  it('gives the two commands a newcomer needs', () => {
    expect(readme).toContain('npm ci && npm start');
    expect(readme).toContain('npm ci && npm test');
  });
});

/** Every runbook anchor the reports and alarms link to lands on a heading of docs/RUNBOOK.md. */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RUNBOOK } from '../../functions/contract/index.ts';

/** GitHub's heading ids: lower case, punctuation and emoji dropped, each space a hyphen. */
function slug(heading: string): string {
  return heading.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/ /g, '-');
}

describe('docs/RUNBOOK.md', () => {
  const headings = readFileSync(new URL('../../docs/RUNBOOK.md', import.meta.url), 'utf8')
    .split('\n')
    .filter((l) => /^#{1,6} /.test(l))
    .map((l) => `#${slug(l.replace(/^#+ /, ''))}`);

  it.each(Object.entries(RUNBOOK))('has the heading for %s', (_key, anchor) => {
    expect(headings).toContain(anchor);
  });

  it('computes anchors the way GitHub does', () => {
    expect(slug('2. Query Failure - Permission Denied (P1)')).toBe('2-query-failure---permission-denied-p1');
    expect(slug('📊 Monitoring & Alerts')).toBe('-monitoring--alerts');
  });
});

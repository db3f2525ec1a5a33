/**
 * The arrows of ARCHITECTURE.md that concern the stack: lib/ takes only the contract from
 * functions/ (the stack never runs SQL), and nothing under functions/ pulls in aws-cdk-lib or lib/
 * (the Lambda bundles stay small and free of infrastructure code).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    return statSync(p).isDirectory() ? tsFiles(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Module specifiers of static and dynamic imports and re-exports. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+['"]([^'"]+)['"]/g), ...text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)];
  return specs.map((m) => m[1]!);
}

describe('architecture', () => {
  it('lib/ imports from functions/ only functions/contract/', () => {
    const offenders: string[] = [];
    for (const file of tsFiles(join(ROOT, 'lib'))) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith('.')) continue;
        const target = relative(ROOT, resolve(file, '..', spec));
        if (target.startsWith('functions/') && !target.startsWith('functions/contract/')) offenders.push(`${relative(ROOT, file)} -> ${target}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('functions/ never imports aws-cdk-lib, constructs, cdk-nag or lib/', () => {
    const offenders: string[] = [];
    for (const file of tsFiles(join(ROOT, 'functions'))) {
      for (const spec of importsOf(file)) {
        const target = spec.startsWith('.') ? relative(ROOT, resolve(file, '..', spec)) : spec;
        if (/^(aws-cdk-lib|constructs|cdk-nag)(\/|$)/.test(target) || target.startsWith('lib/')) offenders.push(`${relative(ROOT, file)} -> ${spec}`);
      }
    }
    expect(offenders).toEqual([]);
  });

  it('the contract does no I/O', () => {
    for (const file of tsFiles(join(ROOT, 'functions/contract'))) {
      for (const spec of importsOf(file)) expect(spec, relative(ROOT, file)).toMatch(/^(\.\/|zod\/mini$|zod\/v4\/locales\/en\.js$)/);
    }
  });
});

/**
 * Schema and role names come from flags, payloads and config. They are validated to a plain
 * identifier and then quoted; a name is never spliced into SQL as it was given.
 */
import { ConfigError } from './errors.ts';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;

export function validateIdentifier(value: string, what: string): string {
  if (!IDENTIFIER.test(value)) {
    throw new ConfigError(`${what} must be a plain identifier (letters, digits, _ or $; at most 63 characters)`);
  }
  return value;
}

export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** schema.relation, both quoted. */
export function qualified(schema: string, relation: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(relation)}`;
}

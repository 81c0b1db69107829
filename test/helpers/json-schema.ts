import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { repoRoot } from './cli.js';

export const readSchema = (name: string): Record<string, unknown> =>
  JSON.parse(readFileSync(join(repoRoot, 'schema', name), 'utf8'));

/**
 * A copy of a schema in which every object that lists its properties allows no others. The published
 * schemas leave objects open (consumers must ignore fields added later); tests use the closed copy, so a
 * field the code emits but the schema does not document fails.
 */
export function closeObjects<T>(schema: T): T {
  if (Array.isArray(schema)) return schema.map(closeObjects) as T;
  if (schema === null || typeof schema !== 'object') return schema;
  const copy = Object.fromEntries(Object.entries(schema).map(([k, v]) => [k, closeObjects(v)]));
  if ('properties' in copy && !('additionalProperties' in copy)) copy.additionalProperties = false;
  return copy as T;
}

export function compile(schema: Record<string, unknown>): ValidateFunction {
  return new Ajv({ allErrors: true, strict: true, allowUnionTypes: true }).compile(schema);
}

export const describeErrors = (errors: ErrorObject[] | null | undefined): string =>
  (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message}`).join('\n');

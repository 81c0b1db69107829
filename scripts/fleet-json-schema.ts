import type { ZodTypeDef } from 'zod';
import { ignoreOverride, zodToJsonSchema } from 'zod-to-json-schema';
import { duration } from '../src/lib/config/duration.js';
import { SIGNALS, signalName } from '../src/lib/config/fields.js';
import { fleetSchema } from '../src/lib/config/schema.js';

export const FLEET_SCHEMA_FILE = 'schema/fleet.schema.json';

/** `[Tt][Ee][Rr][Mm]`: JSON Schema patterns (ECMA 262) have no case-insensitive flag. */
const anyCase = (text: string) => text.replace(/[A-Za-z]/g, (c) => `[${c.toUpperCase()}${c.toLowerCase()}]`);

/**
 * Fields whose zod type is a transform (a string in, a number or a signal out) would come out as a bare
 * string. Editors complete and check them better with what the transform accepts; the schema-file test
 * holds these patterns to the parsers.
 */
const overrides = new Map<ZodTypeDef, object>([
  [
    duration._def,
    {
      description:
        'A duration with a unit: 500ms, 30s, 1.5m, 1m30s, 1h, 2d (at most 24.8 days, the longest Node.js timer); 0 needs none.',
      anyOf: [
        { type: 'string', pattern: '^\\s*((\\d+(\\.\\d+)?(ms|s|m|h|d))+|0+(\\.0+)?)\\s*$' },
        { type: 'number', const: 0 },
      ],
    },
  ],
  [
    signalName._def,
    {
      description: 'A signal name: TERM, USR1, KILL… (any case, SIG prefix optional).',
      anyOf: [
        { type: 'string', enum: [...SIGNALS] },
        { type: 'string', pattern: `^(${anyCase('sig')})?(${SIGNALS.map(anyCase).join('|')})$` },
      ],
    },
  ],
]);

/**
 * The JSON Schema of the fleet file, generated from the zod schema that validates it. Input types
 * (`pipeStrategy`/`effectStrategy: input`): what a person writes, before defaults and transforms.
 * Everything is inlined (`$refStrategy: none`) because yaml-language-server completes inlined
 * definitions more reliably than `$ref`s into `definitions`.
 */
export function fleetJsonSchema(): Record<string, unknown> {
  const generated = zodToJsonSchema(fleetSchema, {
    $refStrategy: 'none',
    effectStrategy: 'input',
    pipeStrategy: 'input',
    target: 'jsonSchema7',
    // The user-name regex is case-insensitive (/i): JSON Schema patterns have no flags, so spell it out.
    applyRegexFlags: true,
    override: (def) => overrides.get(def) ?? ignoreOverride,
  }) as Record<string, unknown>;
  const { $schema, ...rest } = generated;
  return {
    $schema,
    title: 'graceroll fleet config',
    description:
      'A fleet for `graceroll restart-fleet`. Generated from src/lib/config/schema.ts by `npm run schema`; do not edit.',
    ...rest,
  };
}

export const fleetJsonSchemaText = (): string => `${JSON.stringify(fleetJsonSchema(), null, 2)}\n`;

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/lib/config/duration.js';
import { signalName } from '../../src/lib/config/fields.js';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import { FLEET_SCHEMA_FILE, fleetJsonSchema, fleetJsonSchemaText } from '../../scripts/fleet-json-schema.js';
import { repoRoot } from '../helpers/cli.js';
import { compile, describeErrors } from '../helpers/json-schema.js';

const validate = compile(fleetJsonSchema());
const examplesDir = join(repoRoot, 'examples');
const examples = readdirSync(examplesDir).filter((f) => f.endsWith('.yaml'));

/** The JSON Schema's verdict on a value at one field, by validating a minimal fleet around it. */
function acceptsAt(field: 'deadline' | 'signal', value: unknown): boolean {
  const service = {
    type: 'command',
    status: 's',
    restart: 'r',
    ...(field === 'signal' && { signal: value }),
  };
  return validate({
    service,
    nodes: [{ name: 'a' }],
    ...(field === 'deadline' && { drain: { deadline: value } }),
  });
}

describe('schema/fleet.schema.json', () => {
  it('is the committed output of the generator (run `npm run schema` when this fails)', () => {
    expect(readFileSync(join(repoRoot, FLEET_SCHEMA_FILE), 'utf8')).toBe(fleetJsonSchemaText());
  });

  it('there are examples to check', () => expect(examples.length).toBeGreaterThan(0));

  it.each(examples)(
    'examples/%s names the schema on its first line and validates against it and zod',
    (file) => {
      const text = readFileSync(join(examplesDir, file), 'utf8');
      expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../schema/fleet.schema.json');
      expect(validate(parse(text)), describeErrors(validate.errors)).toBe(true);
      expect(() => parseFleetYaml(text, file)).not.toThrow();
    },
  );

  it.each([
    [
      'an unknown top-level field',
      { service: { type: 'systemd', unit: 'web.service' }, nodes: [{ name: 'a' }], extra: 1 },
    ],
    ['no service', { nodes: [{ name: 'a' }] }],
    ['no nodes', { service: { type: 'systemd', unit: 'web.service' }, nodes: [] }],
    ['a unit name with a space', { service: { type: 'systemd', unit: 'a b' }, nodes: [{ name: 'a' }] }],
    ['an unknown service type', { service: { type: 'docker' }, nodes: [{ name: 'a' }] }],
    ['a non-integer port', { service: { type: 'systemd', unit: 'w' }, nodes: [{ name: 'a', port: 1.5 }] }],
  ])('rejects what zod rejects: %s', (_, config) => {
    expect(validate(config)).toBe(false);
    expect(() => parseFleetYaml(JSON.stringify(config), 'x.yaml')).toThrow();
  });

  it('accepts a user name in any case, as zod does (/i spelled out)', () => {
    const config = {
      transport: { type: 'ssh', user: 'Deploy' },
      service: { type: 'systemd', unit: 'w' },
      nodes: [{ name: 'a' }],
    };
    expect(validate(config), describeErrors(validate.errors)).toBe(true);
    expect(() => parseFleetYaml(JSON.stringify(config), 'x.yaml')).not.toThrow();
  });

  it.each([
    '500ms',
    '30s',
    '1.5m',
    '1h',
    '1m30s',
    '2d',
    ' 2s ',
    '0',
    250,
    0,
    '30',
    '1x',
    '-1s',
    's',
    '1.s',
    -5,
    '2 s',
    '1m 30s',
  ])('duration %j: the pattern agrees with parseDuration', (value) => {
    expect(acceptsAt('deadline', value)).toBe(parseDuration(value).ok);
  });

  it.each(['TERM', 'term', 'SIGTERM', 'sigusr1', 'Usr2', 'KILL', 'SIGSIGTERM', 'TERMINATE', 'USR3', '', '9'])(
    'signal %j: the pattern agrees with the zod signal field',
    (value) => {
      expect(acceptsAt('signal', value)).toBe(signalName.safeParse(value).success);
    },
  );
});

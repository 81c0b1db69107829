import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Writable } from 'node:stream';
import { parse } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';
import { fleetJsonSchema } from '../../scripts/fleet-json-schema.js';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import { ExitCode, GracerollError } from '../../src/lib/exit-codes.js';
import { buildFleetParts } from '../../src/lib/fleet-parts.js';
import {
  INIT_LOAD_BALANCERS,
  INIT_SERVICES,
  INIT_TRANSPORTS,
  initConfig,
  schemaReference,
  starterConfig,
} from '../../src/lib/init-config.js';
import { planRollout } from '../../src/lib/plan/plan-rollout.js';
import { repoRoot, tempDir } from '../helpers/cli.js';
import { compile, describeErrors } from '../helpers/json-schema.js';

const dir = tempDir('graceroll-init-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const schemaFile = join(repoRoot, 'schema/fleet.schema.json');
const validate = compile(fleetJsonSchema());

const combinations = INIT_TRANSPORTS.flatMap((transport) =>
  INIT_LOAD_BALANCERS.flatMap((lb) => INIT_SERVICES.map((service) => ({ transport, lb, service }))),
);

describe('graceroll init: the starter config', () => {
  it('covers every combination of --transport, --lb and --service', () => {
    expect(combinations).toHaveLength(12);
  });

  it.each(combinations)(
    '--transport $transport --lb $lb --service $service: accepted by the loader, the JSON Schema and the planner',
    (options) => {
      const text = starterConfig({
        ...options,
        schemaRef: '../schema/fleet.schema.json',
        fileName: 'fleet.yaml',
      });
      const fleet = parseFleetYaml(text, 'fleet.yaml');
      expect(fleet.transport.type).toBe(options.transport);
      expect(fleet.loadBalancer.type).toBe(options.lb);
      expect(fleet.service.type).toBe(options.service);
      expect(validate(parse(text)), describeErrors(validate.errors)).toBe(true);
      // What --dry-run does: build the adapters (nothing connects) and plan every step.
      const plan = planRollout(
        fleet,
        buildFleetParts(fleet, () => undefined),
      );
      expect(plan.batches.length).toBeGreaterThan(0);
    },
  );

  it('names the schema on its first line, by a path relative to the file', async () => {
    const output = join(dir, 'conf', 'fleet.yaml');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dirname(output), { recursive: true });
    const { text } = await initConfig(output, combinations[0], schemaFile, false, process.stdout);
    const ref = /^# yaml-language-server: \$schema=(\S+)$/m.exec(text.split('\n')[0])![1];
    expect(ref).not.toMatch(/^\//);
    expect(resolve(dirname(output), ref)).toBe(schemaFile);
    expect(schemaReference('/p/fleet.yaml', '/p/node_modules/graceroll/schema/fleet.schema.json')).toBe(
      'node_modules/graceroll/schema/fleet.schema.json',
    );
  });

  it('refuses to replace an existing file without force, and leaves it as it was', async () => {
    const output = join(dir, 'existing.yaml');
    writeFileSync(output, 'mine\n');
    const attempt = initConfig(output, combinations[0], schemaFile, false, process.stdout);
    await expect(attempt).rejects.toBeInstanceOf(GracerollError);
    await expect(attempt).rejects.toMatchObject({ exitCode: ExitCode.usage });
    expect(readFileSync(output, 'utf8')).toBe('mine\n');
    await initConfig(output, combinations[0], schemaFile, true, process.stdout);
    expect(readFileSync(output, 'utf8')).toMatch(/^# yaml-language-server/);
  });

  it('-o - prints the config and writes no file', async () => {
    let printed = '';
    const stdout = new Writable({
      write(chunk: Buffer, _encoding, done) {
        printed += chunk.toString();
        done();
      },
    });
    const result = await initConfig('-', combinations[0], schemaFile, false, stdout);
    expect(result.path).toBe('-');
    expect(printed).toBe(result.text);
    expect(existsSync('-')).toBe(false);
  });
});

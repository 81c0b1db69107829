import { rmSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { jsonLines, runCli, tempDir } from '../helpers/cli.js';
import { closeObjects, compile, describeErrors, readSchema } from '../helpers/json-schema.js';
import { sleeperFleet } from '../helpers/sleepers.js';

const dir = tempDir();
const fleets: ReturnType<typeof sleeperFleet>[] = [];
afterEach(() => fleets.splice(0).forEach((f) => f.kill()));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Closed: a field the CLI prints that schema/events.schema.json does not document fails too.
const validate = compile(closeObjects(readSchema('events.schema.json')));

function expectEveryLineValid(stdout: string) {
  const lines = jsonLines(stdout);
  expect(lines.length).toBeGreaterThan(0);
  for (const line of lines)
    expect(validate(line), `${JSON.stringify(line)}\n${describeErrors(validate.errors)}`).toBe(true);
  return lines;
}

describe('--json output matches schema/events.schema.json (through the CLI)', () => {
  it('every line of a rollout with an escalation, a failed node and a skipped one', async () => {
    const fleet = sleeperFleet(dir, {
      lb: true,
      ignoreTerm: ['a'],
      unhealthyAfterRestart: ['b'],
      drainDeadline: '300ms',
    });
    fleets.push(fleet);
    fleet.start();
    const { code, stdout, stderr } = await runCli(['restart-fleet', '-c', fleet.config, '--json', '--yes']);
    expect(code, stderr).toBe(1);
    const events = expectEveryLineValid(stdout);
    const kinds = new Set(events.map((e) => e.kind));
    for (const kind of [
      'rollout-start',
      'preflight-end',
      'batch-start',
      'step-start',
      'step-end',
      'escalation',
      'node-end',
      'batch-end',
    ])
      expect(kinds).toContain(kind);
    expect(events.at(-1)!.report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual([
      'forced',
      'failed',
      'skipped',
    ]);
  });

  it('the line of a refused preflight', async () => {
    const fleet = sleeperFleet(dir);
    const { code, stdout } = await runCli(['restart-fleet', '-c', fleet.config, '--json', '--yes']);
    expect(code).toBe(3);
    expect(expectEveryLineValid(stdout).at(-1)!.report.status).toBe('preflight-refused');
  });

  it('the one line of --dry-run --json', async () => {
    const fleet = sleeperFleet(dir, { lb: true });
    const { code, stdout } = await runCli(['restart-fleet', '-c', fleet.config, '--json', '--dry-run']);
    expect(code).toBe(0);
    expect(expectEveryLineValid(stdout).map((l) => l.kind)).toEqual(['plan']);
  });
});

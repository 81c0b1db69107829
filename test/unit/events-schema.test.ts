import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import {
  EVENT_SCHEMA_VERSION,
  type EventKind,
  type RolloutEvent,
  type RolloutReport,
  type Stamped,
} from '../../src/lib/engine/events.js';
import { runRollout } from '../../src/lib/engine/run-rollout.js';
import { buildFleetParts } from '../../src/lib/fleet-parts.js';
import { lineFor } from '../../src/lib/output/lines.js';
import { planRollout } from '../../src/lib/plan/plan-rollout.js';
import { STEPS } from '../../src/lib/plan/types.js';
import { repoRoot } from '../helpers/cli.js';
import { FakeFleet, testFleet, type FakeNodeBehaviour } from '../helpers/fake-fleet.js';
import { closeObjects, compile, describeErrors, readSchema } from '../helpers/json-schema.js';

interface Definition {
  properties: Record<string, { const?: string }>;
  enum?: string[];
  const?: unknown;
}
const schema = readSchema('events.schema.json') as {
  oneOf: { $ref: string }[];
  definitions: Record<string, Definition>;
};
const validate = compile(closeObjects(schema));
const time = '2026-01-01T00:00:00.000Z';

function expectValid(line: unknown) {
  expect(validate(line), `${JSON.stringify(line)}\n${describeErrors(validate.errors)}`).toBe(true);
}

const report: RolloutReport = {
  fleet: 'web',
  status: 'failed',
  startedAt: time,
  durationMs: 1234.5,
  nodes: [
    {
      node: 'web1',
      outcome: 'failed',
      inRotation: false,
      phases: { deregister: 1, drain: 2.5 },
      escalations: ['SIGKILL: pid 7 still running'],
      oldProcess: { pid: 7, startTime: '123' },
      newProcess: { pid: 8, startTime: '456' },
      reason: 'not healthy',
      action: 'web1 is OUT of rotation',
    },
  ],
  outOfRotation: ['web1'],
  problems: ['halted: 1 failed node (budget 0)'],
};

/**
 * One event of every kind with every optional field set. The mapped type makes a kind added to
 * events.ts without a sample here a type error (`npm run typecheck`); a field added to an event type
 * without the schema documenting it fails validation against the closed schema.
 */
const samples: { [K in EventKind]: Extract<RolloutEvent, { kind: K }> } = {
  'rollout-start': {
    kind: 'rollout-start',
    fleet: 'web',
    nodes: ['web1', 'web2'],
    batches: [['web1'], ['web2']],
  },
  preflight: { kind: 'preflight', node: 'web1', ok: true, detail: 'running pid 7' },
  'preflight-end': { kind: 'preflight-end', ok: false, problems: ['web2: unreachable'] },
  'batch-start': { kind: 'batch-start', batch: 0, canary: true, nodes: ['web1'] },
  'step-start': { kind: 'step-start', node: 'web1', step: 'drain', detail: 'process-exited' },
  'step-progress': { kind: 'step-progress', node: 'web1', step: 'drain', detail: 'pid 7 still running' },
  'step-end': {
    kind: 'step-end',
    node: 'web1',
    step: 'drain',
    ok: true,
    durationMs: 12.5,
    detail: 'drained',
  },
  escalation: { kind: 'escalation', node: 'web1', signal: 'SIGKILL', stillInFlight: 'pid 7 still running' },
  hook: {
    kind: 'hook',
    node: 'web1',
    hook: 'afterRestart',
    command: 'curl -fsS http://web1/warm',
    ok: false,
    durationMs: 3,
    output: 'curl: (7) refused',
  },
  pause: { kind: 'pause', batch: 0, detail: 'canary done; waiting for confirmation' },
  'node-end': {
    kind: 'node-end',
    node: 'web1',
    outcome: 'failed',
    inRotation: false,
    durationMs: 99,
    reason: 'not healthy',
  },
  'batch-end': { kind: 'batch-end', batch: 0, failed: ['web1'] },
  interrupt: { kind: 'interrupt', signal: 'SIGINT', count: 1, detail: 'finishing the nodes in flight' },
  warning: { kind: 'warning', node: 'web1', message: 'back in rotation' },
  'rollout-end': { kind: 'rollout-end', report },
};

const stamp = (event: RolloutEvent): Stamped => ({ v: EVENT_SCHEMA_VERSION, time, ...event });
const eventDefinitions = schema.oneOf.map((entry) => entry.$ref.replace('#/definitions/', ''));
const kindOf = (name: string) => schema.definitions[name].properties.kind.const;

describe('schema/events.schema.json', () => {
  it('documents exactly the event kinds of RolloutEvent, plus the dry-run plan line', () => {
    // lineFor is a mapped type over every kind: tsc fails the build when events.ts gains a kind it lacks.
    const kinds = Object.keys(lineFor).sort();
    expect(eventDefinitions.map(kindOf).sort()).toEqual([...kinds, 'plan'].sort());
    expect(Object.keys(samples).sort()).toEqual(kinds);
  });

  it('its stream version is the one the CLI stamps', () => {
    expect(schema.definitions.v).toMatchObject({ const: EVENT_SCHEMA_VERSION });
  });

  it('its step names are the pipeline steps, in order', () => {
    expect(schema.definitions.step.enum).toEqual([...STEPS]);
  });

  it.each(Object.keys(samples) as EventKind[])('a %s event with every field validates', (kind) => {
    expectValid(stamp(samples[kind]));
  });

  it('rejects an event of an unknown kind, without a time, or with an undocumented field', () => {
    expect(validate(stamp({ kind: 'nope' } as unknown as RolloutEvent))).toBe(false);
    const { time: _time, ...untimed } = stamp(samples.warning);
    expect(validate(untimed)).toBe(false);
    expect(validate({ ...stamp(samples.warning), extra: 1 })).toBe(false);
  });

  it.each<[string, Record<string, FakeNodeBehaviour>, Record<string, unknown>]>([
    ['a clean rollout', {}, {}],
    [
      'escalation, a failed node, a halt',
      { web1: { ignoresGracefulSignal: true }, web2: { unhealthyAfterRestart: true } },
      {},
    ],
    ['a refused preflight', { web3: { unreachable: true } }, {}],
    [
      'concurrent batches, a canary, a pause, hooks',
      {},
      {
        rollout: { batchSize: 2, canary: 1, pauseAfterCanary: '1ms' },
        hooks: { afterRestart: ['warm {node}'] },
      },
    ],
  ])('every event the engine emits validates: %s', async (_, behaviours, overrides) => {
    const events: Stamped[] = [];
    const fake = new FakeFleet(testFleet(overrides, 3), behaviours);
    const parts = {
      ...fake.parts(),
      emit: (e: RolloutEvent) => events.push(JSON.parse(JSON.stringify(stamp(e)))),
    };
    const never = { stop: new AbortController().signal, abort: new AbortController().signal };
    await runRollout(planRollout(fake.fleet, parts), parts, never);
    expect(events.at(-1)?.kind).toBe('rollout-end');
    for (const event of events) expectValid(event);
  });

  it('the dry-run plan line of the shipped example validates', () => {
    const source = join(repoRoot, 'examples/systemd-haproxy.yaml');
    const fleet = parseFleetYaml(readFileSync(source, 'utf8'), source);
    const parts = buildFleetParts(fleet, () => undefined);
    const plan = planRollout(fleet, parts);
    expectValid(JSON.parse(JSON.stringify({ v: EVENT_SCHEMA_VERSION, kind: 'plan', plan })));
  });
});

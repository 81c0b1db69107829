// Drill 8 (interruption) against a real fleet (test/lab), under load through HAProxy.
// graceroll is signalled with SIGINT once, and twice, at each step boundary of the first node —
// after `deregister` ended, after `signal` ended, during `drain`, during `restart`, during `verify` —
// timed on its own --json event stream. Afterwards:
//   - exit 130 and report status "interrupted";
//   - every node is in rotation and healthy (HAProxy UP, /health 200), or named in the report's
//     outOfRotation AND in the journal with inRotation=false: zero nodes silently out;
//   - once: the node in flight finishes its pipeline and is back in rotation; later nodes untouched;
//   - 0 failed requests through the LB (nothing unhealthy is ever put back into rotation).
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startLoad } from '../fixtures/load/load.js';
import { labAvailable, startLab, type Lab } from '../lab/lab.js';
import { sleep, waitFor } from '../lab/proc.js';
import {
  accountForNodes,
  brief,
  fetchStream,
  labRequired,
  readJournal,
  startRoll,
  stepEvent,
  streamCut,
} from '../helpers/drill.js';
import {
  describeRoll,
  labFleetConfig,
  mainPids,
  removeLabFleets,
  restoreLab,
  waitForBuiltCli,
  type JsonEvent,
} from '../helpers/lab-fleet.js';

const available = labAvailable();
const skipped = available.ok ? '' : ` (skipped: ${available.reason})`;
const TEST_MS = 150_000;
const DIRECT_STREAM_MS = 8000;

describe.runIf(!available.ok && labRequired)('lab availability (interrupt drills)', () => {
  it('is available (CI requires it)', () => {
    expect(available.reason).toBe('');
  });
});

/** Where to interrupt: the first event of node1 that marks the boundary. */
/** Where to interrupt: the first event of node1 that marks the boundary, and the step it lands in. */
const BOUNDARIES: [string, (e: JsonEvent) => boolean, string][] = [
  ['after deregister ended', stepEvent('step-end', 'node1', 'deregister'), 'lb-drain'],
  ['after signal ended', stepEvent('step-end', 'node1', 'signal'), 'drain'],
  ['during drain', stepEvent('step-start', 'node1', 'drain'), 'drain'],
  ['during restart', stepEvent('step-start', 'node1', 'restart'), 'restart'],
  ['during verify', stepEvent('step-start', 'node1', 'verify'), 'verify'],
];

describe.skipIf(!available.ok)(`interrupting a roll at every step boundary${skipped}`, () => {
  let lab: Lab;

  beforeAll(async () => {
    await waitForBuiltCli();
    lab = await startLab({ nodes: 3 });
    console.log(`[lab-interrupt] ${lab.prefix}: 3 nodes + LB ready in ${lab.startMs} ms`);
  }, 180_000);

  afterAll(async () => {
    removeLabFleets();
    await lab?.stop();
  }, 120_000);

  beforeEach(async () => {
    await restoreLab(lab);
  }, 60_000);

  const cases = BOUNDARIES.flatMap(([where, at, step]) => [
    { name: `SIGINT once ${where}`, where, at, step, twice: false },
    { name: `SIGINT twice ${where}`, where, at, step, twice: true },
  ]);

  it.each(cases)(
    '$name: exit 130, no node silently out, 0 failed requests',
    async ({ where, at, step, twice }) => {
      const label = `${twice ? 'SIGINT x2' : 'SIGINT x1'} ${where}`;
      const fleet = labFleetConfig(lab, {
        // Slow enough that each boundary is reachable: 3 consecutive health passes 300 ms apart.
        drainDeadline: '20s',
        deadlines: { verify: '20s' },
      });
      const before = await mainPids(lab);
      const load = startLoad({
        url: lab.lb.url,
        connections: 20,
        slowPercent: 10,
        slowMs: [200, 1500],
        maxDurationMs: 120_000,
      });
      await waitFor('load to flow', () => load.stats().ok > 100, 10_000);

      // A client connected to node1 directly, streaming for 8 s: the `connections` drain probe waits
      // for it, so node1's drain lasts seconds and both signals land where they are aimed.
      const roll = await startRoll(fleet);
      await roll.waitForEvent((e) => e.kind === 'rollout-start', 'rollout-start');
      const direct = fetchStream(lab.nodes[0].url, DIRECT_STREAM_MS);
      await roll.waitForEvent(at, `node1 ${where}`);
      roll.signal('SIGINT');
      if (twice) {
        // 50 ms later: soon enough to land in the same step even when it is short (restart).
        await sleep(50);
        roll.signal('SIGINT');
      }
      const result = await roll.done;
      await sleep(500);
      const loadResult = await load.stop();
      const stream = await direct;
      const journal = readJournal(fleet);
      const { views, problems } = await accountForNodes(lab, result.report, journal);
      const after = await mainPids(lab);
      // The step node1 was in when each interrupt arrived (the last step-start before it).
      const landedIn = result.events
        .map((e, i) =>
          e.kind === 'interrupt'
            ? result.events.slice(0, i).findLast((p) => p.kind === 'step-start' && p.node === 'node1')?.step
            : undefined,
        )
        .filter(Boolean);
      const node1Events = result.events
        .filter((e) => e.node === 'node1' || e.kind === 'interrupt' || e.kind === 'warning')
        .map(
          (e) =>
            `${e.kind}${e.step ? ` ${e.step}` : ''}${e.ok === undefined ? '' : e.ok ? ' ok' : ' FAIL'}${e.detail ? `: ${e.detail}` : ''}${e.reason ? `: ${e.reason}` : ''}${e.message ? `: ${e.message}` : ''}`,
        );
      console.log(
        `[lab-interrupt] ${label}: interrupts landed in ${JSON.stringify(landedIn)}; ${brief(result)}; load ${JSON.stringify(loadResult)}; direct stream ${JSON.stringify(stream)}; views ${JSON.stringify(views)}\n  node1: ${node1Events.join('\n  node1: ')}`,
      );

      expect(result.code, describeRoll(result)).toBe(130);
      expect(result.report?.status).toBe('interrupted');
      const interrupts = result.events.filter((e) => e.kind === 'interrupt');
      expect(interrupts.map((e) => e.count)).toEqual(twice ? [1, 2] : [1]);
      expect(interrupts[0].signal).toMatch(/SIGINT/);
      // The first signal landed where it was aimed (the second is logged: it follows 50 ms later).
      expect(landedIn[0]).toBe(step);
      expect(problems).toEqual([]);
      // Every node the report names out is out in HAProxy too (the report does not cry wolf silently either way).
      for (const name of result.report?.outOfRotation ?? []) {
        expect(journal?.nodes[name]?.inRotation, `${name} in the journal`).toBe(false);
      }
      // No new node is started after the first signal.
      for (const node of ['node2', 'node3']) {
        expect(
          result.events.some((e) => e.kind === 'step-start' && e.node === node),
          node,
        ).toBe(false);
        expect(after[node], `${node} untouched`).toBe(before[node]);
      }
      const node1 = result.report?.nodes.find((n) => n.node === 'node1');
      expect(node1).toBeDefined();
      if (!twice) {
        // The node in flight finishes its pipeline and is back in rotation.
        expect(node1?.inRotation, JSON.stringify(node1)).toBe(true);
        expect(result.report?.outOfRotation).toEqual([]);
        expect(views.find((v) => v.node === 'node1')).toMatchObject({ haproxy: 'UP', health: 200 });
        expect(after.node1).not.toBe(before.node1);
      } else if (!node1?.inRotation) {
        // Cut short: left out, and named everywhere.
        expect(result.report?.outOfRotation).toContain('node1');
        expect(node1?.action ?? node1?.reason ?? '').toMatch(/node1|rotation/i);
      }
      expect(loadResult.errors).toEqual({});
      expect(loadResult.failed).toBe(0);
      expect(loadResult.sent).toBeGreaterThan(100);
      // Interrupted or not, graceroll never cuts off the client in flight on the draining node.
      expect(streamCut(stream, DIRECT_STREAM_MS), JSON.stringify(stream)).toBe(false);
    },
    TEST_MS,
  );
});

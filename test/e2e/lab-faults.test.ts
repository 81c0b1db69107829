// graceroll against a real fleet (test/lab) when nodes misbehave. One lab of 4 nodes:
//   node2 ignores the graceful signal (SIGUSR1) and only stops on SIGTERM;
//   node3 comes back unhealthy after a restart (/health 500 from its 2nd start on).
//   c. ignore-signal: escalation at the drain deadline, named in the events and the plain output; the
//      roll goes on (0 failed requests). With onDeadline: halt the roll stops, the node stays out
//      of rotation and named, later nodes are untouched.
//   d. unhealthy-after-restart: the roll stops, the node stays out of rotation and named, later nodes
//      untouched, and the load (sent elsewhere) sees no failure.
//   And a node whose systemctl predates systemd 252 (no --kill-whom=) still gets the graceful signal.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startLoad } from '../fixtures/load/load.js';
import { labAvailable, startLab, type Lab } from '../lab/lab.js';
import { shq, sleep, waitFor } from '../lab/proc.js';
import {
  describeRoll,
  labFleetConfig,
  mainPids,
  removeLabFleets,
  restoreLab,
  rollFleet,
  stepEnds,
  waitForBuiltCli,
  type LabFleetOptions,
  type RollResult,
} from '../helpers/lab-fleet.js';

const available = labAvailable();
// In CI the lab must run: a missing package is a failure there, not a silent skip.
const required = process.env.CI === 'true' || process.env.GRACEROLL_REQUIRE_LAB === '1';
const skipped = available.ok ? '' : ` (skipped: ${available.reason})`;
const TEST_MS = 180_000;

describe.runIf(!available.ok && required)('lab availability (faults)', () => {
  it('is available (CI requires it)', () => {
    expect(available.reason).toBe('');
  });
});

describe.skipIf(!available.ok)(`graceroll on a misbehaving fleet${skipped}`, () => {
  let lab: Lab;
  /** Short deadlines so each fault shows within seconds; escalation TERM then KILL. */
  const faultOptions: LabFleetOptions = {
    drainDeadline: '3s',
    escalation: [
      { signal: 'TERM', deadline: '5s' },
      { signal: 'KILL', deadline: '3s' },
    ],
    deadlines: { verify: '5s' },
  };

  beforeAll(async () => {
    await waitForBuiltCli();
    lab = await startLab({
      nodes: 4,
      serviceMode: { node2: 'ignore-signal', node3: 'unhealthy-after-restart' },
    });
    console.log(`[lab-faults] ${lab.prefix}: 4 nodes + LB ready in ${lab.startMs} ms`);
  }, 180_000);

  afterAll(async () => {
    removeLabFleets();
    await lab?.stop();
  }, 120_000);

  beforeEach(async () => {
    await restoreLab(lab);
  }, 60_000);

  /** Runs a roll under load through the LB; returns both, with MainPIDs before and after. */
  async function underLoad(label: string, roll: () => Promise<RollResult>) {
    const nodes = lab.nodes.map((n) => n.name);
    const before = await mainPids(lab, nodes);
    const load = startLoad({
      url: lab.lb.url,
      connections: 40,
      slowPercent: 10,
      slowMs: [200, 2000],
      maxDurationMs: 170_000,
    });
    await waitFor('load to flow', () => load.stats().ok > 100, 10_000);
    const result = await roll();
    await sleep(500);
    const loadResult = await load.stop();
    const after = await mainPids(lab, nodes);
    console.log(
      `[lab-faults] ${label}: exit ${result.code}, roll ${result.durationMs} ms, load ${JSON.stringify(loadResult)}`,
    );
    return { roll: result, load: loadResult, before, after };
  }

  it(
    'c. a node that ignores the graceful signal is escalated at the drain deadline; the roll goes on',
    async () => {
      const fleet = labFleetConfig(lab, { ...faultOptions, nodes: ['node1', 'node2', 'node4'] });
      const { roll, load, before, after } = await underLoad('ignore-signal, escalate', () =>
        rollFleet(fleet),
      );

      // Every node is back, but node2's drain was forced: its own status and exit code (6).
      expect(roll.code, describeRoll(roll)).toBe(6);
      expect(roll.report?.status).toBe('forced');
      const escalations = roll.events.filter((e) => e.kind === 'escalation');
      expect(escalations.map((e) => [e.node, e.signal])).toEqual([['node2', 'SIGTERM']]);
      expect(escalations[0].stillInFlight).toMatch(/still running/);
      const drain2 = stepEnds(roll.events, 'drain').find((e) => e.node === 'node2');
      expect(drain2?.detail).toMatch(/not drained within 3s/);
      expect(drain2?.durationMs).toBeGreaterThanOrEqual(3000);
      const report2 = roll.report?.nodes.find((n) => n.node === 'node2');
      expect(report2).toMatchObject({ outcome: 'forced', inRotation: true, forced: { how: 'escalated' } });
      expect(report2?.escalations).toEqual([expect.stringMatching(/^SIGTERM: /)]);
      for (const node of ['node1', 'node2', 'node4']) expect(after[node]).not.toBe(before[node]);
      expect(after.node3).toBe(before.node3); // not in this fleet

      expect(load.errors).toEqual({});
      expect(load.failed).toBe(0);
      expect(load.sent).toBeGreaterThan(1000);
      expect(Object.values(await lab.serverStatuses())).toEqual(['UP', 'UP', 'UP', 'UP']);
    },
    TEST_MS,
  );

  it(
    'c. the plain output and its summary name the escalated node',
    async () => {
      const fleet = labFleetConfig(lab, { ...faultOptions, nodes: ['node1', 'node2', 'node4'] });
      const roll = await rollFleet(fleet, { json: false, args: ['--nodes', 'node2'] });
      console.log(`[lab-faults] ignore-signal, plain output: exit ${roll.code}, roll ${roll.durationMs} ms`);
      expect(roll.code, `${roll.stdout}\n${roll.stderr}`).toBe(6);
      expect(roll.stdout).toMatch(/ node2 ESCALATION: sending SIGTERM; still in flight: .*still running/);
      // The summary after the table: which node was escalated, and why.
      const summary = roll.stdout.slice(roll.stdout.lastIndexOf('\nnode '));
      expect(summary).toMatch(/^\s*node2: escalated: SIGTERM: /m);
      expect(summary).toMatch(/^\s*node2: FORCED drain \(escalated\): SIGTERM while /m);
      expect(summary).toMatch(/rollout forced/);
    },
    TEST_MS,
  );

  it(
    'c. with onDeadline: halt the roll stops at that node, leaves it out of rotation and named',
    async () => {
      const fleet = labFleetConfig(lab, {
        ...faultOptions,
        onDeadline: 'halt',
        nodes: ['node1', 'node2', 'node4'],
      });
      const { roll, load, before, after } = await underLoad('ignore-signal, halt', () => rollFleet(fleet));

      expect(roll.code, describeRoll(roll)).toBe(1);
      expect(roll.report?.status).toBe('failed');
      expect(roll.report?.outOfRotation).toEqual(['node2']);
      expect(roll.report?.nodes.map((n) => [n.node, n.outcome])).toEqual([
        ['node1', 'done'],
        ['node2', 'failed'],
        ['node4', 'skipped'],
      ]);
      const report2 = roll.report?.nodes.find((n) => n.node === 'node2');
      expect(report2?.reason).toMatch(/did not drain/);
      expect(report2?.action).toMatch(/node2 is OUT of rotation/);
      expect(roll.events.filter((e) => e.kind === 'escalation')).toEqual([]);

      const statuses = await lab.serverStatuses();
      expect(statuses.node2).toBe('MAINT');
      expect([statuses.node1, statuses.node3, statuses.node4]).toEqual(['UP', 'UP', 'UP']);
      expect(after.node1).not.toBe(before.node1);
      // node2 still runs the process that ignored the signal; node4 was never touched.
      expect(after.node2).toBe(before.node2);
      expect(after.node4).toBe(before.node4);
      expect(roll.events.some((e) => e.node === 'node4' && e.kind === 'step-start')).toBe(false);

      expect(load.errors).toEqual({});
      expect(load.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    'd. a node that comes back unhealthy stops the roll and stays out of rotation',
    async () => {
      const fleet = labFleetConfig(lab, { ...faultOptions, nodes: ['node1', 'node3', 'node4'] });
      const { roll, load, before, after } = await underLoad('unhealthy-after-restart', () =>
        rollFleet(fleet),
      );

      expect(roll.code, describeRoll(roll)).toBe(1);
      expect(roll.report?.status).toBe('failed');
      expect(roll.report?.outOfRotation).toEqual(['node3']);
      expect(roll.report?.nodes.map((n) => [n.node, n.outcome])).toEqual([
        ['node1', 'done'],
        ['node3', 'failed'],
        ['node4', 'skipped'],
      ]);
      const report3 = roll.report?.nodes.find((n) => n.node === 'node3');
      expect(report3?.reason).toMatch(/not healthy/);
      expect(report3?.action).toMatch(/node3 is OUT of rotation/);
      expect(stepEnds(roll.events, 'verify').find((e) => e.node === 'node3')?.ok).toBe(false);
      expect(stepEnds(roll.events, 'register').map((e) => e.node)).toEqual(['node1']);

      const statuses = await lab.serverStatuses();
      expect(['MAINT', 'DRAIN']).toContain(statuses.node3);
      expect([statuses.node1, statuses.node2, statuses.node4]).toEqual(['UP', 'UP', 'UP']);
      expect(after.node1).not.toBe(before.node1);
      expect(after.node3).not.toBe(before.node3); // restarted, but unhealthy
      expect(after.node4).toBe(before.node4);
      expect(roll.events.some((e) => e.node === 'node4' && e.kind === 'step-start')).toBe(false);

      expect(load.errors).toEqual({});
      expect(load.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    'a node whose systemctl predates systemd 252 (only --kill-who=) still gets the graceful signal',
    async () => {
      // systemctl as systemd < 252 parses its options: --kill-whom= is unknown there. The wrapper
      // lives in node4's own overlay (/usr/local/sbin comes first in root's PATH over SSH).
      const wrapper = [
        '#!/bin/sh',
        `for a in "$@"; do case "$a" in --kill-whom*) echo "systemctl: unrecognized option '$a'" >&2; exit 1;; esac; done`,
        'exec /usr/bin/systemctl "$@"',
      ].join('\n');
      const install = await lab.exec(
        'node4',
        `printf '%s\\n' ${shq(wrapper)} > /usr/local/sbin/systemctl && chmod +x /usr/local/sbin/systemctl`,
      );
      expect(install.code, install.stderr).toBe(0);
      try {
        const before = await mainPids(lab, ['node4']);
        const fleet = labFleetConfig(lab, { ...faultOptions, nodes: ['node4'] });
        const roll = await rollFleet(fleet);
        console.log(`[lab-faults] systemctl < 252: exit ${roll.code}, roll ${roll.durationMs} ms`);
        expect(roll.code, describeRoll(roll)).toBe(0);
        expect(stepEnds(roll.events, 'signal').map((e) => [e.ok, e.detail])).toEqual([
          [true, expect.stringMatching(/^SIGUSR1 sent/)],
        ]);
        // It drained on the graceful signal itself: no escalation was needed.
        expect(roll.events.filter((e) => e.kind === 'escalation')).toEqual([]);
        expect((await mainPids(lab, ['node4'])).node4).not.toBe(before.node4);
      } finally {
        await lab.exec('node4', 'rm -f /usr/local/sbin/systemctl');
      }
    },
    TEST_MS,
  );
});

import { describe, expect, it } from 'vitest';
import { runRollout } from '../../src/lib/engine/run-rollout.js';
import type { RolloutEvent } from '../../src/lib/engine/events.js';
import { planRollout } from '../../src/lib/plan/plan-rollout.js';
import { FakeFleet, testFleet, type FakeNodeBehaviour } from '../helpers/fake-fleet.js';

const never = () => ({ stop: new AbortController().signal, abort: new AbortController().signal });

async function roll(
  behaviours: Record<string, FakeNodeBehaviour> = {},
  overrides: Record<string, unknown> = {},
  control = never(),
) {
  const fake = new FakeFleet(testFleet(overrides), behaviours);
  const parts = fake.parts();
  const report = await runRollout(planRollout(fake.fleet, parts), parts, control);
  return { fake, report };
}

const kinds = (events: RolloutEvent[], kind: RolloutEvent['kind']) => events.filter((e) => e.kind === kind);

describe('engine', () => {
  it('rolls every node in order: out of rotation, signal, drain, restart, verify, back in', async () => {
    const { fake, report } = await roll({ web2: { drainChecks: 3, lbSessions: 2 } });
    expect(report.status).toBe('ok');
    expect(report.nodes.map((n) => n.outcome)).toEqual(['done', 'done', 'done']);
    expect(report.outOfRotation).toEqual([]);
    expect(fake.actions.filter((a) => a.startsWith('web1'))).toEqual([
      'web1:deregister',
      'web1:signal:USR1',
      'web1:restart',
      'web1:register',
    ]);
    // web1 is back in before web2 is touched.
    expect(fake.actions.indexOf('web1:register')).toBeLessThan(fake.actions.indexOf('web2:deregister'));
    for (const node of report.nodes) expect(node.newProcess?.pid).not.toBe(node.oldProcess?.pid);
    expect(report.nodes[1].phases.drain).toBeGreaterThan(0);
  });

  it('escalates at the drain deadline and names the node', async () => {
    const { fake, report } = await roll({ web1: { ignoresGracefulSignal: true } });
    expect(report.status).toBe('forced');
    expect(report.nodes[0]).toMatchObject({ outcome: 'forced', forced: { how: 'escalated' } });
    expect(fake.node('web1').signals).toEqual(['USR1', 'TERM']);
    const escalations = kinds(fake.events, 'escalation');
    expect(escalations).toMatchObject([{ node: 'web1', signal: 'SIGTERM' }]);
    expect(report.nodes[0].escalations[0]).toMatch(/SIGTERM: pid \d+ still running/);
  });

  it('escalates through the whole chain: TERM, then KILL', async () => {
    const { fake } = await roll({ web1: { onlyKillEndsIt: true } });
    expect(fake.node('web1').signals).toEqual(['USR1', 'TERM', 'KILL']);
  });

  it('halts at the drain deadline when the policy says halt, leaving the node out and named', async () => {
    const { fake, report } = await roll(
      { web1: { ignoresGracefulSignal: true } },
      { drain: { interval: '5ms', deadline: '50ms', onDeadline: 'halt' } },
    );
    expect(report.status).toBe('failed');
    expect(report.outOfRotation).toEqual(['web1']);
    expect(report.nodes.map((n) => n.outcome)).toEqual(['failed', 'skipped', 'skipped']);
    expect(fake.actions.some((a) => a.startsWith('web2'))).toBe(false);
    expect(report.nodes[0].action).toMatch(/web1 is OUT of rotation/);
  });

  it('stops at a node that comes back unhealthy; it stays out; later nodes are untouched', async () => {
    const { fake, report } = await roll({ web2: { unhealthyAfterRestart: true } });
    expect(report.status).toBe('failed');
    expect(report.nodes.map((n) => n.outcome)).toEqual(['done', 'failed', 'skipped']);
    expect(report.outOfRotation).toEqual(['web2']);
    expect(fake.actions).not.toContain('web2:register');
    expect(fake.actions.some((a) => a.startsWith('web3'))).toBe(false);
    expect(report.nodes[1].reason).toMatch(/verify|not healthy/);
  });

  it('spends a failure budget before halting', async () => {
    const { report } = await roll(
      { web1: { unhealthyAfterRestart: true } },
      { rollout: { maxFailures: 1, maxUnavailable: 2 } },
    );
    expect(report.nodes.map((n) => n.outcome)).toEqual(['failed', 'done', 'done']);
    expect(report.status).toBe('failed');
  });

  it('never has more nodes out of rotation than maxUnavailable, counting failed ones', async () => {
    const { fake, report } = await roll(
      { web1: { unhealthyAfterRestart: true } },
      { rollout: { maxFailures: 1 } },
    );
    expect(report.nodes.map((n) => n.outcome)).toEqual(['failed', 'skipped', 'skipped']);
    expect(report.problems.join()).toMatch(/1 node\(s\) out of rotation, maxUnavailable is 1/);
    expect(fake.actions.some((a) => a.startsWith('web2'))).toBe(false);
  });

  it('runs a canary batch, asks, and stops when the answer is no', async () => {
    const fake = new FakeFleet(testFleet({ rollout: { canary: 1, batchSize: 2 } }));
    const parts = fake.parts();
    const asked: string[][] = [];
    const report = await runRollout(planRollout(fake.fleet, parts), parts, never(), {
      continueAfterCanary: (canary) => (asked.push(canary), Promise.resolve(false)),
    });
    expect(asked).toEqual([['web1']]);
    expect(report.nodes.map((n) => n.outcome)).toEqual(['done', 'skipped', 'skipped']);
    expect(kinds(fake.events, 'pause')).toHaveLength(1);
  });

  it('runs the batch after the canary in parallel when the answer is yes', async () => {
    const fake = new FakeFleet(testFleet({ rollout: { canary: 1, batchSize: 2 } }));
    const parts = fake.parts();
    const report = await runRollout(planRollout(fake.fleet, parts), parts, never(), {
      continueAfterCanary: () => Promise.resolve(true),
    });
    expect(report.status).toBe('ok');
    expect(kinds(fake.events, 'batch-start').map((e) => (e as { nodes: string[] }).nodes)).toEqual([
      ['web1'],
      ['web2', 'web3'],
    ]);
  });

  it('accepts degraded nodes within the failure budget and refuses beyond it', async () => {
    const degraded = { web2: { unhealthyAfterRestart: true } };
    const fake = new FakeFleet(testFleet({ rollout: { maxFailures: 1, maxUnavailable: 2 } }), degraded);
    fake.node('web2').healthy = false;
    const parts = fake.parts();
    const report = await runRollout(planRollout(fake.fleet, parts), parts, never());
    expect(report.status).not.toBe('preflight-refused');
    const strict = new FakeFleet(testFleet(), degraded);
    strict.node('web2').healthy = false;
    const refused = await runRollout(planRollout(strict.fleet, strict.parts()), strict.parts(), never());
    expect(refused.status).toBe('preflight-refused');
    expect(refused.problems.join('\n')).toMatch(/web2: unhealthy/);
    expect(strict.actions).toEqual([]);
  });

  it('resuming skips finished nodes and restarts a node left stopped without signalling it', async () => {
    const fake = new FakeFleet(testFleet());
    fake.node('web2').process = undefined;
    fake.node('web2').lbState = 'maint';
    const parts = fake.parts();
    const report = await runRollout(planRollout(fake.fleet, parts), parts, never(), {
      alreadyDone: new Set(['web1']),
      reexamine: new Set(['web2']),
    });
    expect(report.status).toBe('ok');
    expect(fake.actions).toEqual([
      'web2:deregister',
      'web2:restart',
      'web2:register',
      'web3:deregister',
      'web3:signal:USR1',
      'web3:restart',
      'web3:register',
    ]);
    expect(report.nodes[0]).toMatchObject({ node: 'web1', outcome: 'done' });
  });

  it('runs hooks at step boundaries and fails the node when one fails', async () => {
    const fake = new FakeFleet(
      testFleet({
        hooks: {
          beforeSignal: ['withdraw-from-peers {node}'],
          afterRegister: [{ command: 'announce', on: 'controller' }],
        },
      }),
    );
    const parts = fake.parts();
    await runRollout(planRollout(fake.fleet, parts), parts, never());
    const hooks = kinds(fake.events, 'hook') as { node: string; hook: string; command: string }[];
    expect(hooks.filter((h) => h.node === 'web1').map((h) => `${h.hook}:${h.command}`)).toEqual([
      'beforeSignal:withdraw-from-peers web1',
      'afterRegister:announce',
    ]);
    const failing = new FakeFleet(testFleet({ hooks: { beforeSignal: ['false'] } }));
    failing.node('web1').healthy = true;
    const partsF = failing.parts();
    partsF.transportFor = (node) => ({
      ...failing.transportFor(node),
      exec: (cmd) =>
        Promise.resolve({
          code: 'shell' in cmd && cmd.shell === 'false' ? 1 : 0,
          stdout: '',
          stderr: 'peer refused',
        }),
    });
    const report = await runRollout(planRollout(failing.fleet, partsF), partsF, never());
    expect(report.nodes[0].outcome).toBe('failed');
    expect(report.nodes[0].reason).toMatch(/beforeSignal hook/);
    expect(failing.actions).not.toContain('web1:signal:USR1');
  });

  it('refuses to start when preflight finds a problem, touching nothing', async () => {
    const { fake, report } = await roll({ web3: { unreachable: true } });
    expect(report.status).toBe('preflight-refused');
    expect(report.problems.join()).toMatch(/web3: unreachable/);
    expect(fake.actions).toEqual([]);
  });

  it('a stop request starts no new node but finishes the one in flight', async () => {
    const stop = new AbortController();
    const fake = new FakeFleet(testFleet());
    const parts = fake.parts();
    parts.emit = (e) => {
      fake.events.push(e);
      if (e.kind === 'step-start' && e.node === 'web1' && e.step === 'drain') stop.abort();
    };
    const report = await runRollout(planRollout(fake.fleet, parts), parts, {
      stop: stop.signal,
      abort: new AbortController().signal,
    });
    expect(report.status).toBe('interrupted');
    expect(report.nodes.map((n) => n.outcome)).toEqual(['done', 'skipped', 'skipped']);
    expect(report.outOfRotation).toEqual([]);
  });

  it('an abort cuts waits short: the node is put back only if healthy, otherwise named', async () => {
    const abort = new AbortController();
    const fake = new FakeFleet(testFleet(), { web1: { ignoresGracefulSignal: true } });
    const parts = fake.parts();
    parts.emit = (e) => {
      fake.events.push(e);
      if (e.kind === 'step-start' && e.step === 'drain') abort.abort();
    };
    const report = await runRollout(planRollout(fake.fleet, parts), parts, {
      stop: abort.signal,
      abort: abort.signal,
    });
    expect(report.status).toBe('interrupted');
    expect(report.nodes[0].outcome).toBe('interrupted');
    // The signalled process is still running (draining): it must not go back into rotation.
    expect(report.outOfRotation).toEqual(['web1']);
    expect(fake.actions).not.toContain('web1:register');
  });

  it('an abort before the signal puts the still-healthy node back into rotation', async () => {
    const abort = new AbortController();
    const fake = new FakeFleet(testFleet(), { web1: { lbSessions: 1000 } });
    const parts = fake.parts();
    parts.emit = (e) => {
      fake.events.push(e);
      if (e.kind === 'step-start' && e.step === 'lb-drain') setTimeout(() => abort.abort(), 10);
    };
    const report = await runRollout(planRollout(fake.fleet, parts), parts, {
      stop: abort.signal,
      abort: abort.signal,
    });
    expect(report.nodes[0].outcome).toBe('interrupted');
    expect(report.outOfRotation).toEqual([]);
    expect(fake.actions).toEqual(['web1:deregister', 'web1:register']);
  });

  it('emits a step-end with a duration for every step-start', async () => {
    const { fake } = await roll();
    const starts = kinds(fake.events, 'step-start').length;
    expect(starts).toBeGreaterThan(0);
    expect(kinds(fake.events, 'step-end')).toHaveLength(starts);
    expect(fake.events.at(-1)?.kind).toBe('rollout-end');
  });
});

describe('only the signalled process is ever signalled', () => {
  it('a process the service manager started in place of the signalled one is not signalled, not restarted, and verified', async () => {
    const { fake, report } = await roll({ web1: { replacedByManager: true } }, {}, never());
    const web1 = report.nodes[0];
    expect(fake.node('web1').signals).toEqual(['USR1']);
    expect(fake.actions.filter((a) => a.startsWith('web1'))).toEqual([
      'web1:deregister',
      'web1:signal:USR1',
      'web1:register',
    ]);
    expect(web1.outcome).toBe('done');
    expect(web1.newProcess).toMatchObject({ startTime: 'by-manager' });
    expect(kinds(fake.events, 'warning').map((e) => (e as { message: string }).message)).toContainEqual(
      expect.stringMatching(/pid \d+ exited and the service manager started pid \d+/),
    );
  });

  it('a process that exits leaving its socket file behind ends the drain at once as forced, and nothing is escalated', async () => {
    const { fake, report } = await roll(
      { web1: { leavesSocketFile: true } },
      {
        drain: { interval: '5ms', deadline: '2s', probes: [{ type: 'socket-file', path: '/run/app.sock' }] },
      },
    );
    const web1 = report.nodes[0];
    expect(web1.outcome).toBe('forced');
    expect(web1.forced).toMatchObject({ how: 'exited-early' });
    expect(web1.forced?.detail).toMatch(
      /exited before it drained; still in flight: \/run\/app\.sock is still there/,
    );
    expect(web1.phases.drain).toBeLessThan(1000); // not the 2 s deadline
    expect(fake.node('web1').signals).toEqual(['USR1']); // no escalation
    expect(report.status).toBe('forced');
  });

  it('escalation stops when the signalled process is gone, and the replacement is left alone', async () => {
    // web1 ignores USR1; after TERM the manager restarts it: KILL must not reach the new process.
    const { fake, report } = await roll({ web1: { ignoresGracefulSignal: true } }, {});
    expect(fake.node('web1').signals).toEqual(['USR1', 'TERM']);
    expect(report.nodes[0].escalations).toHaveLength(1);
  });
});

describe('graceful by command, and long-lived connections', () => {
  it('runs the graceful command instead of the signal, with the PID filled in, and says so', async () => {
    const { fake, report } = await roll(
      { web1: { drainChecks: 2 } },
      {
        service: {
          type: 'command',
          status: 'status',
          restart: 'restart',
          signal: 'USR1',
          gracefulCommand: 'graceful-shutdown --pid {pid} {node}',
        },
      },
    );
    expect(report.status).toBe('ok');
    expect(fake.actions.filter((a) => a.startsWith('web1'))).toEqual([
      'web1:deregister',
      'web1:command:graceful-shutdown --pid 1000 web1',
      'web1:restart',
      'web1:register',
    ]);
    const signalEnd = fake.events.find(
      (e) => e.kind === 'step-end' && e.node === 'web1' && e.step === 'signal',
    );
    expect(signalEnd).toMatchObject({
      ok: true,
      detail: 'ran graceful-shutdown --pid 1000 web1 for pid 1000: shutting down',
    });
  });

  it('with lbSessions: with-drain the signal goes out at once and the LB sessions are waited for beside the drain', async () => {
    const { fake, report } = await roll(
      { web1: { lbSessions: 4 } },
      { drain: { interval: '5ms', deadline: '200ms', lbSessions: 'with-drain' } },
    );
    expect(report.status).toBe('ok');
    const steps = fake.events
      .filter((e) => e.kind === 'step-start' && e.node === 'web1')
      .map((e) => (e as { step: string }).step);
    expect(steps).not.toContain('lb-drain');
    expect(steps.indexOf('signal')).toBe(steps.indexOf('deregister') + 1);
    const drainEnd = fake.events.find(
      (e) => e.kind === 'step-end' && e.node === 'web1' && e.step === 'drain',
    );
    expect((drainEnd as { detail: string }).detail).toMatch(/load balancer sessions 0 after/);
  });

  it('with lbSessions: never there is no LB session wait at all', () => {
    const fake = new FakeFleet(
      testFleet({ drain: { interval: '5ms', deadline: '200ms', lbSessions: 'never' } }),
    );
    const plan = planRollout(fake.fleet, fake.parts());
    expect(plan.nodes[0].steps.map((s) => s.step)).not.toContain('lb-drain');
    expect(plan.nodes[0].steps.find((s) => s.step === 'drain')).not.toHaveProperty('lbSessions');
  });
});

describe('errors inside concurrent waits', () => {
  it('an LB that throws while its sessions are waited for beside the drain fails the node, never the process', async () => {
    const fake = new FakeFleet(
      testFleet({
        drain: {
          interval: '5ms',
          deadline: '100ms',
          lbSessions: 'with-drain',
          probes: [{ type: 'process-exited' }],
        },
      }),
      { web1: { drainChecks: 6 } },
    );
    const state = fake.lb.state.bind(fake.lb);
    let calls = 0;
    fake.lb.state = (node, signal) => {
      if (node.name === 'web1') calls += 1;
      // web1's 3rd look (preflight, deregister, then the sessions wait beside the drain) throws.
      if (node.name === 'web1' && calls === 3) throw new Error('LB client bug');
      return state(node, signal);
    };
    const parts = fake.parts();
    const report = await runRollout(planRollout(fake.fleet, parts), parts, never());
    expect(report.nodes[0]).toMatchObject({ outcome: 'failed' });
    expect(report.nodes[0].reason).toMatch(/unexpected error in drain: Error: LB client bug/);
    expect(fake.events.filter((e) => e.kind === 'rollout-end')).toHaveLength(1);
  });
});

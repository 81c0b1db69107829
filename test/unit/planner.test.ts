import { describe, expect, it } from 'vitest';
import { computeBatches, resolveCount } from '../../src/lib/plan/batches.js';
import { planRollout } from '../../src/lib/plan/plan-rollout.js';
import { parseFleet } from '../../src/lib/config/load-config.js';
import { createServiceManager } from '../../src/lib/service/index.js';
import { createLoadBalancer } from '../../src/lib/lb/index.js';
import type { Transport } from '../../src/lib/transport/types.js';

const noTransport: Transport = {
  node: 'none',
  connect: () => {
    throw new Error('the planner must not connect');
  },
  exec: () => {
    throw new Error('the planner must not run commands');
  },
  close: () => Promise.resolve(),
};

const names = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`);

describe('batches', () => {
  it('splits by count, with a canary first', () => {
    expect(computeBatches(names(5), 2, 0).map((b) => b.nodes)).toEqual([['n1', 'n2'], ['n3', 'n4'], ['n5']]);
    expect(computeBatches(names(5), 2, 1)).toEqual([
      { canary: true, nodes: ['n1'] },
      { canary: false, nodes: ['n2', 'n3'] },
      { canary: false, nodes: ['n4', 'n5'] },
    ]);
  });
  it('resolves percentages upward, at least one node', () => {
    expect(resolveCount('25%', 10, 1)).toBe(3);
    expect(resolveCount('1%', 10, 1)).toBe(1);
    expect(resolveCount('100%', 7, 1)).toBe(7);
    expect(computeBatches(names(10), '50%', 0).map((b) => b.nodes.length)).toEqual([5, 5]);
  });
  it('never plans more than the fleet', () => {
    expect(computeBatches(names(2), 10, 5).map((b) => b.nodes)).toEqual([['n1', 'n2']]);
  });
});

describe('planRollout', () => {
  const fleet = parseFleet(
    {
      name: 'web',
      transport: { type: 'ssh', user: 'deploy' },
      service: { type: 'systemd', unit: 'web.service', signal: 'SIGUSR1' },
      loadBalancer: { type: 'haproxy', socket: 'tcp:10.0.0.1:9999', backend: 'web' },
      health: { probes: [{ type: 'http', url: 'http://{host}:{vars.port}/health' }] },
      drain: { probes: [{ type: 'socket-file', path: '/run/web.sock' }] },
      rollout: { batchSize: 2, settle: '3s' },
      nodes: [
        { name: 'web1', host: '10.0.0.11', vars: { port: 8080 } },
        { name: 'web2', lbServer: 'srv2', vars: { port: 8080 } },
        { name: 'web3', vars: { port: 8080 } },
      ],
    },
    'fleet.yaml',
  );
  const parts = {
    service: createServiceManager(fleet.service),
    lb: createLoadBalancer(fleet.loadBalancer, {
      local: noTransport,
      transportTo: () => noTransport,
      timeoutMs: 1000,
    }),
  };
  const plan = planRollout(fleet, parts);

  it('lists every step of the pipeline with its deadline', () => {
    expect(plan.batches.map((b) => b.nodes)).toEqual([['web1', 'web2'], ['web3']]);
    expect(plan.nodes[0].steps.map((s) => s.step)).toEqual([
      'deregister',
      'lb-drain',
      'signal',
      'drain',
      'escalate',
      'restart',
      'verify',
      'register',
      'settle',
    ]);
    expect(plan.nodes[0].steps.find((s) => s.step === 'drain')?.deadlineMs).toBe(30_000);
  });

  it('gives the exact commands and API requests for each node', () => {
    const actions = plan.nodes[1].steps.flatMap((s) => s.actions.map((a) => a.run));
    expect(actions).toContain('haproxy tcp:10.0.0.1:9999: set server web/srv2 state drain');
    expect(actions).toContain('systemctl kill --signal=SIGUSR1 --kill-whom=main web.service');
    expect(actions).toContain('systemctl restart web.service');
    expect(plan.nodes[0].steps.find((s) => s.step === 'verify')?.actions.map((a) => a.run)).toContain(
      'GET http://10.0.0.11:8080/health → 200',
    );
    expect(actions).toContain('/run/web.sock absent (test -e /run/web.sock)');
  });

  it('leaves out load balancer steps when there is none', () => {
    const bare = parseFleet({ service: { type: 'systemd', unit: 'a.service' }, nodes: [{ name: 'a' }] }, 'f');
    const p = planRollout(bare, {
      service: createServiceManager(bare.service),
      lb: createLoadBalancer(bare.loadBalancer, {
        local: noTransport,
        transportTo: () => noTransport,
        timeoutMs: 1,
      }),
    });
    expect(p.nodes[0].steps.map((s) => s.step)).toEqual(['signal', 'drain', 'escalate', 'restart', 'verify']);
  });
});

describe('a safe default for maxUnavailable', () => {
  const fleetOf = (rollout: Record<string, unknown>, count = 4) =>
    parseFleet(
      {
        service: { type: 'systemd', unit: 'a.service' },
        rollout,
        nodes: Array.from({ length: count }, (_, i) => ({ name: `n${i + 1}` })),
      },
      'f',
    );
  const plan = (rollout: Record<string, unknown>, count?: number) => {
    const fleet = fleetOf(rollout, count);
    return planRollout(fleet, {
      service: createServiceManager(fleet.service),
      lb: createLoadBalancer(fleet.loadBalancer, {
        local: noTransport,
        transportTo: () => noTransport,
        timeoutMs: 1,
      }),
    });
  };

  it.each([['100%'], [4], [9]])(
    'batchSize %s never takes the whole fleet out: capped, with a notice',
    (batchSize) => {
      const p = plan({ batchSize });
      expect(p.maxUnavailable).toBe(3);
      expect(p.batches.map((b) => b.nodes.length)).toEqual([3, 1]);
      expect(p.notices).toEqual([
        expect.stringMatching(/would take every node out of rotation at once: batches of 3/),
      ]);
    },
  );

  it('taking every node out needs maxUnavailable set that high, and the plan says so', () => {
    const p = plan({ batchSize: '100%', maxUnavailable: '100%' });
    expect(p.maxUnavailable).toBe(4);
    expect(p.batches.map((b) => b.nodes.length)).toEqual([4]);
    expect(p.notices).toEqual(['rollout.maxUnavailable lets all 4 nodes be out of rotation at once']);
  });

  it('a batch below the fleet size is left as it is; a one-node fleet rolls its node', () => {
    expect(plan({ batchSize: 2 })).toMatchObject({ maxUnavailable: 2, notices: [] });
    expect(plan({ batchSize: 1 }, 1)).toMatchObject({ maxUnavailable: 1, notices: [] });
  });
});

import type { Fleet, FleetNode } from '../../src/lib/config/types.js';
import { parseFleet } from '../../src/lib/config/load-config.js';
import type { RolloutEvent } from '../../src/lib/engine/events.js';
import type { EngineParts } from '../../src/lib/engine/types.js';
import type { LbServerStateName, LoadBalancer } from '../../src/lib/lb/types.js';
import { fail, OK } from '../../src/lib/outcome.js';
import type { ProcessIdentity, ServiceManager } from '../../src/lib/service/types.js';
import type { Transport } from '../../src/lib/transport/types.js';

/** Behaviour of one simulated node. */
export interface FakeNodeBehaviour {
  /** The process ignores the graceful signal (only TERM/KILL end it). */
  ignoresGracefulSignal?: boolean;
  /** The process ignores every signal but KILL. */
  onlyKillEndsIt?: boolean;
  /** Health fails after restart. */
  unhealthyAfterRestart?: boolean;
  /** Checks of the process before it has exited after the graceful signal. */
  drainChecks?: number;
  /** Sessions the LB reports after deregistration, decreasing by one per check. */
  lbSessions?: number;
  unreachable?: boolean;
  /** The service manager starts a new process as soon as a signal ends the old one. */
  replacedByManager?: boolean;
  /** The process leaves its socket file behind when it exits (`test -e` keeps passing). */
  leavesSocketFile?: boolean;
}

export class FakeNode {
  process: ProcessIdentity | undefined;
  lbState: LbServerStateName = 'up';
  sessions = 0;
  healthy = true;
  drainLeft = 0;
  signals: string[] = [];
  restarts = 0;
  private nextPid = 1000;
  constructor(
    readonly name: string,
    readonly behaviour: FakeNodeBehaviour = {},
  ) {
    this.process = { pid: this.nextPid++, startTime: '1' };
  }
  signal(signal: string, graceful: string): void {
    this.signals.push(signal);
    if (!this.process) return;
    const ends =
      signal === 'KILL' ||
      (!this.behaviour.onlyKillEndsIt && (signal !== graceful || !this.behaviour.ignoresGracefulSignal));
    if (!ends) return;
    if (signal === graceful && this.behaviour.drainChecks) this.drainLeft = this.behaviour.drainChecks;
    else if (this.behaviour.replacedByManager)
      this.process = { pid: this.nextPid++, startTime: 'by-manager' };
    else this.process = undefined;
  }
  statusCheck(): ProcessIdentity | undefined {
    if (this.process && this.drainLeft > 0 && --this.drainLeft === 0) this.process = undefined;
    return this.process;
  }
  restart(): void {
    this.restarts += 1;
    this.process = { pid: this.nextPid++, startTime: String(this.restarts + 1) };
    this.drainLeft = 0;
    this.healthy = !this.behaviour.unhealthyAfterRestart;
  }
}

export class FakeFleet {
  readonly nodes = new Map<string, FakeNode>();
  readonly events: RolloutEvent[] = [];
  /** Every state-changing call, in order, for assertions on what was touched. */
  readonly actions: string[] = [];
  constructor(
    readonly fleet: Fleet,
    behaviours: Record<string, FakeNodeBehaviour> = {},
  ) {
    for (const node of fleet.nodes) this.nodes.set(node.name, new FakeNode(node.name, behaviours[node.name]));
  }
  node(name: string): FakeNode {
    return this.nodes.get(name)!;
  }
  transportFor = (node: FleetNode): Transport => {
    const fake = this.node(node.name);
    return {
      node: node.name,
      connect: () => Promise.resolve(fake.behaviour.unreachable ? fail('connect ECONNREFUSED') : OK),
      exec: (command) => {
        if ('shell' in command && command.shell.startsWith('graceful-shutdown')) {
          this.actions.push(`${node.name}:command:${command.shell}`);
          fake.signal(this.fleet.service.signal, this.fleet.service.signal);
          return Promise.resolve({ code: 0, stdout: 'shutting down\n', stderr: '' });
        }
        return Promise.resolve(
          'argv' in command && command.argv[0] === 'test'
            ? { code: fake.process || fake.behaviour.leavesSocketFile ? 0 : 1, stdout: '', stderr: '' }
            : { code: fake.healthy ? 0 : 1, stdout: '', stderr: fake.healthy ? '' : 'unhealthy' },
        );
      },
      close: () => Promise.resolve(),
    };
  };
  service: ServiceManager = {
    commands: () => ({
      status: { argv: ['status'] },
      signal: (s) => ({ argv: ['kill', s] }),
      restart: { argv: ['restart'] },
    }),
    status: (ctx) => {
      const process = this.node(ctx.node.name).statusCheck();
      return Promise.resolve({
        ok: true,
        value: process
          ? { running: true, identity: process, detail: `pid ${process.pid}` }
          : { running: false, detail: 'inactive' },
      });
    },
    sendSignal: (ctx, signal) => {
      this.actions.push(`${ctx.node.name}:signal:${signal}`);
      this.node(ctx.node.name).signal(signal, this.fleet.service.signal);
      return Promise.resolve(OK);
    },
    restart: (ctx) => {
      this.actions.push(`${ctx.node.name}:restart`);
      this.node(ctx.node.name).restart();
      return Promise.resolve(OK);
    },
  };
  lb: LoadBalancer = {
    type: 'fake',
    describe: () => ({ deregister: ['out'], register: ['in'], state: ['state'] }),
    state: (node) => {
      const fake = this.node(node.name);
      if (fake.sessions > 0) fake.sessions -= 1;
      const state = fake.lbState === 'up' && (!fake.healthy || !fake.process) ? 'down' : fake.lbState;
      return Promise.resolve({ ok: true, value: { state, sessions: fake.sessions } });
    },
    deregister: (node) => {
      this.actions.push(`${node.name}:deregister`);
      const fake = this.node(node.name);
      fake.lbState = 'maint';
      fake.sessions = fake.behaviour.lbSessions ?? 0;
      return Promise.resolve(OK);
    },
    register: (node) => {
      this.actions.push(`${node.name}:register`);
      this.node(node.name).lbState = 'up';
      return Promise.resolve(OK);
    },
    close: () => Promise.resolve(),
  };
  parts(): EngineParts {
    return {
      fleet: this.fleet,
      service: this.service,
      lb: this.lb,
      transportFor: this.transportFor,
      emit: (e) => this.events.push(e),
    };
  }
}

/** A fleet config for unit tests: fast intervals, command probes that the fake transport passes. */
export function testFleet(overrides: Record<string, unknown> = {}, nodeCount = 3): Fleet {
  return parseFleet(
    {
      name: 'test',
      service: { type: 'command', status: 'status', restart: 'restart', signal: 'USR1' },
      loadBalancer: { type: 'command', deregister: 'x', register: 'y', state: 'z' },
      drain: {
        interval: '5ms',
        deadline: '200ms',
        escalation: [
          { signal: 'TERM', deadline: '50ms' },
          { signal: 'KILL', deadline: '50ms' },
        ],
      },
      health: { probes: [{ type: 'command', command: 'true' }], consecutive: 2, interval: '5ms' },
      deadlines: { verify: '300ms', register: '200ms', deregister: '200ms', lbDrain: '300ms' },
      nodes: Array.from({ length: nodeCount }, (_, i) => ({ name: `web${i + 1}`, host: '127.0.0.1' })),
      ...overrides,
    },
    'test.yaml',
  );
}

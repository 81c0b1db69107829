import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RolloutEvent } from '../../src/lib/engine/events.js';
import type { EngineParts } from '../../src/lib/engine/types.js';
import type { Fleet, FleetNode } from '../../src/lib/config/types.js';
import type { LbServerState, LbServerStateName, LoadBalancer } from '../../src/lib/lb/types.js';
import { fail, OK, type Result } from '../../src/lib/outcome.js';
import type { ProcessIdentity, ServiceManager, ServiceState } from '../../src/lib/service/types.js';
import type { ExecResult, Transport } from '../../src/lib/transport/types.js';

/** Adapter calls a fault can hit. `exec` is every command on the node (probes, hooks). */
export const OPS = [
  'connect',
  'exec',
  'lb.state',
  'lb.deregister',
  'lb.register',
  'svc.status',
  'svc.signal',
  'svc.restart',
] as const;
export type Op = (typeof OPS)[number];

/**
 * throw: the call throws (a bug in an adapter); throw-after: the call takes effect, then throws (the
 * answer was lost); fail: the call returns a failure (SSH dropped, LB unreachable); hang: the call never
 * answers until its AbortSignal fires.
 */
export type FaultKind = 'throw' | 'throw-after' | 'fail' | 'hang';
export interface Fault {
  op: Op;
  /** Which call of that op on this node (1 = the first). */
  nth: number;
  kind: FaultKind;
}

export interface NodeBehaviour {
  /** The process ignores the graceful signal (only the escalation ends it). */
  ignoresGraceful: boolean;
  /** Only SIGKILL ends it. */
  onlyKill: boolean;
  unhealthyAfterRestart: boolean;
  /** Observations of the node after the graceful signal before the process exits. */
  drainChecks: number;
  /** Sessions the LB reports after deregistration, one fewer per look. */
  lbSessions: number;
  /** The LB's answers about this node flap between states that mean the same rotation. */
  flapping: boolean;
  faults: Fault[];
}

class SimNode {
  admin: 'up' | 'maint' = 'up';
  sessions = 0;
  process: ProcessIdentity | undefined;
  healthy = true;
  drainLeft = 0;
  restarts = 0;
  signals: string[] = [];
  private pid: number;
  private readonly calls = new Map<Op, number>();
  constructor(
    readonly name: string,
    readonly behaviour: NodeBehaviour,
    index: number,
  ) {
    this.pid = 1000 + index * 1000;
    this.process = { pid: this.pid, startTime: '1' };
  }
  /** The fault planned for this call of `op`, if any. */
  fault(op: Op): Fault | undefined {
    const n = (this.calls.get(op) ?? 0) + 1;
    this.calls.set(op, n);
    return this.behaviour.faults.find((f) => f.op === op && f.nth === n);
  }
  /** Every look at the node moves a drain along. */
  observe(): void {
    if (this.process && this.drainLeft > 0 && --this.drainLeft === 0) this.process = undefined;
  }
  signal(signal: string, graceful: string): void {
    this.signals.push(signal);
    if (!this.process) return;
    const ends =
      signal === 'KILL' ||
      (!this.behaviour.onlyKill && (signal !== graceful || !this.behaviour.ignoresGraceful));
    if (!ends) return;
    if (signal === graceful && this.behaviour.drainChecks > 0) this.drainLeft = this.behaviour.drainChecks;
    else this.process = undefined;
  }
  restart(): void {
    this.restarts += 1;
    this.pid += 1;
    this.process = { pid: this.pid, startTime: String(this.restarts + 1) };
    this.drainLeft = 0;
    this.healthy = !this.behaviour.unhealthyAfterRestart;
  }
}

/** A deterministic stream of numbers in [0, 1) for flapping answers. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32;
  };
}

/**
 * A simulated fleet behind the real adapter interfaces (Transport, ServiceManager, LoadBalancer), with
 * faults injected per call. Its `admin` state per node is the truth the invariants are checked against.
 * HTTP and TCP probes reach a real local server that answers from the simulated nodes.
 */
export class FaultFleet {
  readonly nodes = new Map<string, SimNode>();
  readonly events: RolloutEvent[] = [];
  /** The most nodes out of rotation at once, seen at every deregistration. */
  maxOut = 0;
  private readonly rand: () => number;
  private server?: Server;
  port = 0;

  constructor(
    names: string[],
    behaviours: NodeBehaviour[],
    seed: number,
    /** The service's graceful signal: the one a node may ignore or drain slowly on. */
    readonly graceful: string,
  ) {
    names.forEach((name, i) => this.nodes.set(name, new SimNode(name, behaviours[i], i)));
    this.rand = random(seed);
  }

  node(name: string): SimNode {
    return this.nodes.get(name)!;
  }

  /** The local server behind http probes: /health/NODE (200 while healthy), /inflight/NODE ({inflight}). */
  async listen(): Promise<number> {
    this.server = createServer((req, res) => {
      const [, kind, name] = (req.url ?? '').split('/');
      const node = this.nodes.get(name ?? '');
      node?.observe();
      if (!node) res.writeHead(404).end();
      else if (kind === 'health') res.writeHead(node.process && node.healthy ? 200 : 503).end();
      else
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ inflight: node.process ? 1 : 0 }));
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  async close(): Promise<void> {
    await new Promise((resolve) => this.server?.close(resolve) ?? resolve(undefined));
  }

  /** Runs `normal` unless a fault is planned for this call. */
  private async call<T>(name: string, op: Op, signal: AbortSignal, failed: T, normal: () => T): Promise<T> {
    const fault = this.node(name).fault(op);
    if (!fault) return normal();
    switch (fault.kind) {
      case 'throw':
        throw new Error(`injected fault: ${op} #${fault.nth} on ${name} threw`);
      case 'throw-after':
        normal();
        throw new Error(`injected fault: ${op} #${fault.nth} on ${name} threw after taking effect`);
      case 'fail':
        return failed;
      case 'hang':
        return new Promise((resolve) => {
          if (signal.aborted) resolve(failed);
          else signal.addEventListener('abort', () => resolve(failed), { once: true });
        });
    }
  }

  transportFor = (node: FleetNode): Transport => ({
    node: node.name,
    connect: (signal) =>
      this.call(node.name, 'connect', signal, fail('injected: connection refused'), () => OK),
    exec: (command, options) => {
      const text = 'shell' in command ? command.shell : command.argv.join(' ');
      const dropped: ExecResult = {
        code: null,
        stdout: '',
        stderr: '',
        failure: 'transport',
        reason: 'injected: connection dropped',
      };
      return this.call(node.name, 'exec', options.signal, dropped, () => this.run(node.name, text));
    },
    close: () => Promise.resolve(),
  });

  /** What the simulated node answers to the commands a rollout sends it. */
  private run(name: string, text: string): ExecResult {
    const node = this.node(name);
    node.observe();
    const exit = (code: number, stdout = '', stderr = ''): ExecResult => ({ code, stdout, stderr });
    if (text.includes('hook-fail')) return exit(1, '', 'the hook failed');
    if (text.startsWith('graceful-shutdown')) {
      node.signal(this.graceful, this.graceful);
      return exit(0, 'shutting down\n');
    }
    if (text.includes('health-check')) return exit(node.process && node.healthy ? 0 : 1, '', 'unhealthy');
    if (text.includes('drain-check')) return exit(node.process ? 1 : 0);
    if (text.startsWith('test -e')) return exit(node.process ? 0 : 1);
    if (text.startsWith('ss ')) return exit(0, node.process ? 'ESTAB 0 0 10.0.0.1:8080 10.0.0.9:5000\n' : '');
    return exit(0);
  }

  service: ServiceManager = {
    commands: () => ({
      status: { argv: ['status'] },
      signal: (s) => ({ argv: ['kill', s] }),
      restart: { argv: ['restart'] },
    }),
    status: (ctx) =>
      this.call<Result<ServiceState>>(
        ctx.node.name,
        'svc.status',
        ctx.signal,
        fail('injected: status failed'),
        () => {
          const node = this.node(ctx.node.name);
          node.observe();
          const process = node.process;
          return {
            ok: true as const,
            value: process
              ? { running: true as const, identity: process, detail: `pid ${process.pid}` }
              : { running: false as const, detail: 'inactive' },
          };
        },
      ),
    sendSignal: (ctx, signal) =>
      this.call(ctx.node.name, 'svc.signal', ctx.signal, fail('injected: kill failed'), () => {
        this.node(ctx.node.name).signal(signal, this.graceful);
        return OK;
      }),
    restart: (ctx) =>
      this.call(ctx.node.name, 'svc.restart', ctx.signal, fail('injected: restart failed'), () => {
        this.node(ctx.node.name).restart();
        return OK;
      }),
  };

  lb: LoadBalancer = {
    type: 'fake',
    describe: () => ({ deregister: ['out'], register: ['in'], state: ['state'] }),
    state: (node, signal) =>
      this.call<Result<LbServerState>>(
        node.name,
        'lb.state',
        signal,
        fail('injected: load balancer unreachable'),
        () => {
          const sim = this.node(node.name);
          if (sim.sessions > 0) sim.sessions -= 1;
          let state: LbServerStateName =
            sim.admin === 'maint' ? 'maint' : sim.process && sim.healthy ? 'up' : 'down';
          // Flapping answers stay on the same side of "in rotation", as a real LB's checks do.
          if (sim.behaviour.flapping && this.rand() < 0.3) state = state === 'maint' ? 'maint' : 'down';
          return { ok: true as const, value: { state, sessions: sim.sessions } };
        },
      ),
    deregister: (node, signal) =>
      this.call(node.name, 'lb.deregister', signal, fail('injected: deregister refused'), () => {
        const sim = this.node(node.name);
        sim.admin = 'maint';
        sim.sessions = sim.behaviour.lbSessions;
        this.maxOut = Math.max(
          this.maxOut,
          [...this.nodes.values()].filter((n) => n.admin === 'maint').length,
        );
        return OK;
      }),
    register: (node, signal) =>
      this.call(node.name, 'lb.register', signal, fail('injected: register refused'), () => {
        this.node(node.name).admin = 'up';
        return OK;
      }),
    close: () => Promise.resolve(),
  };

  parts(fleet: Fleet, emit: (event: RolloutEvent) => void): EngineParts {
    return {
      fleet,
      service: this.service,
      lb: this.lb,
      transportFor: this.transportFor,
      emit: (event) => {
        this.events.push(event);
        emit(event);
      },
      controller: {
        node: 'controller',
        connect: () => Promise.resolve(OK),
        exec: (command) =>
          Promise.resolve(
            'shell' in command && command.shell.includes('hook-fail')
              ? { code: 1, stdout: '', stderr: 'the hook failed' }
              : { code: 0, stdout: '', stderr: '' },
          ),
        close: () => Promise.resolve(),
      },
    };
  }
}

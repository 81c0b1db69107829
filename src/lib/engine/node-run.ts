import { formatDuration } from '../config/duration.js';
import type { FleetNode } from '../config/types.js';
import type { LbServerStateName } from '../lb/types.js';
import { fail, OK, type Outcome } from '../outcome.js';
import type { StepName } from '../plan/types.js';
import type { ProbeContext } from '../probes/types.js';
import type { ProcessIdentity, ServiceContext } from '../service/types.js';
import type { Transport } from '../transport/types.js';
import type { EmitEvent, NodeReport } from './events.js';
import type { EngineParts } from './types.js';
import { waitUntil, type WaitOutcome } from './wait.js';

/** Thrown inside a node's pipeline to end it with a reason. Any other error ends it the same way. */
export class StepFailed extends Error {}

export const describeWait = (wait: WaitOutcome & { ok: false }, deadlineMs: number): string =>
  wait.why === 'aborted'
    ? wait.attempts > 0
      ? `cut short (last check: ${wait.lastReason})`
      : 'cut short before the first check'
    : `not within ${formatDuration(deadlineMs)}: ${wait.lastReason}`;

export const sameProcess = (a: ProcessIdentity, b: ProcessIdentity): boolean =>
  a.pid === b.pid && a.startTime === b.startTime;

export function must(outcome: Outcome, what: string): void {
  if (!outcome.ok) throw new StepFailed(`${what}: ${outcome.reason}`);
}

/** What one node's pipeline knows while it runs; the step executors read and update it. */
export class NodeRun {
  readonly transport: Transport;
  readonly emit: EmitEvent;
  /** The node may be out of rotation from here on (deregistration was asked for). */
  deregistered = false;
  /** The process the graceful signal went to. */
  oldIdentity?: ProcessIdentity;
  /** A resumed node found stopped: nothing to signal or drain. */
  alreadyStopped = false;
  /** Set when the drain deadline passed with the escalate policy: what was still in flight. */
  drainFailure?: string;
  /**
   * The process the service manager started after the signalled one exited (systemd Restart=): it is
   * not signalled, not restarted again, and verified like a restarted one.
   */
  replacement?: ProcessIdentity;
  /**
   * What the current step's calls and waits get: the rollout's abort (a second Ctrl-C, the rollout
   * deadline) or the step's own budget, whichever comes first (run-node.ts sets it per step).
   */
  signal: AbortSignal;

  constructor(
    readonly node: FleetNode,
    readonly parts: EngineParts,
    readonly abort: AbortSignal,
    readonly report: NodeReport,
    /** A node a previous run left in flight: its pipeline starts from what it finds. */
    readonly reexamine: boolean,
  ) {
    this.transport = parts.transportFor(node);
    this.emit = parts.emit;
    this.signal = abort;
  }

  serviceCtx(signal: AbortSignal, timeoutMs: number): ServiceContext {
    return { transport: this.transport, node: this.node, signal, timeoutMs };
  }

  probeCtx(signal: AbortSignal, commandTimeoutMs: number, oldIdentity?: ProcessIdentity): ProbeContext {
    return {
      node: this.node,
      transport: this.transport,
      service: this.parts.service,
      lb: this.parts.lb,
      oldIdentity,
      signal,
      commandTimeoutMs,
    };
  }

  /** Polls until `check` passes (`consecutive` times in a row), or throws StepFailed with why not. */
  async wait(
    check: (signal: AbortSignal) => Promise<Outcome>,
    options: {
      deadlineMs: number;
      intervalMs: number;
      what: string;
      consecutive?: number;
      progress?: StepName;
    },
  ): Promise<WaitOutcome & { ok: true }> {
    const consecutive = options.consecutive ?? 1;
    const progress = options.progress;
    const outcome = await waitUntil(check, {
      intervalMs: options.intervalMs,
      deadlineMs: options.deadlineMs,
      signal: this.signal,
      consecutive,
      onCheck: progress
        ? (o, streak) =>
            this.emit({
              kind: 'step-progress',
              node: this.node.name,
              step: progress,
              detail: o.ok ? `${streak}/${consecutive} ok` : o.reason,
            })
        : undefined,
    });
    if (!outcome.ok) throw new StepFailed(`${options.what} ${describeWait(outcome, options.deadlineMs)}`);
    return outcome;
  }

  /**
   * Whether the signalled process is gone, in words, or undefined while it still runs (or when the
   * service state cannot be read right now). A different process in its place is recorded as the
   * service manager's replacement.
   */
  async signalledGone(signal: AbortSignal, timeoutMs: number): Promise<string | undefined> {
    const old = this.oldIdentity;
    if (!old) return undefined;
    const state = await this.parts.service.status(this.serviceCtx(signal, timeoutMs));
    if (!state.ok) return undefined;
    if (!state.value.running) return `pid ${old.pid} exited`;
    if (sameProcess(state.value.identity, old)) return undefined;
    this.replacement = state.value.identity;
    this.report.newProcess = state.value.identity;
    return `pid ${old.pid} exited and the service manager started pid ${state.value.identity.pid}`;
  }

  /** The load balancer's state for this node, checked against `want`. */
  async lbState(want: (state: LbServerStateName) => boolean, signal: AbortSignal): Promise<Outcome> {
    const state = await this.parts.lb.state(this.node, signal);
    if (!state.ok) return state;
    return want(state.value.state)
      ? OK
      : fail(
          `load balancer reports ${state.value.state}${state.value.sessions !== undefined ? ` with ${state.value.sessions} sessions` : ''}`,
        );
  }
}

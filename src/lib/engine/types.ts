import type { Fleet, FleetNode } from '../config/types.js';
import type { LoadBalancer } from '../lb/types.js';
import type { ServiceManager } from '../service/types.js';
import type { Transport } from '../transport/types.js';
import type { EmitEvent } from './events.js';

export interface EngineParts {
  fleet: Fleet;
  service: ServiceManager;
  lb: LoadBalancer;
  transportFor(node: FleetNode): Transport;
  emit: EmitEvent;
  /** Runs hook commands on the machine running graceroll. */
  controller?: Transport;
}

export interface RolloutOptions {
  /** Nodes finished by the run being resumed: not touched again. */
  alreadyDone?: ReadonlySet<string>;
  /**
   * Nodes a previous run left in flight or failed: preflight accepts them out of rotation or stopped,
   * and their pipeline starts from what it finds (a stopped service is restarted without a signal).
   */
  reexamine?: ReadonlySet<string>;
  /** Asked after the canary batch; false stops the rollout. */
  continueAfterCanary?: (canary: string[], signal: AbortSignal) => Promise<boolean>;
}

/**
 * The two levels of stopping, owned by one module (signals.ts):
 * `stop` — no new node is started; nodes in flight finish their pipeline.
 * `abort` — waits are cut short; nodes in flight are restored if healthy, otherwise reported out.
 */
export interface RolloutControl {
  stop: AbortSignal;
  abort: AbortSignal;
  /** Like `stop`, but the run ends failed with the signal's reason as its problem (a lost lock). */
  halt?: AbortSignal;
}

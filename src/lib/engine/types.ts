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
}

/**
 * The two levels of stopping, owned by one module (signals.ts):
 * `stop` — no new node is started; nodes in flight finish their pipeline.
 * `abort` — waits are cut short; nodes in flight are restored if healthy, otherwise reported out.
 */
export interface RolloutControl {
  stop: AbortSignal;
  abort: AbortSignal;
}

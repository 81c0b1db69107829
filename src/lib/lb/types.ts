import type { FleetNode } from '../config/types.js';
import type { Outcome, Result } from '../outcome.js';

/**
 * A server's state as the load balancer sees it:
 * up — in rotation and passing the LB's checks; down — in rotation but failing checks;
 * drain — no new sessions, existing ones continue; maint — out of rotation; absent — unknown to the LB.
 */
export type LbServerStateName = 'up' | 'down' | 'drain' | 'maint' | 'absent';

export interface LbServerState {
  state: LbServerStateName;
  /** Active sessions on the server, where the LB reports them. */
  sessions?: number;
  detail?: string;
}

export interface LbRequestDescription {
  deregister: string[];
  register: string[];
  state: string[];
}

export interface LoadBalancer {
  readonly type: string;
  /** The exact requests or commands, for the plan and dry run (pure). */
  describe(node: FleetNode): LbRequestDescription;
  state(node: FleetNode, signal: AbortSignal): Promise<Result<LbServerState>>;
  deregister(node: FleetNode, signal: AbortSignal): Promise<Outcome>;
  register(node: FleetNode, signal: AbortSignal): Promise<Outcome>;
  close(): Promise<void>;
}

export const inRotation = (state: LbServerStateName): boolean => state === 'up' || state === 'down';

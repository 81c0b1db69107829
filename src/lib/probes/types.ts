import type { FleetNode } from '../config/types.js';
import type { LoadBalancer } from '../lb/types.js';
import type { ProcessIdentity, ServiceManager } from '../service/types.js';
import type { Transport } from '../transport/types.js';

export interface ProbeContext {
  node: FleetNode;
  transport: Transport;
  service: ServiceManager;
  lb: LoadBalancer;
  /** The process that was signalled, for process-exited. */
  oldIdentity?: ProcessIdentity;
  signal: AbortSignal;
  commandTimeoutMs: number;
}

import type { FleetNode } from '../config/types.js';
import type { SignalName } from '../config/fields.js';
import type { Outcome, Result } from '../outcome.js';
import type { RemoteCommand, Transport } from '../transport/types.js';

/** A process is the same process only if both its PID and its start time match (PIDs are reused). */
export interface ProcessIdentity {
  pid: number;
  startTime: string;
}

export type ServiceState =
  { running: true; identity: ProcessIdentity; detail: string } | { running: false; detail: string };

export interface ServiceCommands {
  status: RemoteCommand;
  signal(signal: SignalName): RemoteCommand;
  restart: RemoteCommand;
}

export interface ServiceContext {
  transport: Transport;
  node: FleetNode;
  signal: AbortSignal;
  timeoutMs: number;
}

export interface ServiceManager {
  /** The exact commands, for the plan and dry run (pure). */
  commands(node: FleetNode): ServiceCommands;
  status(ctx: ServiceContext): Promise<Result<ServiceState>>;
  /** `identity` is the process the signal is meant for, where the adapter can target it. */
  sendSignal(ctx: ServiceContext, signal: SignalName, identity?: ProcessIdentity): Promise<Outcome>;
  restart(ctx: ServiceContext): Promise<Outcome>;
}

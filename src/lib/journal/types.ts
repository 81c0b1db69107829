import type { NodeOutcome, RolloutStatus } from '../engine/events.js';
import type { ProcessIdentity } from '../service/types.js';
import type { StepName } from '../plan/types.js';

export const JOURNAL_VERSION = 1;

/** Where a node stands: `in-flight` means a step started and the node did not finish. */
export type JournalNodeState = 'pending' | 'in-flight' | NodeOutcome;

export interface JournalEntry {
  time: string;
  text: string;
}

export interface JournalNode {
  state: JournalNodeState;
  /** The last step started, and whether it ended. */
  step?: StepName;
  stepEnded?: boolean;
  /** False from the moment deregistration starts until the load balancer confirms the node is back. */
  inRotation: boolean;
  oldProcess?: ProcessIdentity;
  newProcess?: ProcessIdentity;
  reason?: string;
  updatedAt: string;
  history: JournalEntry[];
}

export interface Journal {
  version: typeof JOURNAL_VERSION;
  fleet: string;
  config: string;
  runId: string;
  /** The run this one resumed, if any. */
  resumedFrom?: string;
  pid: number;
  startedAt: string;
  updatedAt: string;
  status: 'running' | RolloutStatus;
  nodes: Record<string, JournalNode>;
}

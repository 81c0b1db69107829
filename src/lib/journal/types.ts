import type { NodeOutcome, RolloutStatus } from '../engine/events.js';
import type { ProcessIdentity } from '../service/types.js';
import type { StepName } from '../plan/types.js';

/** 2: records the config's digest and the run's node selection. */
export const JOURNAL_VERSION = 2;
export const READABLE_VERSIONS: readonly number[] = [1, 2];

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
  version: number;
  fleet: string;
  /** The config file (absolute path) and the SHA-256 of its content: --resume refuses any other. */
  config: string;
  configDigest?: string;
  /** The nodes this run was asked to roll (the config's, or --nodes). */
  selection?: string[];
  runId: string;
  /** The run this one resumed, if any. */
  resumedFrom?: string;
  pid: number;
  startedAt: string;
  updatedAt: string;
  status: 'running' | RolloutStatus;
  nodes: Record<string, JournalNode>;
}

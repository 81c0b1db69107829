import type { FleetNode } from '../config/types.js';

export const STEPS = [
  'deregister',
  'lb-drain',
  'signal',
  'drain',
  'escalate',
  'restart',
  'verify',
  'register',
  'settle',
] as const;
export type StepName = (typeof STEPS)[number];

export interface PlannedStep {
  step: StepName;
  summary: string;
  /** The exact commands or API requests, in order. */
  actions: string[];
  deadlineMs?: number;
}

export interface NodePlan {
  node: FleetNode;
  steps: PlannedStep[];
}

export interface BatchPlan {
  index: number;
  canary: boolean;
  nodes: string[];
}

export interface RolloutPlan {
  fleet: string;
  preflight: string[];
  batches: BatchPlan[];
  nodes: NodePlan[];
  /** Failed nodes tolerated before the rollout halts. */
  maxFailures: number;
  rolloutDeadlineMs: number;
}

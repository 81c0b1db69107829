import type { HookName, StepName } from '../plan/types.js';
import type { ProcessIdentity } from '../service/types.js';

/** 2: plan actions carry where they run (`{on, run}`); hook steps. */
export const EVENT_SCHEMA_VERSION = 2;

export type { HookName };

/** forced: restarted and back, but its drain was forced (see NodeReport.forced). */
export type NodeOutcome = 'done' | 'forced' | 'failed' | 'skipped' | 'interrupted';

export interface NodeReport {
  node: string;
  outcome: NodeOutcome;
  /** Whether the load balancer has the node in rotation at the end. */
  inRotation: boolean;
  /** Milliseconds spent in each step that ran. */
  phases: Partial<Record<StepName, number>>;
  escalations: string[];
  /**
   * Set when the drain did not end gracefully: escalated (a signal past the graceful one was sent) or
   * exited-early (the signalled process exited before the drain probes passed). In-flight work may be lost.
   */
  forced?: { how: 'escalated' | 'exited-early'; detail: string };
  oldProcess?: ProcessIdentity;
  newProcess?: ProcessIdentity;
  reason?: string;
  /** What a human should do about this node, if anything. */
  action?: string;
}

/** forced: every node is back, but at least one drain was forced (unless drain.forcedIsOk). */
export type RolloutStatus = 'ok' | 'forced' | 'failed' | 'preflight-refused' | 'deadline' | 'interrupted';

export interface RolloutReport {
  fleet: string;
  status: RolloutStatus;
  startedAt: string;
  durationMs: number;
  nodes: NodeReport[];
  /** Nodes left out of rotation, by name: never silent. */
  outOfRotation: string[];
  problems: string[];
}

/** Every event a rollout emits; renderers handle each kind (see output/). */
export type RolloutEvent =
  | { kind: 'rollout-start'; fleet: string; nodes: string[]; batches: string[][] }
  | { kind: 'preflight'; node: string; ok: boolean; detail: string }
  | { kind: 'preflight-end'; ok: boolean; problems: string[] }
  | { kind: 'batch-start'; batch: number; canary: boolean; nodes: string[] }
  | { kind: 'step-start'; node: string; step: StepName; detail: string }
  | { kind: 'step-progress'; node: string; step: StepName; detail: string }
  | { kind: 'step-end'; node: string; step: StepName; ok: boolean; durationMs: number; detail: string }
  | { kind: 'escalation'; node: string; signal: string; stillInFlight: string }
  | {
      kind: 'hook';
      node: string;
      hook: HookName;
      command: string;
      ok: boolean;
      durationMs: number;
      output: string;
    }
  | { kind: 'pause'; batch: number; detail: string }
  | {
      kind: 'node-end';
      node: string;
      outcome: NodeOutcome;
      inRotation: boolean;
      durationMs: number;
      reason?: string;
      forced?: NonNullable<NodeReport['forced']>;
    }
  | { kind: 'batch-end'; batch: number; failed: string[] }
  | { kind: 'interrupt'; signal: string; count: number; detail: string }
  | { kind: 'warning'; node?: string; message: string }
  | { kind: 'rollout-end'; report: RolloutReport };

export type EventKind = RolloutEvent['kind'];
export type Stamped<E extends RolloutEvent = RolloutEvent> = E & { v: number; time: string };
export type EmitEvent = (event: RolloutEvent) => void;

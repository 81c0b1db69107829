import type { SignalName } from '../config/fields.js';
import type { DrainProbe, FleetNode, HealthProbe } from '../config/types.js';

/** Hook points, as named in the config's `hooks` section; each one that has commands is a step. */
export const HOOK_NAMES = ['beforeDeregister', 'beforeSignal', 'afterRestart', 'afterRegister'] as const;
export type HookName = (typeof HOOK_NAMES)[number];

/** Every step a node's pipeline can hold, in pipeline order. */
export const STEPS = [
  'beforeDeregister',
  'deregister',
  'lb-drain',
  'beforeSignal',
  'signal',
  'drain',
  'escalate',
  'restart',
  'afterRestart',
  'verify',
  'register',
  'afterRegister',
  'settle',
] as const;
export type StepName = (typeof STEPS)[number];

/** One command or API request, and where it runs: `this machine`, or `ssh user@host:port via jump`. */
export interface PlannedAction {
  on: string;
  run: string;
}

interface StepBase {
  /** What the step does, for people (dry run, live view). */
  summary: string;
  /** The exact commands or API requests, in order, and where each runs. */
  actions: PlannedAction[];
  /** The step's own deadline; every command inside it also stops at `commandTimeoutMs`. */
  deadlineMs?: number;
  commandTimeoutMs: number;
}

export interface PlannedHook {
  /** The command with every placeholder filled in (values shell-quoted). */
  command: string;
  on: 'node' | 'controller';
  deadlineMs: number;
}

export interface EscalationStage {
  signal: SignalName;
  deadlineMs: number;
}

/**
 * A planned step carries everything its executor needs: the engine reads nothing else from the config
 * to run it (engine/steps.ts). The dry run, the live view and the journal show these same steps.
 */
export type PlannedStep = StepBase &
  (
    | { [H in HookName]: { step: H; hooks: PlannedHook[] } }[HookName]
    | { step: 'deregister'; deadlineMs: number; intervalMs: number }
    | { step: 'lb-drain'; deadlineMs: number; intervalMs: number }
    | {
        step: 'signal';
        signal: SignalName;
        /** Graceful by request: this command (placeholders filled in) instead of the signal. */
        command?: { run: string; on: 'node' | 'controller' };
      }
    | {
        step: 'drain';
        probes: DrainProbe[];
        intervalMs: number;
        deadlineMs: number;
        /** At the deadline: go on to the escalate step, or fail the node (halting the rollout). */
        onDeadline: 'escalate' | 'halt';
        /** Long-lived connections: wait beside the probes until the LB reports 0 sessions, by its own deadline. */
        lbSessions?: { deadlineMs: number; intervalMs: number };
      }
    | { step: 'escalate'; chain: EscalationStage[]; intervalMs: number; deadlineMs: number }
    | { step: 'restart'; deadlineMs: number }
    | {
        step: 'verify';
        probes: HealthProbe[];
        consecutive: number;
        intervalMs: number;
        deadlineMs: number;
      }
    | { step: 'register'; deadlineMs: number; intervalMs: number }
    | { step: 'settle'; probes: HealthProbe[]; intervalMs: number; durationMs: number; deadlineMs: number }
  );

export type PlannedStepOf<S extends StepName> = Extract<PlannedStep, { step: S }>;

export interface NodePlan {
  node: FleetNode;
  /** Where the node's own commands run. */
  on: string;
  steps: PlannedStep[];
  /**
   * How a node whose pipeline failed or was cut short is put back: health probes needed in a row, their
   * interval, and how long it may take (the verify deadline, at most 15s).
   */
  restore: { probes: HealthProbe[]; consecutive: number; intervalMs: number; deadlineMs: number };
}

export interface BatchPlan {
  index: number;
  canary: boolean;
  nodes: string[];
  /** After this batch, before the next one: ask, wait this long, or go straight on. */
  pauseAfter?: 'confirm' | { waitMs: number };
}

export interface LockPlan {
  on: string;
  path: string;
  staleAfterMs: number;
  heartbeatMs: number;
}

export interface RolloutPlan {
  fleet: string;
  lock: LockPlan;
  preflight: string[];
  batches: BatchPlan[];
  nodes: NodePlan[];
  /** Failed nodes tolerated before the rollout halts. */
  maxFailures: number;
  /** Most nodes out of rotation at any moment, failed ones included. */
  maxUnavailable: number;
  /** What the plan changed or allows that the operator should know (a capped batch size). */
  notices: string[];
  /** After a batch with a forced drain: go on or halt; and whether the run may still end ok. */
  forced: { then: 'continue' | 'halt'; isOk: boolean };
  rolloutDeadlineMs: number;
}

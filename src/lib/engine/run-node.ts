import { formatDuration, timerMs } from '../config/duration.js';
import { inRotation } from '../lb/types.js';
import type { NodePlan, PlannedStep, StepName } from '../plan/types.js';
import { runProbes } from '../probes/run-probe.js';
import type { NodeReport } from './events.js';
import { NodeRun, sameProcess, StepFailed } from './node-run.js';
import { STEP_EXECUTORS, type StepExecutor } from './steps.js';
import type { EngineParts } from './types.js';
import { waitUntil } from './wait.js';

/** The error as one line: our own failures as they are, anything else named as unexpected. */
function failureReason(error: unknown, step: StepName | undefined): string {
  if (error instanceof StepFailed) return error.message;
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return `unexpected error${step ? ` in ${step}` : ''}: ${text.split('\n')[0]}`;
}

/**
 * The longest a step may take: its own deadline plus two command timeouts (the call that starts a wait
 * and the last check inside it). A step past it fails even if an adapter ignores its AbortSignal.
 */
export function stepBudgetMs(step: PlannedStep): number {
  const longest = Math.max(
    step.deadlineMs ?? 0,
    step.step === 'drain' ? (step.lbSessions?.deadlineMs ?? 0) : 0,
  );
  return longest + 2 * step.commandTimeoutMs;
}

/** How long a step's work may go on after its signal fired before it is abandoned. */
const IGNORED_SIGNAL_GRACE_MS = 1000;

/** Rejects when `signal` aborts: raced against work that might not listen to it. */
const whenAborted = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    const fire = () => reject(new StepFailed('aborted'));
    if (signal.aborted) fire();
    else signal.addEventListener('abort', fire, { once: true });
  });

async function runStep(step: PlannedStep, run: NodeRun): Promise<void> {
  const executor = STEP_EXECUTORS[step.step] as StepExecutor<typeof step.step>;
  const node = run.node.name;
  const skipped = executor.skip?.(step, run);
  if (skipped !== undefined) return;
  if (run.abort.aborted) throw new StepFailed(`cut short before ${step.step}`);
  const budgetMs = stepBudgetMs(step);
  const budget = AbortSignal.timeout(timerMs(budgetMs));
  run.signal = AbortSignal.any([run.abort, budget]);
  run.emit({ kind: 'step-start', node, step: step.step, detail: step.summary });
  const started = performance.now();
  let ok = false;
  let detail = '';
  try {
    // The executor's own calls and waits stop at run.signal; the race is for one that does not listen.
    const work = executor.run(step, run);
    // If the race is lost, the work may still fail later: that must not become an unhandled rejection.
    work.catch(() => undefined);
    detail = await Promise.race([
      work,
      whenAborted(AbortSignal.timeout(timerMs(budgetMs + IGNORED_SIGNAL_GRACE_MS))),
    ]);
    ok = true;
  } catch (error) {
    detail =
      budget.aborted && !run.abort.aborted
        ? `${step.step} did not finish within ${formatDuration(budgetMs)} (its deadline plus two command timeouts)${error instanceof StepFailed && error.message !== 'aborted' ? `: ${error.message}` : ''}`
        : error instanceof StepFailed && error.message === 'aborted'
          ? `${step.step} cut short`
          : failureReason(error, step.step);
    throw new StepFailed(detail);
  } finally {
    run.signal = run.abort;
    const durationMs = performance.now() - started;
    run.report.phases[step.step] = (run.report.phases[step.step] ?? 0) + durationMs;
    run.emit({ kind: 'step-end', node, step: step.step, ok, durationMs, detail });
  }
}

/**
 * One node's pipeline: the node's planned steps, in order, each through its executor (steps.ts). Any
 * failure, expected or not, ends the pipeline the same way: the node goes back into rotation only if it is
 * healthy, otherwise it is left out and named. Never throws.
 */
export async function runNode(
  plan: NodePlan,
  parts: EngineParts,
  abort: AbortSignal,
  reexamine = false,
): Promise<NodeReport> {
  const report: NodeReport = {
    node: plan.node.name,
    outcome: 'done',
    inRotation: true,
    phases: {},
    escalations: [],
  };
  const started = performance.now();
  let run: NodeRun | undefined;
  let current: StepName | undefined;
  try {
    run = new NodeRun(plan.node, parts, abort, report, reexamine);
    for (const step of plan.steps) {
      current = step.step;
      await runStep(step, run);
    }
    if (report.forced) report.outcome = 'forced';
  } catch (error) {
    report.outcome = abort.aborted ? 'interrupted' : 'failed';
    report.reason = failureReason(error, current);
    if (run?.deregistered) {
      try {
        const limit = timerMs(plan.restore.deadlineMs * 2 + IGNORED_SIGNAL_GRACE_MS);
        const restoring = restoreIfHealthy(
          plan,
          parts,
          report,
          run.oldIdentity,
          report.phases.signal !== undefined,
        );
        restoring.catch(() => undefined);
        await Promise.race([restoring, whenAborted(AbortSignal.timeout(limit))]);
      } catch (restoreError) {
        report.inRotation = false;
        report.action = `${plan.node.name}: its rotation state is UNKNOWN (putting it back ${restoreError instanceof StepFailed && restoreError.message === 'aborted' ? 'did not finish in time' : `failed: ${failureReason(restoreError, undefined)}`}); check it and the load balancer`;
      }
    }
  }
  try {
    parts.emit({
      kind: 'node-end',
      node: plan.node.name,
      outcome: report.outcome,
      inRotation: report.inRotation,
      durationMs: performance.now() - started,
      reason: report.reason,
      ...(report.forced ? { forced: report.forced } : {}),
    });
  } catch {
    // The rollout's own emit records a failing renderer (run-rollout.ts); the report still goes back.
  }
  return report;
}

/**
 * After a failed or cut-short pipeline of a node that may be out of rotation. The load balancer is asked
 * first: a node whose deregistration never took effect is simply still in. A node the load balancer cannot
 * be asked about is reported UNKNOWN (counted out). Otherwise the node goes back only when it runs a
 * process other than the one that was signalled and its health probes pass `consecutive` times in a row,
 * as in verify; then the load balancer must report it up.
 */
async function restoreIfHealthy(
  plan: NodePlan,
  parts: EngineParts,
  report: NodeReport,
  oldIdentity: NodeRun['oldIdentity'],
  signalled: boolean,
): Promise<void> {
  const { node, restore } = plan;
  const signal = AbortSignal.timeout(timerMs(restore.deadlineMs));
  const restoreStop = new AbortController();
  const out = (why: string) => {
    report.inRotation = false;
    report.action = `${node.name} is OUT of rotation (${why}); check it, then rerun with --resume or put it back in the load balancer by hand`;
  };
  const lbState = await parts.lb.state(node, signal);
  if (!lbState.ok) {
    report.inRotation = false;
    report.action = `${node.name}: its rotation state is UNKNOWN (load balancer: ${lbState.reason}); check the load balancer before anything else`;
    return;
  }
  if (inRotation(lbState.value.state)) {
    report.inRotation = true;
    return;
  }
  report.inRotation = false;
  const transport = parts.transportFor(node);
  const state = await parts.service.status({
    transport,
    node,
    signal,
    timeoutMs: restore.deadlineMs,
  });
  if (!state.ok || !state.value.running)
    return out(`service not running${state.ok ? '' : `: ${state.reason}`}`);
  if (oldIdentity && signalled && sameProcess(state.value.identity, oldIdentity))
    return out('the signalled process is still draining');
  // An interrupted node may still be starting: it gets the restore deadline to become healthy. A failed
  // one has had its chance in verify: the first failing check leaves it out.
  const failFast = report.outcome === 'failed';
  let failedCheck: string | undefined;
  const healthy = await waitUntil(
    async (s) => {
      const outcome = await runProbes(restore.probes, {
        node,
        transport,
        service: parts.service,
        lb: parts.lb,
        signal: s,
        commandTimeoutMs: restore.deadlineMs,
      });
      if (!outcome.ok && failFast) {
        failedCheck = outcome.reason;
        restoreStop.abort();
      }
      return outcome;
    },
    {
      intervalMs: timerMs(restore.intervalMs),
      deadlineMs: restore.deadlineMs,
      signal: AbortSignal.any([signal, restoreStop.signal]),
      consecutive: restore.consecutive,
    },
  );
  if (failedCheck !== undefined) return out(`not healthy: ${failedCheck}`);
  if (!healthy.ok) return out(`not healthy ${restore.consecutive}× in a row: ${healthy.lastReason}`);
  const registered = await parts.lb.register(node, signal);
  if (!registered.ok) return out(`re-registering failed: ${registered.reason}`);
  const up = await waitUntil(
    async (s) => {
      const now = await parts.lb.state(node, s);
      return !now.ok ? now : now.value.state === 'up' ? { ok: true } : { ok: false, reason: now.value.state };
    },
    { intervalMs: timerMs(restore.intervalMs), deadlineMs: restore.deadlineMs, signal },
  );
  if (!up.ok) return out(`re-registered, but the load balancer reports ${up.lastReason}`);
  report.inRotation = true;
  parts.emit({
    kind: 'warning',
    node: node.name,
    message: `${node.name} was healthy ${restore.consecutive}× in a row and is back in rotation after the ${report.outcome === 'interrupted' ? 'interruption' : 'failure'}`,
  });
}

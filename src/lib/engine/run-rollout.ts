import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration, timerMs } from '../config/duration.js';
import type { BatchPlan, RolloutPlan } from '../plan/types.js';
import type { EmitEvent, NodeReport, RolloutReport, RolloutStatus } from './events.js';
import { preflight } from './preflight.js';
import { runNode } from './run-node.js';
import type { EngineParts, RolloutControl, RolloutOptions } from './types.js';

/**
 * Executes a plan: preflight (read-only; refuses when a node is unreachable or unknown, or when more
 * nodes are degraded than the failure budget allows), then batch by batch. Halts when the failure budget
 * is spent, when `control.stop` fires (no new nodes), when `control.halt` fires or an event cannot be
 * recorded, or when the rollout deadline passes. Never throws: whatever happens, it ends with exactly one
 * `rollout-end` event and the report.
 */
export async function runRollout(
  plan: RolloutPlan,
  given: EngineParts,
  control: RolloutControl,
  options: RolloutOptions = {},
): Promise<RolloutReport> {
  const startedAt = new Date();
  const started = performance.now();
  const deadline = AbortSignal.timeout(timerMs(plan.rolloutDeadlineMs));
  const abort = AbortSignal.any([control.abort, deadline]);
  // A record that cannot be kept (the journal's disk is full) or a lost lock halts the rollout: the nodes
  // in flight finish, no new one starts, and the run ends failed, saying why.
  const halt = new AbortController();
  const haltWith = (why: string) => {
    if (!halt.signal.aborted) halt.abort(new Error(why));
  };
  const onHalt = () =>
    haltWith(String((control.halt?.reason as Error | undefined)?.message ?? control.halt?.reason));
  control.halt?.addEventListener('abort', onHalt, { once: true });
  if (control.halt?.aborted) onHalt();
  const emit: EmitEvent = (event) => {
    try {
      given.emit(event);
    } catch (error) {
      haltWith(error instanceof Error ? error.message : String(error));
    }
  };
  const parts: EngineParts = { ...given, emit };
  const reports = new Map<string, NodeReport>();
  const problems: string[] = [];
  const alreadyDone = options.alreadyDone ?? new Set<string>();
  const reexamine = new Set(options.reexamine ?? []);
  let status: RolloutStatus = 'ok';
  /** Nodes degraded before the rollout (within the failure budget): they count as failures. */
  let preDegraded = 0;

  try {
    emit({
      kind: 'rollout-start',
      fleet: plan.fleet,
      nodes: plan.nodes.map((n) => n.node.name),
      batches: plan.batches.map((b) => b.nodes),
    });
    for (const message of plan.notices) emit({ kind: 'warning', message });

    const checks = await preflight(parts, abort);
    const blocking = checks.flatMap((c) => c.blocking);
    const degraded = checks.filter((c) => c.degraded.length && !reexamine.has(c.node));
    if (degraded.length > plan.maxFailures) {
      blocking.push(...degraded.flatMap((c) => c.degraded));
      blocking.push(
        `${degraded.length} node(s) already degraded; the failure budget allows ${plan.maxFailures}`,
      );
    } else {
      preDegraded = degraded.length;
      for (const c of degraded) {
        reexamine.add(c.node);
        emit({
          kind: 'warning',
          node: c.node,
          message: `degraded before the rollout (within the failure budget): ${c.degraded.join('; ')}`,
        });
      }
    }
    emit({ kind: 'preflight-end', ok: blocking.length === 0, problems: blocking });

    if (blocking.length) {
      status = 'preflight-refused';
      problems.push(...blocking);
    } else {
      await runBatches();
    }
  } catch (error) {
    problems.push(`unexpected error: ${error instanceof Error ? error.message : String(error)}`);
  }

  async function runBatches(): Promise<void> {
    const byName = new Map(plan.nodes.map((n) => [n.node.name, n]));
    let failures = 0;
    const stopped = () => control.stop.aborted || abort.aborted || halt.signal.aborted;
    for (const batch of plan.batches) {
      if (stopped()) break;
      const todo = batch.nodes.filter((name) => !alreadyDone.has(name));
      if (!todo.length) continue;
      emit({ kind: 'batch-start', batch: batch.index, canary: batch.canary, nodes: todo });
      const failed: string[] = [];
      // Nodes left out of rotation count against maxUnavailable until someone puts them back.
      for (let i = 0; i < todo.length && !stopped();) {
        const out = [...reports.values()].filter((r) => !r.inRotation).length;
        const room = plan.maxUnavailable - out;
        if (room <= 0) {
          problems.push(`halted: ${out} node(s) out of rotation, maxUnavailable is ${plan.maxUnavailable}`);
          break;
        }
        const chunk = todo.slice(i, i + room);
        i += chunk.length;
        const results = await Promise.all(
          chunk.map((name) => runNode(byName.get(name)!, parts, abort, reexamine.has(name))),
        );
        for (const result of results) reports.set(result.node, result);
        failed.push(
          ...results.filter((r) => r.outcome !== 'done' && r.outcome !== 'forced').map((r) => r.node),
        );
        failures += results.filter((r) => r.outcome === 'failed').length;
      }
      emit({ kind: 'batch-end', batch: batch.index, failed });
      if (failures + preDegraded > plan.maxFailures) {
        const total = failures + preDegraded;
        problems.push(`halted: ${total} failed node${total > 1 ? 's' : ''} (budget ${plan.maxFailures})`);
        break;
      }
      const forced = todo.filter((name) => reports.get(name)?.outcome === 'forced');
      if (forced.length && plan.forced.then === 'halt') {
        problems.push(`halted: the drain of ${forced.join(', ')} was forced (drain.onForced is halt)`);
        break;
      }
      if (problems.length) break;
      const more = plan.batches.slice(batch.index + 1).some((b) => b.nodes.some((n) => !alreadyDone.has(n)));
      if (batch.pauseAfter && more && !stopped()) {
        const go = await pauseAfterBatch(parts, batch.index, batch.pauseAfter, todo, control, options);
        if (!go) {
          problems.push('stopped after the canary batch');
          break;
        }
      }
    }
  }

  const nodes = plan.nodes.map(
    ({ node }) =>
      reports.get(node.name) ?? {
        node: node.name,
        outcome: alreadyDone.has(node.name) ? ('done' as const) : ('skipped' as const),
        inRotation: true,
        phases: {},
        escalations: [],
        ...(alreadyDone.has(node.name) ? { reason: 'done in the resumed run' } : {}),
      },
  );
  if (halt.signal.aborted)
    problems.push(
      `halted: ${(halt.signal.reason as Error).message}; the nodes in flight were finished and no new node was started`,
    );
  if (deadline.aborted) {
    // Also when it passed during preflight: the refusal was the deadline's doing.
    status = 'deadline';
    problems.push(`the rollout deadline (${formatDuration(plan.rolloutDeadlineMs)}) passed`);
  } else if (status !== 'preflight-refused') {
    const anyFailed = nodes.some((r) => r.outcome === 'failed');
    if (control.stop.aborted || control.abort.aborted) status = 'interrupted';
    else if (anyFailed || problems.length) status = 'failed';
    else if (!plan.forced.isOk && nodes.some((n) => n.outcome === 'forced')) status = 'forced';
  }
  control.halt?.removeEventListener('abort', onHalt);
  const report: RolloutReport = {
    fleet: plan.fleet,
    status,
    startedAt: startedAt.toISOString(),
    durationMs: performance.now() - started,
    nodes,
    outOfRotation: nodes.filter((n) => !n.inRotation).map((n) => n.node),
    problems,
  };
  emit({ kind: 'rollout-end', report });
  return report;
}

async function pauseAfterBatch(
  parts: EngineParts,
  batch: number,
  pause: NonNullable<BatchPlan['pauseAfter']>,
  canary: string[],
  control: RolloutControl,
  options: RolloutOptions,
): Promise<boolean> {
  if (pause !== 'confirm') {
    parts.emit({
      kind: 'pause',
      batch,
      detail: `canary done; waiting ${formatDuration(pause.waitMs)} before the next batch`,
    });
    try {
      await sleep(timerMs(pause.waitMs), undefined, {
        signal: AbortSignal.any([control.stop, control.abort]),
      });
      return true;
    } catch {
      return false;
    }
  }
  parts.emit({ kind: 'pause', batch, detail: 'canary done; waiting for confirmation' });
  return options.continueAfterCanary ? options.continueAfterCanary(canary, control.stop) : true;
}

import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration } from '../config/duration.js';
import { resolveCount } from '../plan/batches.js';
import type { RolloutPlan } from '../plan/types.js';
import type { NodeReport, RolloutReport, RolloutStatus } from './events.js';
import { preflight } from './preflight.js';
import { runNode } from './run-node.js';
import type { EngineParts, RolloutControl, RolloutOptions } from './types.js';

/**
 * Executes a plan: preflight (read-only; refuses when a node is unreachable or unknown, or when more
 * nodes are degraded than the failure budget allows), then batch by batch. Halts when the failure budget
 * is spent, when `control.stop` fires (no new nodes), or when the rollout deadline passes.
 */
export async function runRollout(
  plan: RolloutPlan,
  parts: EngineParts,
  control: RolloutControl,
  options: RolloutOptions = {},
): Promise<RolloutReport> {
  const startedAt = new Date();
  const started = performance.now();
  const deadline = AbortSignal.timeout(plan.rolloutDeadlineMs);
  const abort = AbortSignal.any([control.abort, deadline]);
  const { emit, fleet } = parts;
  const reports = new Map<string, NodeReport>();
  const problems: string[] = [];
  const alreadyDone = options.alreadyDone ?? new Set<string>();
  const reexamine = new Set(options.reexamine ?? []);

  emit({
    kind: 'rollout-start',
    fleet: plan.fleet,
    nodes: plan.nodes.map((n) => n.node.name),
    batches: plan.batches.map((b) => b.nodes),
  });

  const checks = await preflight(parts, abort);
  const blocking = checks.flatMap((c) => c.blocking);
  const degraded = checks.filter((c) => c.degraded.length && !reexamine.has(c.node));
  if (degraded.length > plan.maxFailures) blocking.push(...degraded.flatMap((c) => c.degraded));
  else if (degraded.length) {
    for (const c of degraded) {
      reexamine.add(c.node);
      emit({
        kind: 'warning',
        node: c.node,
        message: `degraded before the rollout (within the failure budget): ${c.degraded.join('; ')}`,
      });
    }
  }
  if (degraded.length > plan.maxFailures) {
    blocking.push(
      `${degraded.length} node(s) already degraded; the failure budget allows ${plan.maxFailures}`,
    );
  }
  emit({ kind: 'preflight-end', ok: blocking.length === 0, problems: blocking });

  let status: RolloutStatus = 'ok';
  if (blocking.length) {
    status = 'preflight-refused';
    problems.push(...blocking);
  } else {
    const byName = new Map(plan.nodes.map((n) => [n.node.name, n.node]));
    const maxUnavailable = resolveCount(
      fleet.rollout.maxUnavailable ?? fleet.rollout.batchSize,
      plan.nodes.length,
      1,
    );
    let failures = degraded.length;
    const stopped = () => control.stop.aborted || abort.aborted;
    for (const batch of plan.batches) {
      if (stopped()) break;
      const todo = batch.nodes.filter((name) => !alreadyDone.has(name));
      if (!todo.length) continue;
      emit({ kind: 'batch-start', batch: batch.index, canary: batch.canary, nodes: todo });
      const failed: string[] = [];
      // Nodes left out of rotation count against maxUnavailable until someone puts them back.
      for (let i = 0; i < todo.length && !stopped();) {
        const out = [...reports.values()].filter((r) => !r.inRotation).length;
        const room = maxUnavailable - out;
        if (room <= 0) {
          problems.push(`halted: ${out} node(s) out of rotation, maxUnavailable is ${maxUnavailable}`);
          break;
        }
        const chunk = todo.slice(i, i + room);
        i += chunk.length;
        const results = await Promise.all(
          chunk.map((name) => runNode(byName.get(name)!, parts, abort, reexamine.has(name))),
        );
        for (const result of results) reports.set(result.node, result);
        failed.push(...results.filter((r) => r.outcome !== 'done').map((r) => r.node));
        failures += results.filter((r) => r.outcome === 'failed').length;
      }
      emit({ kind: 'batch-end', batch: batch.index, failed });
      if (failures > plan.maxFailures) {
        problems.push(
          `halted: ${failures} failed node${failures > 1 ? 's' : ''} (budget ${plan.maxFailures})`,
        );
        break;
      }
      if (problems.length) break;
      const more = plan.batches.slice(batch.index + 1).some((b) => b.nodes.some((n) => !alreadyDone.has(n)));
      if (batch.canary && more && !stopped()) {
        const go = await pauseAfterCanary(parts, batch.index, todo, control, options);
        if (!go) {
          problems.push('stopped after the canary batch');
          break;
        }
      }
    }
    const anyFailed = [...reports.values()].some((r) => r.outcome === 'failed');
    if (deadline.aborted) {
      status = 'deadline';
      problems.push(`the rollout deadline (${formatDuration(plan.rolloutDeadlineMs)}) passed`);
    } else if (control.stop.aborted || control.abort.aborted) status = 'interrupted';
    else if (anyFailed || problems.length) status = 'failed';
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

async function pauseAfterCanary(
  parts: EngineParts,
  batch: number,
  canary: string[],
  control: RolloutControl,
  options: RolloutOptions,
): Promise<boolean> {
  const pause = parts.fleet.rollout.pauseAfterCanary;
  if (pause === 'none') return true;
  if (typeof pause === 'number') {
    parts.emit({
      kind: 'pause',
      batch,
      detail: `canary done; waiting ${formatDuration(pause)} before the next batch`,
    });
    try {
      await sleep(pause, undefined, { signal: AbortSignal.any([control.stop, control.abort]) });
      return true;
    } catch {
      return false;
    }
  }
  parts.emit({ kind: 'pause', batch, detail: 'canary done; waiting for confirmation' });
  return options.continueAfterCanary ? options.continueAfterCanary(canary, control.stop) : true;
}

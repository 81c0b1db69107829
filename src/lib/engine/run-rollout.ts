import type { RolloutPlan } from '../plan/types.js';
import type { NodeReport, RolloutReport, RolloutStatus } from './events.js';
import { preflight } from './preflight.js';
import { runNode } from './run-node.js';
import type { EngineParts, RolloutControl } from './types.js';

/**
 * Executes a plan: preflight (read-only, refuses on any problem), then batch by batch. Halts when the
 * failure budget is spent, when `control.stop` fires (no new nodes), or when the rollout deadline passes.
 */
export async function runRollout(
  plan: RolloutPlan,
  parts: EngineParts,
  control: RolloutControl,
): Promise<RolloutReport> {
  const startedAt = new Date();
  const started = performance.now();
  const deadline = AbortSignal.timeout(plan.rolloutDeadlineMs);
  const abort = AbortSignal.any([control.abort, deadline]);
  const { emit } = parts;
  const reports = new Map<string, NodeReport>();
  const problems: string[] = [];

  emit({
    kind: 'rollout-start',
    fleet: plan.fleet,
    nodes: plan.nodes.map((n) => n.node.name),
    batches: plan.batches.map((b) => b.nodes),
  });

  const preflightProblems = await preflight(parts, abort);
  emit({ kind: 'preflight-end', ok: preflightProblems.length === 0, problems: preflightProblems });
  let status: RolloutStatus = 'ok';
  if (preflightProblems.length) {
    status = 'preflight-refused';
    problems.push(...preflightProblems);
  } else {
    const byName = new Map(plan.nodes.map((n) => [n.node.name, n.node]));
    let failures = 0;
    for (const batch of plan.batches) {
      if (control.stop.aborted || abort.aborted) break;
      emit({ kind: 'batch-start', batch: batch.index, canary: batch.canary, nodes: batch.nodes });
      const results = await Promise.all(batch.nodes.map((name) => runNode(byName.get(name)!, parts, abort)));
      for (const result of results) reports.set(result.node, result);
      const failed = results.filter((r) => r.outcome !== 'done').map((r) => r.node);
      failures += results.filter((r) => r.outcome === 'failed').length;
      emit({ kind: 'batch-end', batch: batch.index, failed });
      if (failures > plan.maxFailures) {
        problems.push(
          `halted: ${failures} failed node${failures > 1 ? 's' : ''} (budget ${plan.maxFailures})`,
        );
        break;
      }
    }
    const anyFailed = [...reports.values()].some((r) => r.outcome === 'failed');
    if (deadline.aborted) {
      status = 'deadline';
      problems.push(`the rollout deadline passed`);
    } else if (control.stop.aborted || control.abort.aborted) status = 'interrupted';
    else if (anyFailed) status = 'failed';
  }

  const nodes = plan.nodes.map(
    ({ node }) =>
      reports.get(node.name) ?? {
        node: node.name,
        outcome: 'skipped' as const,
        inRotation: true,
        phases: {},
        escalations: [],
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

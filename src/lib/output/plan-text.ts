import chalk from 'chalk';
import { formatDuration } from '../config/duration.js';
import type { RolloutPlan } from '../plan/types.js';

/** The dry run: every batch, every node's steps with exact commands and deadlines. */
export function formatPlan(plan: RolloutPlan): string {
  const out: string[] = [];
  out.push(
    chalk.bold(
      `Plan for ${plan.fleet}: ${plan.nodes.length} nodes in ${plan.batches.length} batches (dry run: nothing is touched)`,
    ),
  );
  out.push(
    `Rollout deadline ${formatDuration(plan.rolloutDeadlineMs)}; halts after ${plan.maxFailures + 1} failed node(s).`,
  );
  out.push('Preflight (read-only):');
  for (const check of plan.preflight) out.push(`  - ${check}`);
  const byName = new Map(plan.nodes.map((n) => [n.node.name, n]));
  for (const batch of plan.batches) {
    out.push(
      '',
      chalk.bold(`Batch ${batch.index + 1}${batch.canary ? ' (canary)' : ''}: ${batch.nodes.join(', ')}`),
    );
    for (const name of batch.nodes) {
      const node = byName.get(name)!;
      out.push(`  ${chalk.bold(name)} (${node.node.host})`);
      node.steps.forEach((step, i) => {
        const deadline =
          step.deadlineMs !== undefined ? ` [deadline ${formatDuration(step.deadlineMs)}]` : '';
        out.push(`    ${i + 1}. ${step.step}: ${step.summary}${deadline}`);
        for (const action of step.actions) out.push(`       ${chalk.dim('$')} ${action}`);
      });
    }
  }
  return out.join('\n');
}

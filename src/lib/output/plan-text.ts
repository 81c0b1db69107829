import chalk from 'chalk';
import { formatDuration } from '../config/duration.js';
import type { NodePlan, RolloutPlan } from '../plan/types.js';

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** The lines of one node's steps: what each does, its deadline, every command and where it runs. */
function nodeLines(node: NodePlan): string[] {
  const out = [`  ${chalk.bold(node.node.name)} (${node.on})`];
  node.steps.forEach((step, i) => {
    const deadline = step.deadlineMs !== undefined ? ` [deadline ${formatDuration(step.deadlineMs)}]` : '';
    out.push(`    ${i + 1}. ${step.step}: ${step.summary}${deadline}`);
    for (const action of step.actions) {
      const where = action.on === node.on ? '' : chalk.dim(`  (on ${action.on})`);
      out.push(`       ${chalk.dim('$')} ${action.run}${where}`);
    }
  });
  return out;
}

/**
 * The dry run: the lock, preflight, every batch with its pause, every node's steps with exact commands,
 * deadlines and where each command runs. Written batch by batch, so a large fleet is never one string.
 */
export function writePlan(plan: RolloutPlan, write: (text: string) => void): void {
  write(
    `${chalk.bold(
      `Plan for ${plan.fleet}: ${plural(plan.nodes.length, 'node', 'nodes')} in ${plural(plan.batches.length, 'batch', 'batches')} (dry run: nothing is touched)`,
    )}\n`,
  );
  write(
    [
      `Rollout deadline ${formatDuration(plan.rolloutDeadlineMs)}; at most ${plan.maxUnavailable} node(s) out of rotation at once; halts after ${plan.maxFailures + 1} failed node(s).`,
      `Lock: ${plan.lock.path} on ${plan.lock.on} (heartbeat every ${formatDuration(plan.lock.heartbeatMs)}, stale after ${formatDuration(plan.lock.staleAfterMs)}).`,
      ...plan.notices.map((notice) => chalk.yellow(`Notice: ${notice}.`)),
      'Preflight (read-only):',
      ...plan.preflight.map((check) => `  - ${check}`),
      '',
    ].join('\n'),
  );
  const byName = new Map(plan.nodes.map((n) => [n.node.name, n]));
  for (const batch of plan.batches) {
    const lines = [
      '',
      chalk.bold(`Batch ${batch.index + 1}${batch.canary ? ' (canary)' : ''}: ${batch.nodes.join(', ')}`),
    ];
    for (const name of batch.nodes) lines.push(...nodeLines(byName.get(name)!));
    if (batch.pauseAfter)
      lines.push(
        chalk.cyan(
          batch.pauseAfter === 'confirm'
            ? `  then: ask before the next batch (--yes goes straight on)`
            : `  then: wait ${formatDuration(batch.pauseAfter.waitMs)} before the next batch`,
        ),
      );
    write(`${lines.join('\n')}\n`);
  }
}

/** The whole dry run as one string (tests, small fleets). */
export function formatPlan(plan: RolloutPlan): string {
  let text = '';
  writePlan(plan, (chunk) => (text += chunk));
  return text.trimEnd();
}

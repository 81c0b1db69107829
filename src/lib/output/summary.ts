import chalk from 'chalk';
import { formatDuration } from '../config/duration.js';
import type { RolloutReport } from '../engine/events.js';
import { STEPS } from '../plan/types.js';

/** The final table: each node's outcome, rotation state and phase durations, then what needs a human. */
export function formatSummary(report: RolloutReport): string {
  const steps = STEPS.filter((step) => report.nodes.some((n) => n.phases[step] !== undefined));
  const header = ['node', 'outcome', 'in LB', ...steps, 'total'];
  const rows = report.nodes.map((n) => {
    const total = Object.values(n.phases).reduce((a, b) => a + (b ?? 0), 0);
    return [
      n.node,
      n.outcome,
      n.inRotation ? 'yes' : 'NO',
      ...steps.map((s) => (n.phases[s] === undefined ? '-' : formatDuration(n.phases[s]))),
      total ? formatDuration(total) : '-',
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const out = [line(header), ...rows.map(line)];
  const colour = report.status === 'ok' ? chalk.green : report.status === 'forced' ? chalk.yellow : chalk.red;
  out.push('', colour(`rollout ${report.status} in ${formatDuration(report.durationMs)}`));
  for (const problem of report.problems) out.push(chalk.red(`  ${problem}`));
  for (const node of report.nodes) {
    if (node.forced)
      out.push(chalk.yellow(`  ${node.node}: FORCED drain (${node.forced.how}): ${node.forced.detail}`));
    if (node.escalations.length)
      out.push(chalk.yellow(`  ${node.node}: escalated: ${node.escalations.join('; ')}`));
    if (node.reason) out.push(`  ${node.node}: ${node.reason}`);
    if (node.action) out.push(chalk.red(`  ${node.action}`));
  }
  if (report.outOfRotation.length)
    out.push(chalk.red.bold(`OUT OF ROTATION: ${report.outOfRotation.join(', ')}`));
  return out.join('\n');
}

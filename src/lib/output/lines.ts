import chalk from 'chalk';
import { formatDuration } from '../config/duration.js';
import type { LineFormatters } from './types.js';

const ok = (flag: boolean) => (flag ? chalk.green('ok') : chalk.red('FAILED'));

/** One line per event; the node name is in every line about a node (plain output is grepped by host). */
export const lineFor: LineFormatters = {
  'rollout-start': (e) =>
    `rollout of ${e.fleet}: ${e.nodes.length} node${e.nodes.length === 1 ? '' : 's'} in ${e.batches.length} batch${e.batches.length === 1 ? '' : 'es'}`,
  preflight: (e) => `${e.node} preflight ${ok(e.ok)} ${e.detail}`,
  'preflight-end': (e) =>
    e.ok
      ? 'preflight ok: every node ready'
      : chalk.red(`preflight refused: ${e.problems.length} problem(s); nothing was touched`),
  'batch-start': (e) => `batch ${e.batch + 1}${e.canary ? ' (canary)' : ''}: ${e.nodes.join(', ')}`,
  'step-start': (e) => `${e.node} ${e.step} started: ${e.detail}`,
  'step-progress': () => undefined,
  'step-end': (e) => `${e.node} ${e.step} ${ok(e.ok)} in ${formatDuration(e.durationMs)}: ${e.detail}`,
  escalation: (e) =>
    chalk.yellow(`${e.node} ESCALATION: sending ${e.signal}; still in flight: ${e.stillInFlight}`),
  hook: (e) =>
    `${e.node} hook ${e.hook} ${ok(e.ok)} in ${formatDuration(e.durationMs)}: ${e.command}${e.ok ? '' : ` — ${e.output.trim().split('\n').slice(-3).join(' | ')}`}`,
  pause: (e) => chalk.cyan(`after batch ${e.batch + 1}: ${e.detail}`),
  'node-end': (e) =>
    `${e.node} ${e.outcome === 'done' ? chalk.green('done') : e.outcome === 'forced' ? chalk.yellow('FORCED') : chalk.red(e.outcome.toUpperCase())} in ${formatDuration(e.durationMs)}${e.inRotation ? '' : chalk.red(' — OUT OF ROTATION')}${e.reason ? `: ${e.reason}` : ''}${e.forced ? chalk.yellow(`: drain ${e.forced.how}: ${e.forced.detail}`) : ''}`,
  'batch-end': (e) =>
    `batch ${e.batch + 1} finished${e.failed.length ? chalk.red(`; not done: ${e.failed.join(', ')}`) : ''}`,
  interrupt: (e) => chalk.yellow(`${e.signal} received (${e.count}): ${e.detail}`),
  warning: (e) => chalk.yellow(`${e.node ? `${e.node} ` : ''}warning: ${e.message}`),
  'rollout-end': (e) => `rollout ${e.report.status} in ${formatDuration(e.report.durationMs)}`,
};

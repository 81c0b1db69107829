import { randomUUID } from 'node:crypto';
import { formatDuration } from '../config/duration.js';
import type { RolloutReport } from '../engine/events.js';
import { STEPS } from '../plan/types.js';

/** Backslash-escapes what GitHub-flavoured Markdown would read as formatting, HTML or a table cell edge. */
export function markdownText(text: string): string {
  return text.replace(/[\\`*_[\]<>|#~]/g, '\\$&').replace(/\r?\n/g, ' ');
}

const STATUS_ICON: Record<RolloutReport['status'], string> = {
  ok: '✅',
  forced: '🟡',
  failed: '❌',
  'preflight-refused': '⛔',
  deadline: '⏱️',
  interrupted: '⚠️',
};

/** The job summary ($GITHUB_STEP_SUMMARY): a table like the terminal summary, then what needs a human. */
export function formatStepSummary(report: RolloutReport): string {
  const steps = STEPS.filter((step) => report.nodes.some((n) => n.phases[step] !== undefined));
  const header = ['node', 'outcome', 'in LB', ...steps, 'total'];
  const rows = report.nodes.map((n) => {
    const total = Object.values(n.phases).reduce((a, b) => a + (b ?? 0), 0);
    return [
      markdownText(n.node),
      n.outcome === 'done' ? n.outcome : `**${n.outcome}**`,
      n.inRotation ? 'yes' : '**NO**',
      ...steps.map((s) => (n.phases[s] === undefined ? '-' : formatDuration(n.phases[s]))),
      total ? formatDuration(total) : '-',
    ];
  });
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const out = [
    `### ${STATUS_ICON[report.status]} graceroll: ${markdownText(report.fleet)} — ${report.status} in ${formatDuration(report.durationMs)}`,
    '',
    row(header),
    row(header.map(() => '---')),
    ...rows.map(row),
    '',
    `**Status:** ${report.status}`,
    '',
    `**Out of rotation:** ${report.outOfRotation.length ? report.outOfRotation.map(markdownText).join(', ') : 'none'}`,
  ];
  const notes = [
    ...report.problems.map((p) => `- ${markdownText(p)}`),
    ...report.nodes.flatMap((n) => [
      ...(n.forced
        ? [`- **${markdownText(n.node)}: drain forced (${n.forced.how}): ${markdownText(n.forced.detail)}**`]
        : []),
      ...n.escalations.map((e) => `- ${markdownText(n.node)}: escalated: ${markdownText(e)}`),
      ...(n.reason ? [`- ${markdownText(n.node)}: ${markdownText(n.reason)}`] : []),
      ...(n.action ? [`- **${markdownText(n.action)}**`] : []),
    ]),
  ];
  if (notes.length) out.push('', ...notes);
  return `${out.join('\n')}\n\n`;
}

/**
 * Step outputs ($GITHUB_OUTPUT): `name=value` lines, and the report as a heredoc whose delimiter is random,
 * so no text inside it can end it early (as @actions/core `setOutput` does).
 */
export function formatStepOutputs(report: RolloutReport, delimiter = `ghadelimiter_${randomUUID()}`): string {
  const json = JSON.stringify(report);
  if (json.includes(delimiter)) throw new Error('the output delimiter occurs in the report');
  const failed = report.nodes.filter((n) => n.outcome === 'failed').map((n) => n.node);
  return [
    `status=${report.status}`,
    `failed-nodes=${failed.join(',')}`,
    `forced-nodes=${report.nodes
      .filter((n) => n.outcome === 'forced')
      .map((n) => n.node)
      .join(',')}`,
    `out-of-rotation=${report.outOfRotation.join(',')}`,
    `report<<${delimiter}`,
    json,
    delimiter,
    '',
  ].join('\n');
}

import { appendFileSync } from 'node:fs';
import type { EventKind, RolloutEvent, RolloutReport, Stamped } from '../engine/events.js';
import { formatStepOutputs, formatStepSummary } from './github-summary.js';
import type { Renderer } from './types.js';

/**
 * Workflow-command escaping, as @actions/core `escapeData`/`escapeProperty` do
 * (docs.github.com "Workflow commands for GitHub Actions").
 */
export const escapeData = (text: string): string =>
  text.replace(/%/g, '%25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
export const escapeProperty = (text: string): string =>
  escapeData(text).replace(/:/g, '%3A').replace(/,/g, '%2C');

type Annotation = 'error' | 'warning' | 'notice';
const titleFor = (node?: string) => (node ? `graceroll ${node}` : 'graceroll');

type Handlers = { [K in EventKind]: (event: Stamped<Extract<RolloutEvent, { kind: K }>>) => void };

/**
 * GitHub Actions output: a collapsible log group per node (per batch when a batch runs nodes
 * concurrently, since groups cannot nest or interleave), an annotation for every failed node, node left
 * out of rotation, escalation, failed hook and warning, and at the end a job summary table and step outputs.
 *
 * Returns undefined outside Actions. Combine it *before* the plain renderer: a group then opens before the
 * node's first line and closes just before its outcome line, which stays visible when the group is folded.
 * Workflow commands are read from stderr too, so with --json pass a `write` to stderr and stdout stays
 * pure JSON.
 */
export function createGithubReporter(
  env: NodeJS.ProcessEnv,
  write: (text: string) => void,
): Renderer | undefined {
  if (env.GITHUB_ACTIONS !== 'true') return undefined;
  let open: string | undefined;
  /** Set while a batch of more than one node runs: its nodes share the batch's group. */
  let batchGroup = false;

  const command = (text: string) => write(`${text}\n`);
  const startGroup = (title: string) => {
    endGroup();
    command(`::group::${escapeData(title)}`);
    open = title;
  };
  const endGroup = () => {
    if (open !== undefined) command('::endgroup::');
    open = undefined;
  };
  const annotate = (level: Annotation, node: string | undefined, message: string) =>
    command(`::${level} title=${escapeProperty(titleFor(node))}::${escapeData(message)}`);

  /** A node's first step (or a hook before it) opens its group, unless its batch already has one. */
  const nodeActive = (node: string) => {
    if (!batchGroup && open !== node) startGroup(node);
  };

  const writeFiles = (report: RolloutReport) => {
    const files: [string | undefined, () => string][] = [
      [env.GITHUB_STEP_SUMMARY, () => formatStepSummary(report)],
      [env.GITHUB_OUTPUT, () => formatStepOutputs(report)],
    ];
    for (const [path, text] of files) {
      if (!path) continue;
      try {
        appendFileSync(path, text());
      } catch (error) {
        // The rollout has already happened: a summary that cannot be written is worth a warning, not a crash.
        annotate('warning', undefined, `cannot write ${path}: ${(error as Error).message}`);
      }
    }
  };

  const handlers: Handlers = {
    'rollout-start': () => undefined,
    preflight: () => {
      if (open === undefined) startGroup('preflight');
    },
    'preflight-end': () => {
      if (open === 'preflight') endGroup();
    },
    'batch-start': (e) => {
      batchGroup = e.nodes.length > 1;
      if (batchGroup) startGroup(`batch ${e.batch + 1}${e.canary ? ' (canary)' : ''}: ${e.nodes.join(', ')}`);
    },
    'step-start': (e) => nodeActive(e.node),
    'step-progress': () => undefined,
    'step-end': () => undefined,
    escalation: (e) =>
      annotate('warning', e.node, `escalated to ${e.signal}; still in flight: ${e.stillInFlight}`),
    hook: (e) => {
      nodeActive(e.node);
      if (!e.ok) {
        const tail = e.output.trimEnd().split('\n').slice(-5).join('\n');
        annotate('warning', e.node, `hook ${e.hook} failed: ${e.command}${tail ? `\n${tail}` : ''}`);
      }
    },
    pause: (e) => annotate('notice', undefined, `after batch ${e.batch + 1}: ${e.detail}`),
    'node-end': (e) => {
      if (!batchGroup && open === e.node) endGroup();
      const out = e.inRotation ? '' : ' — OUT OF ROTATION';
      const why = e.reason ? `: ${e.reason}` : '';
      if (e.outcome === 'failed' || !e.inRotation)
        annotate('error', e.node, `${e.node} ${e.outcome}${out}${why}`);
      else if (e.outcome === 'interrupted') annotate('warning', e.node, `${e.node} interrupted${why}`);
      else if (e.forced)
        annotate('warning', e.node, `${e.node} drain forced (${e.forced.how}): ${e.forced.detail}`);
    },
    'batch-end': () => {
      if (batchGroup) endGroup();
      batchGroup = false;
    },
    interrupt: (e) => annotate('warning', undefined, `${e.signal} received (${e.count}): ${e.detail}`),
    warning: (e) => annotate('warning', e.node, e.message),
    'rollout-end': ({ report }) => {
      endGroup();
      for (const problem of report.problems) annotate('error', undefined, problem);
      writeFiles(report);
    },
  };

  return {
    handle(event) {
      (handlers[event.kind] as (e: Stamped) => void)(event);
    },
    finish: () => Promise.resolve(),
  };
}

import { Listr, type ListrTask } from 'listr2';
import { formatDuration } from '../config/duration.js';
import type { Stamped } from '../engine/events.js';
import type { RolloutPlan, StepName } from '../plan/types.js';
import { lineFor } from './lines.js';
import { formatSummary } from './summary.js';
import type { Renderer } from './types.js';

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

type StepResult = { ran: false } | { ran: true; ok: boolean; detail: string; durationMs: number };

/**
 * The live terminal view: one block per node, one line per step with its timing. listr2 only draws; the
 * engine's events drive it, so every task resolves from an event and never runs rollout logic itself.
 */
export function createLiveRenderer(plan: RolloutPlan, write: (text: string) => void): Renderer {
  const started = new Map(plan.nodes.map((n) => [n.node.name, deferred<boolean>()]));
  const stepStarted = new Map<string, Deferred<void>>();
  const stepDone = new Map<string, Deferred<StepResult>>();
  const key = (node: string, step: StepName) => `${node}\u0000${step}`;
  for (const n of plan.nodes) {
    for (const s of n.steps) {
      stepStarted.set(key(n.node.name, s.step), deferred());
      stepDone.set(key(n.node.name, s.step), deferred());
    }
  }
  const outputs = new Map<string, (text: string) => void>();
  const nodeTitles = new Map<string, (text: string) => void>();

  const nodeTasks: ListrTask[] = plan.nodes.map((n) => ({
    title: `${n.node.name} waiting`,
    task: async (_ctx, task) => {
      const runs = await started.get(n.node.name)!.promise;
      if (!runs) return task.skip(`${n.node.name} not started`);
      task.title = n.node.name;
      nodeTitles.set(n.node.name, (text) => (task.title = text));
      return task.newListr(
        n.steps.map((s) => ({
          title: `${n.node.name} ${s.step}`,
          task: async (_c, sub) => {
            outputs.set(key(n.node.name, s.step), (text) => (sub.output = text));
            const done = stepDone.get(key(n.node.name, s.step))!;
            await Promise.race([stepStarted.get(key(n.node.name, s.step))!.promise, done.promise]);
            const result = await done.promise;
            if (!result.ran) return sub.skip(`${n.node.name} ${s.step} not needed`);
            sub.title = `${n.node.name} ${s.step} ${formatDuration(result.durationMs)}: ${result.detail}`;
            if (!result.ok) throw new Error(`${n.node.name} ${s.step}: ${result.detail}`);
          },
        })),
        { concurrent: false, exitOnError: true },
      );
    },
  }));
  const listr = new Listr(nodeTasks, {
    concurrent: true,
    exitOnError: false,
    registerSignalListeners: false,
    rendererOptions: { collapseSubtasks: false, collapseErrors: false },
  });
  const running = listr.run().catch(() => undefined);
  const extra: string[] = [];

  const finishNode = (node: string) => {
    started.get(node)?.resolve(false);
    for (const s of plan.nodes.find((n) => n.node.name === node)?.steps ?? [])
      stepDone.get(key(node, s.step))!.resolve({ ran: false });
  };

  return {
    handle(event: Stamped) {
      switch (event.kind) {
        case 'step-start': {
          started.get(event.node)?.resolve(true);
          // Steps the pipeline passed over (escalation when the drain succeeded) resolve as skipped.
          const steps = plan.nodes.find((n) => n.node.name === event.node)?.steps ?? [];
          for (const s of steps.slice(
            0,
            steps.findIndex((s) => s.step === event.step),
          ))
            stepDone.get(key(event.node, s.step))!.resolve({ ran: false });
          stepStarted.get(key(event.node, event.step))?.resolve();
          break;
        }
        case 'step-progress':
          outputs.get(key(event.node, event.step))?.(event.detail);
          break;
        case 'step-end':
          stepDone
            .get(key(event.node, event.step))
            ?.resolve({ ran: true, ok: event.ok, detail: event.detail, durationMs: event.durationMs });
          break;
        case 'node-end':
          nodeTitles.get(event.node)?.(
            `${event.node} ${event.outcome} in ${formatDuration(event.durationMs)}${event.inRotation ? '' : ' — OUT OF ROTATION'}`,
          );
          finishNode(event.node);
          break;
        case 'rollout-end':
          for (const n of plan.nodes) finishNode(n.node.name);
          extra.push(formatSummary(event.report));
          break;
        case 'escalation':
        case 'warning':
        case 'interrupt':
        case 'preflight-end':
          extra.push(lineFor[event.kind](event as never) ?? '');
          break;
        default:
          break;
      }
    },
    async finish() {
      await running;
      if (extra.length) write(`\n${extra.join('\n')}\n`);
    },
  };
}

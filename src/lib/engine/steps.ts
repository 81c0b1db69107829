import { setTimeout as sleep } from 'node:timers/promises';
import { formatDuration, timerMs } from '../config/duration.js';
import { inRotation } from '../lb/types.js';
import { fail, OK } from '../outcome.js';
import type { HookName, PlannedStepOf, StepName } from '../plan/types.js';
import { runProbe, runProbes } from '../probes/run-probe.js';
import { runCommand } from '../service/run-command.js';
import { fillShell } from '../template.js';
import { must, type NodeRun, sameProcess, StepFailed } from './node-run.js';
import { waitUntil } from './wait.js';

/**
 * How one planned step runs. `skip` says why a step the plan holds is passed over this time (escalation
 * after a drain that finished); `run` returns the step's detail line or throws.
 */
export interface StepExecutor<S extends StepName> {
  skip?(step: PlannedStepOf<S>, run: NodeRun): string | undefined;
  run(step: PlannedStepOf<S>, run: NodeRun): Promise<string>;
}

type Settled<T> = { value: T } | { error: unknown };
/** A promise that never rejects: its outcome is kept to be thrown later, where it is awaited. */
const settle = <T>(promise: Promise<T>): Promise<Settled<T>> =>
  promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  );
function unsettle<T>(settled: Settled<T>): T {
  if ('error' in settled) throw settled.error;
  return settled.value;
}

/** One executor per step name: a step without one is a compile error. */
export type StepExecutors = { [S in StepName]: StepExecutor<S> };

const hookExecutor = (name: HookName) => ({
  async run(step: PlannedStepOf<HookName>, run: NodeRun): Promise<string> {
    for (const hook of step.hooks) {
      const started = performance.now();
      const on = hook.on === 'controller' ? (run.parts.controller ?? run.transport) : run.transport;
      const result = await runCommand(on, { shell: hook.command }, run.signal, hook.deadlineMs);
      run.emit({
        kind: 'hook',
        node: run.node.name,
        hook: name,
        command: hook.command,
        ok: result.outcome.ok,
        durationMs: performance.now() - started,
        output: `${result.stdout}${result.stderr}`.slice(-4000),
      });
      must(result.outcome, `${name} hook`);
    }
    return `${step.hooks.length} hook${step.hooks.length > 1 ? 's' : ''} ok`;
  },
});

export const STEP_EXECUTORS: StepExecutors = {
  beforeDeregister: hookExecutor('beforeDeregister'),
  beforeSignal: hookExecutor('beforeSignal'),
  afterRestart: hookExecutor('afterRestart'),
  afterRegister: hookExecutor('afterRegister'),

  deregister: {
    async run(step, run) {
      run.deregistered = true;
      must(await run.parts.lb.deregister(run.node, run.signal), 'deregister');
      await run.wait((s) => run.lbState((state) => !inRotation(state), s), {
        deadlineMs: step.deadlineMs,
        intervalMs: step.intervalMs,
        what: 'load balancer still has the node in rotation',
      });
      run.report.inRotation = false;
      return 'out of rotation';
    },
  },

  'lb-drain': {
    async run(step, run) {
      await run.wait(
        async (s) => {
          const state = await run.parts.lb.state(run.node, s);
          if (!state.ok) return state;
          const sessions = state.value.sessions ?? 0;
          return sessions === 0 ? OK : fail(`${sessions} active sessions`);
        },
        {
          deadlineMs: step.deadlineMs,
          intervalMs: step.intervalMs,
          what: 'load balancer sessions did not reach 0',
          progress: 'lb-drain',
        },
      );
      return '0 sessions';
    },
  },

  signal: {
    async run(step, run) {
      const ctx = run.serviceCtx(run.signal, step.commandTimeoutMs);
      const state = await run.parts.service.status(ctx);
      must(state, 'reading service state');
      if (state.ok && !state.value.running && run.reexamine) {
        // Resuming a node a previous run left stopped: nothing to signal or drain, restart it.
        run.alreadyStopped = true;
        return `already stopped (${state.value.detail}); nothing to signal`;
      }
      if (!state.ok || !state.value.running)
        throw new StepFailed('the service is not running, so there is nothing to signal');
      run.oldIdentity = state.value.identity;
      run.report.oldProcess = run.oldIdentity;
      if (step.command) {
        const on = step.command.on === 'controller' ? (run.parts.controller ?? run.transport) : run.transport;
        // {pid} is the only value not known when planning.
        const command = fillShell(step.command.run, { pid: run.oldIdentity.pid });
        const result = await runCommand(on, { shell: command }, run.signal, step.commandTimeoutMs);
        must(result.outcome, 'graceful command');
        const said = `${result.stdout}${result.stderr}`.trim().split('\n').slice(-1)[0];
        return `ran ${command} for pid ${run.oldIdentity.pid}${said ? `: ${said}` : ''}`;
      }
      must(
        await run.parts.service.sendSignal(ctx, step.signal, run.oldIdentity),
        `sending SIG${step.signal}`,
      );
      return `SIG${step.signal} sent to pid ${run.oldIdentity.pid}`;
    },
  },

  drain: {
    skip: (_step, run) => (run.alreadyStopped ? 'the service was already stopped' : undefined),
    async run(step, run) {
      // A signalled process that exits while a probe still fails (a socket file left behind, a hit drain
      // cap) ends the drain at once: waiting on would only end in escalating against whatever runs next.
      let exitedEarly: string | undefined;
      const early = new AbortController();
      // Settled into a value at once: a rejection while the probes are still polled must not go unhandled.
      const sessionsWait = step.lbSessions
        ? settle(
            waitUntil(
              async (s) => {
                const state = await run.parts.lb.state(run.node, s);
                if (!state.ok) return state;
                const n = state.value.sessions ?? 0;
                return n === 0 ? OK : fail(`${n} active sessions`);
              },
              {
                intervalMs: step.lbSessions.intervalMs,
                deadlineMs: step.lbSessions.deadlineMs,
                signal: run.signal,
              },
            ),
          )
        : undefined;
      const outcome = await waitUntil(
        async (s) => {
          const probe = () => runProbes(step.probes, run.probeCtx(s, step.commandTimeoutMs, run.oldIdentity));
          const probes = await probe();
          if (probes.ok) return probes;
          const gone = await run.signalledGone(s, step.commandTimeoutMs);
          if (gone === undefined) return probes;
          // It may have finished its work and exited between the probes and the status: ask them again.
          const after = await probe();
          if (after.ok) return after;
          exitedEarly = `${gone} before it drained; still in flight: ${after.reason}`;
          early.abort();
          return after;
        },
        {
          intervalMs: step.intervalMs,
          deadlineMs: step.deadlineMs,
          signal: AbortSignal.any([run.signal, early.signal]),
          onCheck: (o) =>
            run.emit({
              kind: 'step-progress',
              node: run.node.name,
              step: 'drain',
              detail: o.ok ? 'drained' : o.reason,
            }),
        },
      );
      // Long-lived connections: the LB's sessions end only after the signal, beside the probes.
      const sessions = sessionsWait && unsettle(await sessionsWait);
      if (outcome.ok && sessions && !sessions.ok) {
        if (sessions.why === 'aborted')
          throw new StepFailed(
            `load balancer sessions did not reach 0 before the interruption: ${sessions.lastReason}`,
          );
        if (step.onDeadline === 'halt')
          throw new StepFailed(
            `load balancer sessions did not reach 0 within ${formatDuration(step.lbSessions!.deadlineMs)}: ${sessions.lastReason}`,
          );
        run.drainFailure = `load balancer: ${sessions.lastReason}`;
        return `drain probes passed in ${formatDuration(outcome.elapsedMs)}, but the load balancer still reports ${sessions.lastReason} after ${formatDuration(step.lbSessions!.deadlineMs)} (escalating)`;
      }
      const lbNote = sessions?.ok
        ? `; load balancer sessions 0 after ${formatDuration(sessions.elapsedMs)}`
        : '';
      if (outcome.ok) {
        // process-exited passes for another process in its place too: was it the service manager's?
        const gone = await run.signalledGone(run.signal, step.commandTimeoutMs);
        if (run.replacement && gone) {
          run.emit({
            kind: 'warning',
            node: run.node.name,
            message: `${gone}; it is verified as the restarted one`,
          });
          return `drained in ${formatDuration(outcome.elapsedMs)}${lbNote}; ${gone}`;
        }
        return `drained in ${formatDuration(outcome.elapsedMs)}${lbNote}`;
      }
      if (exitedEarly !== undefined) {
        run.report.forced = { how: 'exited-early', detail: exitedEarly };
        if (run.replacement) run.emit({ kind: 'warning', node: run.node.name, message: exitedEarly });
        return `exited before drained: ${exitedEarly}`;
      }
      if (outcome.why === 'aborted' || step.onDeadline === 'halt')
        throw new StepFailed(
          `did not drain ${outcome.why === 'aborted' ? 'before the interruption' : `within ${formatDuration(step.deadlineMs)}`}: ${outcome.lastReason}`,
        );
      run.drainFailure = outcome.lastReason;
      return `not drained within ${formatDuration(step.deadlineMs)} (escalating): ${outcome.lastReason}`;
    },
  },

  escalate: {
    skip: (_step, run) =>
      run.drainFailure === undefined ? 'the drain finished before its deadline' : undefined,
    async run(step, run) {
      let stillInFlight = run.drainFailure ?? 'unknown';
      for (const stage of step.chain) {
        // Only the signalled process is ever signalled: checked (PID + start time) before every signal.
        const gone = await run.signalledGone(run.signal, step.commandTimeoutMs);
        if (gone !== undefined) return `${gone}; escalation stopped before SIG${stage.signal}`;
        run.emit({ kind: 'escalation', node: run.node.name, signal: `SIG${stage.signal}`, stillInFlight });
        run.report.escalations.push(`SIG${stage.signal}: ${stillInFlight}`);
        run.report.forced = { how: 'escalated', detail: `SIG${stage.signal} while ${stillInFlight}` };
        must(
          await run.parts.service.sendSignal(
            run.serviceCtx(run.signal, step.commandTimeoutMs),
            stage.signal,
            run.oldIdentity,
          ),
          `sending SIG${stage.signal}`,
        );
        const exited = await waitUntil(
          (s) =>
            runProbe({ type: 'process-exited' }, run.probeCtx(s, step.commandTimeoutMs, run.oldIdentity)),
          { intervalMs: step.intervalMs, deadlineMs: stage.deadlineMs, signal: run.signal },
        );
        if (exited.ok) {
          await run.signalledGone(run.signal, step.commandTimeoutMs); // notes a replacement, if any
          return `exited after SIG${stage.signal}`;
        }
        if (exited.why === 'aborted') throw new StepFailed(`escalation cut short (${exited.lastReason})`);
        stillInFlight = exited.lastReason;
      }
      throw new StepFailed(
        `still running after ${step.chain.map((e) => `SIG${e.signal}`).join(', ')}: ${stillInFlight}`,
      );
    },
  },

  restart: {
    skip: (_step, run) =>
      run.replacement ? `the service manager already started pid ${run.replacement.pid}` : undefined,
    async run(step, run) {
      must(await run.parts.service.restart(run.serviceCtx(run.signal, step.deadlineMs)), 'restart');
      return 'restarted';
    },
  },

  verify: {
    async run(step, run) {
      await run.wait(
        async (s) => {
          const state = await run.parts.service.status(run.serviceCtx(s, step.commandTimeoutMs));
          if (!state.ok) return state;
          if (!state.value.running) return fail(`service is ${state.value.detail}`);
          if (run.oldIdentity && sameProcess(state.value.identity, run.oldIdentity))
            return fail(`still the old process (pid ${run.oldIdentity.pid})`);
          run.report.newProcess = state.value.identity;
          return runProbes(step.probes, run.probeCtx(s, step.commandTimeoutMs));
        },
        {
          deadlineMs: step.deadlineMs,
          intervalMs: step.intervalMs,
          consecutive: step.consecutive,
          what: 'not healthy',
          progress: 'verify',
        },
      );
      return `pid ${run.report.newProcess?.pid} healthy ${step.consecutive}× in a row`;
    },
  },

  register: {
    async run(step, run) {
      must(await run.parts.lb.register(run.node, run.signal), 'register');
      await run.wait((s) => run.lbState((state) => state === 'up', s), {
        deadlineMs: step.deadlineMs,
        intervalMs: step.intervalMs,
        what: 'load balancer does not report the node up',
        progress: 'register',
      });
      run.report.inRotation = true;
      run.deregistered = false;
      return 'up in the load balancer';
    },
  },

  settle: {
    async run(step, run) {
      const until = performance.now() + step.durationMs;
      let checks = 0;
      for (;;) {
        must(
          await runProbes(step.probes, run.probeCtx(run.signal, step.commandTimeoutMs)),
          'unhealthy while settling',
        );
        checks += 1;
        const left = until - performance.now();
        if (left <= 0) break;
        try {
          await sleep(timerMs(Math.min(step.intervalMs, left)), undefined, { signal: run.signal });
        } catch {
          throw new StepFailed(`settle cut short after ${checks} healthy check${checks > 1 ? 's' : ''}`);
        }
      }
      return `stayed healthy for ${formatDuration(step.durationMs)} (${checks} checks)`;
    },
  },
};

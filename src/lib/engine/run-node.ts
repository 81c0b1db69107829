import { formatDuration } from '../config/duration.js';
import type { FleetNode } from '../config/types.js';
import { inRotation, type LbServerStateName } from '../lb/types.js';
import { fail, OK, type Outcome } from '../outcome.js';
import type { StepName } from '../plan/types.js';
import { runProbe, runProbes } from '../probes/run-probe.js';
import type { ProbeContext } from '../probes/types.js';
import type { ProcessIdentity, ServiceContext } from '../service/types.js';
import type { HookName, NodeReport } from './events.js';
import { runCommand } from '../service/run-command.js';
import { fillShell, nodeValues } from '../template.js';
import type { EngineParts } from './types.js';
import { waitUntil, type WaitOutcome } from './wait.js';

/** Thrown inside a node's pipeline to end it; carries the reason. Caught in runNode only. */
class StepFailed extends Error {}

const describeWait = (wait: WaitOutcome & { ok: false }, deadlineMs: number) =>
  wait.why === 'aborted'
    ? `cut short (${wait.lastReason})`
    : `not within ${formatDuration(deadlineMs)}: ${wait.lastReason}`;

const sameProcess = (a: ProcessIdentity, b: ProcessIdentity) =>
  a.pid === b.pid && a.startTime === b.startTime;

/** How long restoring a node may take after the rollout was cut short. */
const RESTORE_DEADLINE_MS = 15_000;

/**
 * One node's pipeline: deregister, LB drain, graceful signal, drain wait, escalation, restart, verify,
 * re-register, settle. Expected failures end the pipeline with a report; the node is only ever put back
 * into rotation when it is healthy.
 */
export async function runNode(
  node: FleetNode,
  parts: EngineParts,
  abort: AbortSignal,
  reexamine = false,
): Promise<NodeReport> {
  const { fleet, service, lb, emit } = parts;
  const transport = parts.transportFor(node);
  const hasLb = lb.type !== 'none';
  const report: NodeReport = {
    node: node.name,
    outcome: 'done',
    inRotation: true,
    phases: {},
    escalations: [],
  };
  const started = performance.now();
  const timeoutMs = fleet.deadlines.command;
  const serviceCtx = (signal: AbortSignal): ServiceContext => ({ transport, node, signal, timeoutMs });
  const probeCtx = (signal: AbortSignal, oldIdentity?: ProcessIdentity): ProbeContext => ({
    node,
    transport,
    service,
    lb,
    oldIdentity,
    signal,
    commandTimeoutMs: timeoutMs,
  });

  const step = async (name: StepName, detail: string, body: () => Promise<string>): Promise<void> => {
    emit({ kind: 'step-start', node: node.name, step: name, detail });
    const stepStarted = performance.now();
    let ok = false;
    let result = '';
    try {
      result = await body();
      ok = true;
    } catch (error) {
      if (!(error instanceof StepFailed)) throw error;
      result = error.message;
      throw error;
    } finally {
      const durationMs = performance.now() - stepStarted;
      report.phases[name] = (report.phases[name] ?? 0) + durationMs;
      emit({ kind: 'step-end', node: node.name, step: name, ok, durationMs, detail: result });
    }
  };
  const must = (outcome: Outcome, what: string): void => {
    if (!outcome.ok) throw new StepFailed(`${what}: ${outcome.reason}`);
  };
  const wait = async (
    check: (signal: AbortSignal) => Promise<Outcome>,
    deadlineMs: number,
    what: string,
    // The load balancer is polled as often as the drain probes (drain.interval).
    intervalMs = fleet.drain.interval,
    consecutive = 1,
    progressStep?: StepName,
  ) => {
    const outcome = await waitUntil(check, {
      intervalMs,
      deadlineMs,
      signal: abort,
      consecutive,
      onCheck: progressStep
        ? (o, streak) =>
            emit({
              kind: 'step-progress',
              node: node.name,
              step: progressStep,
              detail: o.ok ? `${streak}/${consecutive} ok` : o.reason,
            })
        : undefined,
    });
    if (!outcome.ok) throw new StepFailed(`${what} ${describeWait(outcome, deadlineMs)}`);
    return outcome;
  };
  const lbState = async (
    want: (state: LbServerStateName) => boolean,
    signal: AbortSignal,
  ): Promise<Outcome> => {
    const state = await lb.state(node, signal);
    if (!state.ok) return state;
    return want(state.value.state)
      ? OK
      : fail(
          `load balancer reports ${state.value.state}${state.value.sessions !== undefined ? ` with ${state.value.sessions} sessions` : ''}`,
        );
  };

  const hooks = async (name: HookName) => {
    for (const hook of fleet.hooks[name]) {
      const command = fillShell(hook.command, nodeValues(node));
      const hookStarted = performance.now();
      const runOn = hook.on === 'controller' ? (parts.controller ?? transport) : transport;
      const result = await runCommand(runOn, { shell: command }, abort, hook.deadline);
      const output = `${result.stdout}${result.stderr}`.slice(-4000);
      emit({
        kind: 'hook',
        node: node.name,
        hook: name,
        command,
        ok: result.outcome.ok,
        durationMs: performance.now() - hookStarted,
        output,
      });
      must(result.outcome, `${name} hook`);
    }
  };

  let deregistered = false;
  let oldIdentity: ProcessIdentity | undefined;
  try {
    await hooks('beforeDeregister');
    if (hasLb) {
      await step('deregister', 'out of rotation', async () => {
        deregistered = true;
        must(await lb.deregister(node, abort), 'deregister');
        await wait(
          (s) => lbState((st) => !inRotation(st), s),
          fleet.deadlines.deregister,
          'load balancer still has the node in rotation',
        );
        report.inRotation = false;
        return 'out of rotation';
      });
      await step('lb-drain', 'waiting for 0 sessions', async () => {
        await wait(
          async (s) => {
            const state = await lb.state(node, s);
            if (!state.ok) return state;
            const sessions = state.value.sessions ?? 0;
            return sessions === 0 ? OK : fail(`${sessions} active sessions`);
          },
          fleet.deadlines.lbDrain,
          'load balancer sessions did not reach 0',
          fleet.drain.interval,
          1,
          'lb-drain',
        );
        return '0 sessions';
      });
    }

    await hooks('beforeSignal');
    let alreadyStopped = false;
    await step('signal', `SIG${fleet.service.signal}`, async () => {
      const state = await service.status(serviceCtx(abort));
      must(state, 'reading service state');
      if (state.ok && !state.value.running && reexamine) {
        // Resuming a node a previous run left stopped: nothing to signal or drain, restart it.
        alreadyStopped = true;
        return `already stopped (${state.value.detail}); nothing to signal`;
      }
      if (!state.ok || !state.value.running)
        throw new StepFailed('the service is not running, so there is nothing to signal');
      oldIdentity = state.value.identity;
      report.oldProcess = oldIdentity;
      must(
        await service.sendSignal(serviceCtx(abort), fleet.service.signal, oldIdentity),
        `sending SIG${fleet.service.signal}`,
      );
      return `SIG${fleet.service.signal} sent to pid ${oldIdentity.pid}`;
    });

    let drainFailure: string | undefined;
    if (!alreadyStopped)
      await step('drain', fleet.drain.probes.map((p) => p.type).join(', '), async () => {
        const outcome = await waitUntil((s) => runProbes(fleet.drain.probes, probeCtx(s, oldIdentity)), {
          intervalMs: fleet.drain.interval,
          deadlineMs: fleet.drain.deadline,
          signal: abort,
          onCheck: (o) =>
            emit({
              kind: 'step-progress',
              node: node.name,
              step: 'drain',
              detail: o.ok ? 'drained' : o.reason,
            }),
        });
        if (outcome.ok) return `drained in ${formatDuration(outcome.elapsedMs)}`;
        if (outcome.why === 'aborted' || fleet.drain.onDeadline === 'halt')
          throw new StepFailed(`did not drain ${describeWait(outcome, fleet.drain.deadline)}`);
        drainFailure = outcome.lastReason;
        return `not drained within ${formatDuration(fleet.drain.deadline)}: ${outcome.lastReason}`;
      });

    if (drainFailure !== undefined) {
      await step('escalate', `drain deadline passed: ${drainFailure}`, async () => {
        let stillInFlight = drainFailure!;
        for (const escalation of fleet.drain.escalation) {
          emit({ kind: 'escalation', node: node.name, signal: `SIG${escalation.signal}`, stillInFlight });
          report.escalations.push(`SIG${escalation.signal}: ${stillInFlight}`);
          must(
            await service.sendSignal(serviceCtx(abort), escalation.signal, oldIdentity),
            `sending SIG${escalation.signal}`,
          );
          const exited = await waitUntil(
            (s) => runProbe({ type: 'process-exited' }, probeCtx(s, oldIdentity)),
            {
              intervalMs: fleet.drain.interval,
              deadlineMs: escalation.deadline,
              signal: abort,
            },
          );
          if (exited.ok) return `exited after SIG${escalation.signal}`;
          if (exited.why === 'aborted') throw new StepFailed(`escalation cut short (${exited.lastReason})`);
          stillInFlight = exited.lastReason;
        }
        throw new StepFailed(
          `still running after ${fleet.drain.escalation.map((e) => `SIG${e.signal}`).join(', ')}: ${stillInFlight}`,
        );
      });
    }

    await step('restart', 'restart', async () => {
      must(await service.restart({ ...serviceCtx(abort), timeoutMs: fleet.deadlines.restart }), 'restart');
      return 'restarted';
    });
    await hooks('afterRestart');

    await step('verify', `new process + ${fleet.health.consecutive} healthy probes`, async () => {
      await wait(
        async (s) => {
          const state = await service.status(serviceCtx(s));
          if (!state.ok) return state;
          if (!state.value.running) return fail(`service is ${state.value.detail}`);
          if (oldIdentity && sameProcess(state.value.identity, oldIdentity))
            return fail(`still the old process (pid ${oldIdentity.pid})`);
          report.newProcess = state.value.identity;
          return runProbes(fleet.health.probes, probeCtx(s));
        },
        fleet.deadlines.verify,
        'not healthy',
        fleet.health.interval,
        fleet.health.consecutive,
        'verify',
      );
      return `pid ${report.newProcess?.pid} healthy ${fleet.health.consecutive}× in a row`;
    });

    if (hasLb) {
      await step('register', 'back into rotation', async () => {
        must(await lb.register(node, abort), 'register');
        await wait(
          (s) => lbState((st) => st === 'up', s),
          fleet.deadlines.register,
          'load balancer does not report the node up',
          fleet.drain.interval,
          1,
          'register',
        );
        report.inRotation = true;
        deregistered = false;
        return 'up in the load balancer';
      });
    }
    await hooks('afterRegister');

    if (fleet.rollout.settle > 0) {
      await step('settle', `healthy for ${formatDuration(fleet.rollout.settle)}`, async () => {
        const until = performance.now() + fleet.rollout.settle;
        while (performance.now() < until) {
          must(await runProbes(fleet.health.probes, probeCtx(abort)), 'unhealthy while settling');
          await waitUntil(() => Promise.resolve(fail('settling')), {
            intervalMs: fleet.health.interval,
            deadlineMs: Math.max(1, Math.min(fleet.health.interval, until - performance.now())),
            signal: abort,
          });
          if (abort.aborted) throw new StepFailed('settle cut short');
        }
        return 'stayed healthy';
      });
    }
  } catch (error) {
    if (!(error instanceof StepFailed)) throw error;
    report.outcome = abort.aborted ? 'interrupted' : 'failed';
    report.reason = error.message;
    if (deregistered) await restoreIfHealthy(node, parts, report, oldIdentity, abort.aborted);
  }
  emit({
    kind: 'node-end',
    node: node.name,
    outcome: report.outcome,
    inRotation: report.inRotation,
    durationMs: performance.now() - started,
    reason: report.reason,
  });
  return report;
}

/**
 * After a cut-short or failed pipeline. A failed node is never put back: the operator must look at it
 * first; the load balancer is asked where it stands, so a node whose deregistration never reached the
 * LB is not reported out, and one the LB cannot be asked about is reported as unknown (and counted out).
 * An interrupted node goes back into rotation only if it runs a process other than the one that was
 * signalled and its health probes pass `health.consecutive` times in a row, as in verify.
 */
async function restoreIfHealthy(
  node: FleetNode,
  parts: EngineParts,
  report: NodeReport,
  oldIdentity: ProcessIdentity | undefined,
  interrupted: boolean,
): Promise<void> {
  const { fleet } = parts;
  const signal = AbortSignal.timeout(RESTORE_DEADLINE_MS);
  const out = (why: string) => {
    report.inRotation = false;
    report.action = `${node.name} is OUT of rotation (${why}); check it, then rerun with --nodes ${node.name} or put it back in the load balancer by hand`;
  };
  if (!interrupted) {
    const lbState = await parts.lb.state(node, signal);
    if (!lbState.ok) {
      report.inRotation = false;
      report.action = `${node.name}: its rotation state is UNKNOWN (load balancer: ${lbState.reason}); check the load balancer before anything else`;
      return;
    }
    if (inRotation(lbState.value.state)) {
      report.inRotation = true;
      return;
    }
    return out('it failed');
  }
  const transport = parts.transportFor(node);
  const state = await parts.service.status({ transport, node, signal, timeoutMs: RESTORE_DEADLINE_MS });
  if (!state.ok || !state.value.running)
    return out(`service not running${state.ok ? '' : `: ${state.reason}`}`);
  if (oldIdentity && sameProcess(state.value.identity, oldIdentity) && report.phases.signal !== undefined) {
    return out('the signalled process is still draining');
  }
  const healthy = await waitUntil(
    (s) =>
      runProbes(fleet.health.probes, {
        node,
        transport,
        service: parts.service,
        lb: parts.lb,
        signal: s,
        commandTimeoutMs: RESTORE_DEADLINE_MS,
      }),
    {
      intervalMs: fleet.health.interval,
      deadlineMs: RESTORE_DEADLINE_MS,
      signal,
      consecutive: fleet.health.consecutive,
    },
  );
  if (!healthy.ok) return out(`not healthy ${fleet.health.consecutive}× in a row: ${healthy.lastReason}`);
  const registered = await parts.lb.register(node, signal);
  if (!registered.ok) return out(`re-registering failed: ${registered.reason}`);
  report.inRotation = true;
  parts.emit({
    kind: 'warning',
    node: node.name,
    message: `${node.name} was healthy ${fleet.health.consecutive}× in a row and is back in rotation after the interruption`,
  });
}

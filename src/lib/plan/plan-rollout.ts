import type { Fleet, FleetNode } from '../config/types.js';
import { formatDuration } from '../config/duration.js';
import type { LoadBalancer } from '../lb/types.js';
import { defaultLockPath, HEARTBEAT_MS } from '../lock/lock.js';
import { describeProbe, type Probe } from '../probes/run-probe.js';
import type { ServiceManager } from '../service/types.js';
import { fillShell, nodeValues } from '../template.js';
import { commandLine } from '../transport/quote.js';
import { computeBatches, resolveCount } from './batches.js';
import type { HookName, NodePlan, PlannedAction, PlannedStep, RolloutPlan } from './types.js';
import { lbWhere, lockHost, nodeWhere, sshWhere, THIS_MACHINE } from './where.js';

/** Putting a node back after an interruption should not keep the operator waiting long. */
const MAX_RESTORE_MS = 15_000;

export interface PlanParts {
  service: Pick<ServiceManager, 'commands'>;
  lb: Pick<LoadBalancer, 'type' | 'describe'>;
}

/** Probes that run on the node (over its transport); the others run here or ask the load balancer. */
const probeWhere = (probe: Probe, onNode: string, onLb: string): string =>
  probe.type === 'http' || probe.type === 'tcp' ? THIS_MACHINE : probe.type === 'lb-sessions' ? onLb : onNode;

function planNode(fleet: Fleet, node: FleetNode, parts: PlanParts): NodePlan {
  const { drain, health, deadlines, rollout } = fleet;
  const commands = parts.service.commands(node);
  const lbRequests = parts.lb.describe(node);
  const hasLb = parts.lb.type !== 'none';
  const onNode = nodeWhere(fleet, node);
  const onLb = lbWhere(fleet);
  const commandTimeoutMs = deadlines.command;
  const at = (on: string, runs: string[]): PlannedAction[] => runs.map((run) => ({ on, run }));
  const probes = (list: readonly Probe[]) =>
    list.map((probe) => ({ on: probeWhere(probe, onNode, onLb), run: describeProbe(probe, node) }));
  const steps: PlannedStep[] = [];

  const hookStep = (name: HookName, when: string) => {
    const hooks = fleet.hooks[name].map((hook) => ({
      command: fillShell(hook.command, nodeValues(node)),
      on: hook.on,
      deadlineMs: hook.deadline,
    }));
    if (!hooks.length) return;
    steps.push({
      step: name,
      summary: `${name} hook${hooks.length > 1 ? 's' : ''} ${when}; a failing hook fails the node`,
      actions: hooks.map((h) => ({ on: h.on === 'controller' ? THIS_MACHINE : onNode, run: h.command })),
      deadlineMs: hooks.reduce((sum, h) => sum + h.deadlineMs, 0),
      commandTimeoutMs,
      hooks,
    });
  };

  hookStep('beforeDeregister', 'before the node leaves the load balancer');
  const lbSessions = hasLb ? drain.lbSessions : 'never';
  if (hasLb) {
    steps.push({
      step: 'deregister',
      summary: 'take the node out of rotation and confirm the load balancer reports it out',
      actions: at(onLb, [...lbRequests.deregister, ...lbRequests.state]),
      deadlineMs: deadlines.deregister,
      intervalMs: drain.interval,
      commandTimeoutMs,
    });
  }
  if (lbSessions === 'before-signal') {
    steps.push({
      step: 'lb-drain',
      summary: `wait until the load balancer reports no active sessions (polled every ${formatDuration(drain.interval)})`,
      actions: at(onLb, lbRequests.state),
      deadlineMs: deadlines.lbDrain,
      intervalMs: drain.interval,
      commandTimeoutMs,
    });
  }
  hookStep('beforeSignal', 'before the graceful signal');
  const graceful = fleet.service.gracefulCommand;
  const gracefulRun = graceful && fillShell(graceful.command, nodeValues(node));
  steps.push({
    step: 'signal',
    summary: gracefulRun
      ? `record the process identity (PID + start time), then ask it to shut down: ${gracefulRun}`
      : `record the process identity (PID + start time), send SIG${fleet.service.signal}`,
    actions: [
      ...at(onNode, [commandLine(commands.status)]),
      gracefulRun
        ? { on: graceful.on === 'controller' ? THIS_MACHINE : onNode, run: gracefulRun }
        : { on: onNode, run: commandLine(commands.signal(fleet.service.signal)) },
    ],
    deadlineMs: commandTimeoutMs,
    commandTimeoutMs,
    signal: fleet.service.signal,
    ...(gracefulRun ? { command: { run: gracefulRun, on: graceful.on } } : {}),
  });
  steps.push({
    step: 'drain',
    summary:
      `poll every ${formatDuration(drain.interval)} until all drain probes pass` +
      (lbSessions === 'with-drain'
        ? ` and, beside them, until the load balancer reports 0 sessions (deadline ${formatDuration(deadlines.lbDrain)})`
        : '') +
      '; at the deadline ' +
      (drain.onDeadline === 'escalate' ? 'escalate' : 'halt the rollout and leave the node out of rotation'),
    actions: [...probes(drain.probes), ...(lbSessions === 'with-drain' ? at(onLb, lbRequests.state) : [])],
    deadlineMs: drain.deadline,
    intervalMs: drain.interval,
    probes: drain.probes,
    onDeadline: drain.onDeadline,
    ...(lbSessions === 'with-drain'
      ? { lbSessions: { deadlineMs: deadlines.lbDrain, intervalMs: drain.interval } }
      : {}),
    commandTimeoutMs,
  });
  if (drain.onDeadline === 'escalate') {
    steps.push({
      step: 'escalate',
      summary:
        'only if the drain deadline passes: ' +
        drain.escalation
          .map((e) => `SIG${e.signal} then wait ${formatDuration(e.deadline)} for exit`)
          .join(', '),
      actions: at(
        onNode,
        drain.escalation.map((e) => commandLine(commands.signal(e.signal))),
      ),
      deadlineMs: drain.escalation.reduce((sum, e) => sum + e.deadline, 0),
      chain: drain.escalation.map((e) => ({ signal: e.signal, deadlineMs: e.deadline })),
      intervalMs: drain.interval,
      commandTimeoutMs,
    });
  }
  steps.push({
    step: 'restart',
    summary: 'restart the service',
    actions: at(onNode, [commandLine(commands.restart)]),
    deadlineMs: deadlines.restart,
    commandTimeoutMs,
  });
  hookStep('afterRestart', 'after the restart, before the health gate');
  steps.push({
    step: 'verify',
    summary: `a new process (PID + start time changed), then ${health.consecutive} healthy probes in a row every ${formatDuration(health.interval)}`,
    actions: [...at(onNode, [commandLine(commands.status)]), ...probes(health.probes)],
    deadlineMs: deadlines.verify,
    probes: health.probes,
    consecutive: health.consecutive,
    intervalMs: health.interval,
    commandTimeoutMs,
  });
  if (hasLb) {
    steps.push({
      step: 'register',
      summary: 'put the node back into rotation and wait until the load balancer reports it up',
      actions: at(onLb, [...lbRequests.register, ...lbRequests.state]),
      deadlineMs: deadlines.register,
      intervalMs: drain.interval,
      commandTimeoutMs,
    });
  }
  hookStep('afterRegister', 'after the node is back in rotation');
  if (rollout.settle > 0) {
    steps.push({
      step: 'settle',
      summary: `stay healthy for ${formatDuration(rollout.settle)} (probes every ${formatDuration(health.interval)}) before the next node`,
      actions: probes(health.probes),
      deadlineMs: rollout.settle,
      durationMs: rollout.settle,
      probes: health.probes,
      intervalMs: health.interval,
      commandTimeoutMs,
    });
  }
  return {
    node,
    on: onNode,
    steps,
    restore: {
      probes: health.probes,
      consecutive: health.consecutive,
      intervalMs: health.interval,
      deadlineMs: Math.min(deadlines.verify, MAX_RESTORE_MS),
    },
  };
}

/**
 * How many nodes may be out of rotation at once. By default the batch size, but never the whole fleet:
 * a batch size (or --batch-size) that would take every node out is capped, with a notice; taking every
 * node out needs rollout.maxUnavailable set that high, and the plan says so.
 */
function unavailability(fleet: Fleet): {
  maxUnavailable: number;
  batchSize: number | string;
  notices: string[];
} {
  const total = fleet.nodes.length;
  const batch = resolveCount(fleet.rollout.batchSize, total, 1);
  const notices: string[] = [];
  if (fleet.rollout.maxUnavailable !== undefined) {
    const max = resolveCount(fleet.rollout.maxUnavailable, total, 1);
    if (max >= total && total > 1)
      notices.push(`rollout.maxUnavailable lets all ${total} nodes be out of rotation at once`);
    return { maxUnavailable: max, batchSize: fleet.rollout.batchSize, notices };
  }
  const max = Math.min(batch, Math.max(1, total - 1));
  if (max < batch)
    notices.push(
      `a batch of ${batch} would take every node out of rotation at once: batches of ${max} instead (set rollout.maxUnavailable: 100% to allow it)`,
    );
  return { maxUnavailable: max, batchSize: max < batch ? max : fleet.rollout.batchSize, notices };
}

/** The whole rollout as data: batches and each node's steps with their exact commands. No I/O. */
export function planRollout(fleet: Fleet, parts: PlanParts): RolloutPlan {
  const { maxUnavailable, batchSize, notices } = unavailability(fleet);
  const batches = computeBatches(
    fleet.nodes.map((n) => n.name),
    batchSize,
    fleet.rollout.canary,
  );
  const pause = fleet.rollout.pauseAfterCanary;
  const lockAt = lockHost(fleet);
  return {
    fleet: fleet.name,
    lock: {
      on: lockAt && fleet.transport.type === 'ssh' ? sshWhere(fleet, lockAt) : THIS_MACHINE,
      path: defaultLockPath(fleet),
      staleAfterMs: fleet.lock.staleAfter,
      heartbeatMs: HEARTBEAT_MS,
    },
    preflight: [
      'every node reachable and its service running',
      ...(fleet.health.probes.length ? ['every node passes its health probes'] : []),
      ...(parts.lb.type !== 'none' ? ['the load balancer knows every node and has it up'] : []),
    ],
    batches: batches.map((batch, index) => ({
      index,
      ...batch,
      ...(batch.canary && index < batches.length - 1 && pause !== 'none'
        ? { pauseAfter: pause === 'confirm' ? ('confirm' as const) : { waitMs: pause } }
        : {}),
    })),
    nodes: fleet.nodes.map((node) => planNode(fleet, node, parts)),
    maxFailures: resolveCount(fleet.rollout.maxFailures, fleet.nodes.length),
    maxUnavailable,
    notices,
    forced: { then: fleet.drain.onForced, isOk: fleet.drain.forcedIsOk },
    rolloutDeadlineMs: fleet.deadlines.rollout,
  };
}

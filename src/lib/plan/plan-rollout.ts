import type { Fleet, FleetNode } from '../config/types.js';
import { formatDuration } from '../config/duration.js';
import type { LoadBalancer } from '../lb/types.js';
import { describeProbe } from '../probes/run-probe.js';
import type { ServiceManager } from '../service/types.js';
import { commandLine } from '../transport/quote.js';
import { computeBatches, resolveCount } from './batches.js';
import type { NodePlan, PlannedStep, RolloutPlan } from './types.js';

export interface PlanParts {
  service: ServiceManager;
  lb: LoadBalancer;
}

function planNode(fleet: Fleet, node: FleetNode, parts: PlanParts): NodePlan {
  const { drain, health, deadlines, rollout } = fleet;
  const commands = parts.service.commands(node);
  const lbRequests = parts.lb.describe(node);
  const hasLb = parts.lb.type !== 'none';
  const steps: PlannedStep[] = [];
  if (hasLb) {
    steps.push({
      step: 'deregister',
      summary: 'take the node out of rotation and confirm the load balancer reports it out',
      actions: [...lbRequests.deregister, ...lbRequests.state],
      deadlineMs: deadlines.deregister,
    });
    steps.push({
      step: 'lb-drain',
      summary: 'wait until the load balancer reports no active sessions',
      actions: lbRequests.state,
      deadlineMs: deadlines.lbDrain,
    });
  }
  steps.push({
    step: 'signal',
    summary: `record the process identity, send SIG${fleet.service.signal}`,
    actions: [commandLine(commands.status), commandLine(commands.signal(fleet.service.signal))],
    deadlineMs: deadlines.command,
  });
  steps.push({
    step: 'drain',
    summary: `poll every ${formatDuration(drain.interval)} until all drain probes pass`,
    actions: drain.probes.map((probe) => describeProbe(probe, node)),
    deadlineMs: drain.deadline,
  });
  if (drain.onDeadline === 'escalate') {
    steps.push({
      step: 'escalate',
      summary:
        'only if the drain deadline passes: ' +
        drain.escalation
          .map((e) => `SIG${e.signal} then wait ${formatDuration(e.deadline)} for exit`)
          .join(', '),
      actions: drain.escalation.map((e) => commandLine(commands.signal(e.signal))),
      deadlineMs: drain.escalation.reduce((sum, e) => sum + e.deadline, 0),
    });
  } else {
    steps.push({
      step: 'escalate',
      summary: 'only if the drain deadline passes: halt the rollout, leave the node out of rotation',
      actions: [],
    });
  }
  steps.push({
    step: 'restart',
    summary: 'restart the service',
    actions: [commandLine(commands.restart)],
    deadlineMs: deadlines.restart,
  });
  steps.push({
    step: 'verify',
    summary: `a new process (PID + start time changed), then ${health.consecutive} healthy probes in a row every ${formatDuration(health.interval)}`,
    actions: [commandLine(commands.status), ...health.probes.map((probe) => describeProbe(probe, node))],
    deadlineMs: deadlines.verify,
  });
  if (hasLb) {
    steps.push({
      step: 'register',
      summary: 'put the node back into rotation and wait until the load balancer reports it up',
      actions: [...lbRequests.register, ...lbRequests.state],
      deadlineMs: deadlines.register,
    });
  }
  if (rollout.settle > 0) {
    steps.push({
      step: 'settle',
      summary: `stay healthy for ${formatDuration(rollout.settle)} before the next batch`,
      actions: health.probes.map((probe) => describeProbe(probe, node)),
      deadlineMs: rollout.settle,
    });
  }
  return { node, steps };
}

/** The whole rollout as data: batches and each node's steps with their exact commands. No I/O. */
export function planRollout(fleet: Fleet, parts: PlanParts): RolloutPlan {
  const batches = computeBatches(
    fleet.nodes.map((n) => n.name),
    fleet.rollout.batchSize,
    fleet.rollout.canary,
  );
  return {
    fleet: fleet.name,
    preflight: [
      'every node reachable and its service running',
      ...(fleet.health.probes.length ? ['every node passes its health probes'] : []),
      ...(parts.lb.type !== 'none' ? ['the load balancer knows every node and has it up'] : []),
    ],
    batches: batches.map((batch, index) => ({ index, ...batch })),
    nodes: fleet.nodes.map((node) => planNode(fleet, node, parts)),
    maxFailures: resolveCount(fleet.rollout.maxFailures, fleet.nodes.length),
    rolloutDeadlineMs: fleet.deadlines.rollout,
  };
}

import pLimit from 'p-limit';
import type { FleetNode } from '../config/types.js';
import { runProbes } from '../probes/run-probe.js';
import type { EngineParts } from './types.js';

/** How many nodes preflight checks at once. */
export const PREFLIGHT_CONCURRENCY = 32;

export interface NodeCheck {
  node: string;
  /** Problems that always refuse the rollout: unreachable, unknown to the load balancer. */
  blocking: string[];
  /** The node is up but not well: unhealthy, stopped or out of rotation. */
  degraded: string[];
}

/** Read-only checks of one node: reachable, service running, healthy, known and up in the LB. */
async function checkNode(node: FleetNode, parts: EngineParts, signal: AbortSignal): Promise<NodeCheck> {
  const { fleet, service, lb } = parts;
  const check: NodeCheck = { node: node.name, blocking: [], degraded: [] };
  const transport = parts.transportFor(node);
  const connected = await transport.connect(signal);
  if (!connected.ok) {
    check.blocking.push(`${node.name}: unreachable: ${connected.reason}`);
    return check;
  }
  const timeoutMs = fleet.deadlines.command;
  const [state, health, lbState] = await Promise.all([
    service.status({ transport, node, signal, timeoutMs }),
    runProbes(fleet.health.probes, { node, transport, service, lb, signal, commandTimeoutMs: timeoutMs }),
    lb.state(node, signal),
  ]);
  if (!state.ok) check.blocking.push(`${node.name}: cannot read the service state: ${state.reason}`);
  else if (!state.value.running)
    check.degraded.push(`${node.name}: service is not running (${state.value.detail})`);
  if (!health.ok) check.degraded.push(`${node.name}: unhealthy: ${health.reason}`);
  if (!lbState.ok) check.blocking.push(`${node.name}: load balancer: ${lbState.reason}`);
  else if (lbState.value.state === 'absent') {
    check.blocking.push(`${node.name}: the load balancer has no server named "${node.lbServer}"`);
  } else if (lbState.value.state !== 'up') {
    check.degraded.push(`${node.name}: the load balancer reports it ${lbState.value.state}, not up`);
  }
  return check;
}

/** Checks every node; touches nothing. */
export async function preflight(parts: EngineParts, signal: AbortSignal): Promise<NodeCheck[]> {
  const limit = pLimit(PREFLIGHT_CONCURRENCY);
  return Promise.all(
    parts.fleet.nodes.map((node) =>
      limit(async () => {
        const check = await checkNode(node, parts, signal);
        const problems = [...check.blocking, ...check.degraded];
        parts.emit({
          kind: 'preflight',
          node: node.name,
          ok: problems.length === 0,
          detail: problems.join('; ') || 'ready',
        });
        return check;
      }),
    ),
  );
}

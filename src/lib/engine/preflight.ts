import pLimit from 'p-limit';
import { formatDuration, timerMs } from '../config/duration.js';
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

/**
 * checkNode within a budget (connect timeout aside, two command timeouts), and never throwing: an
 * adapter that hangs or throws makes the node's check a blocking problem, not a crash.
 */
async function checkBounded(node: FleetNode, parts: EngineParts, signal: AbortSignal): Promise<NodeCheck> {
  const { transport, deadlines } = parts.fleet;
  // An SSH login may go through a jump host first: two connect timeouts.
  const connectMs = transport.type === 'ssh' ? 2 * transport.connectTimeout : 0;
  const budgetMs = 2 * deadlines.command + connectMs;
  const budget = AbortSignal.timeout(timerMs(budgetMs));
  let timer: NodeJS.Timeout | undefined;
  try {
    const checking = checkNode(node, parts, AbortSignal.any([signal, budget]));
    checking.catch(() => undefined); // it may fail after losing the race below
    return await Promise.race([
      checking,
      new Promise<NodeCheck>((resolve) => {
        timer = setTimeout(
          () =>
            resolve({
              node: node.name,
              blocking: [
                `${node.name}: the preflight check did not finish within ${formatDuration(budgetMs)}`,
              ],
              degraded: [],
            }),
          timerMs(budgetMs + 1000),
        );
      }),
    ]);
  } catch (error) {
    return {
      node: node.name,
      blocking: [
        `${node.name}: unexpected error in preflight: ${error instanceof Error ? error.message : String(error)}`,
      ],
      degraded: [],
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Checks every node; touches nothing. */
export async function preflight(parts: EngineParts, signal: AbortSignal): Promise<NodeCheck[]> {
  const limit = pLimit(PREFLIGHT_CONCURRENCY);
  return Promise.all(
    parts.fleet.nodes.map((node) =>
      limit(async () => {
        const check = await checkBounded(node, parts, signal);
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

import pLimit from 'p-limit';
import type { FleetNode } from '../config/types.js';
import { runProbes } from '../probes/run-probe.js';
import type { EngineParts } from './types.js';

/** How many nodes preflight checks at once. */
export const PREFLIGHT_CONCURRENCY = 32;

/** Read-only checks of one node: reachable, service running, healthy, known and up in the LB. */
async function checkNode(node: FleetNode, parts: EngineParts, signal: AbortSignal): Promise<string[]> {
  const { fleet, service, lb } = parts;
  const transport = parts.transportFor(node);
  const connected = await transport.connect(signal);
  if (!connected.ok) return [`${node.name}: unreachable: ${connected.reason}`];
  const problems: string[] = [];
  const timeoutMs = fleet.deadlines.command;
  const [state, health, lbState] = await Promise.all([
    service.status({ transport, node, signal, timeoutMs }),
    runProbes(fleet.health.probes, { node, transport, service, lb, signal, commandTimeoutMs: timeoutMs }),
    lb.state(node, signal),
  ]);
  if (!state.ok) problems.push(`${node.name}: cannot read the service state: ${state.reason}`);
  else if (!state.value.running)
    problems.push(`${node.name}: service is not running (${state.value.detail})`);
  if (!health.ok) problems.push(`${node.name}: unhealthy: ${health.reason}`);
  if (!lbState.ok) problems.push(`${node.name}: load balancer: ${lbState.reason}`);
  else if (lbState.value.state === 'absent')
    problems.push(`${node.name}: the load balancer has no server named "${node.lbServer}"`);
  else if (lbState.value.state !== 'up')
    problems.push(`${node.name}: the load balancer reports it ${lbState.value.state}, not up`);
  return problems;
}

/** Checks every node; touches nothing. Returns the problems found (empty: go). */
export async function preflight(parts: EngineParts, signal: AbortSignal): Promise<string[]> {
  const limit = pLimit(PREFLIGHT_CONCURRENCY);
  const perNode = await Promise.all(
    parts.fleet.nodes.map((node) =>
      limit(async () => {
        const problems = await checkNode(node, parts, signal);
        parts.emit({
          kind: 'preflight',
          node: node.name,
          ok: problems.length === 0,
          detail: problems.join('; ') || 'ready',
        });
        return problems;
      }),
    ),
  );
  return perNode.flat();
}

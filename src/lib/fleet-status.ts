import pLimit from 'p-limit';
import chalk from 'chalk';
import type { Fleet } from './config/types.js';
import { buildFleetParts } from './fleet-parts.js';
import { journalPath, readJournal } from './journal/journal.js';
import type { Journal } from './journal/types.js';
import { inspectLock, type HeldBy } from './lock/lock.js';
import { runProbes } from './probes/run-probe.js';
import { PREFLIGHT_CONCURRENCY } from './engine/preflight.js';

export interface NodeStatus {
  node: string;
  reachable: boolean;
  service: string;
  pid?: number;
  startTime?: string;
  healthy: boolean | null;
  health: string;
  lb: string;
  sessions?: number;
  journal?: { state: string; step?: string; inRotation: boolean; updatedAt: string };
}

export interface FleetStatus {
  fleet: string;
  journal: { path: string; runId?: string; status?: string; updatedAt?: string };
  lock: { state: 'free' | 'held' | 'unknown'; detail: string };
  nodes: NodeStatus[];
}

/** The fleet's live state (read-only) beside what the journal last recorded. */
export async function fleetStatus(fleet: Fleet, signal: AbortSignal): Promise<FleetStatus> {
  const parts = buildFleetParts(fleet, () => undefined);
  const path = journalPath(fleet);
  const journal: Journal | undefined = readJournal(path);
  const limit = pLimit(PREFLIGHT_CONCURRENCY);
  try {
    const nodes = await Promise.all(
      fleet.nodes.map((node) =>
        limit(async (): Promise<NodeStatus> => {
          const recorded = journal?.nodes[node.name];
          const base = {
            node: node.name,
            journal: recorded && {
              state: recorded.state,
              step: recorded.step,
              inRotation: recorded.inRotation,
              updatedAt: recorded.updatedAt,
            },
          };
          const transport = parts.transportFor(node);
          const lbState = await parts.lb.state(node, signal);
          const lb = lbState.ok ? lbState.value.state : `unknown (${lbState.reason})`;
          const sessions = lbState.ok ? lbState.value.sessions : undefined;
          const connected = await transport.connect(signal);
          if (!connected.ok)
            return {
              ...base,
              reachable: false,
              service: `unreachable: ${connected.reason}`,
              healthy: null,
              health: '-',
              lb,
              sessions,
            };
          const timeoutMs = fleet.deadlines.command;
          const [state, health] = await Promise.all([
            parts.service.status({ transport, node, signal, timeoutMs }),
            runProbes(fleet.health.probes, {
              node,
              transport,
              service: parts.service,
              lb: parts.lb,
              signal,
              commandTimeoutMs: timeoutMs,
            }),
          ]);
          return {
            ...base,
            reachable: true,
            service: state.ok
              ? state.value.running
                ? 'running'
                : state.value.detail
              : `unknown (${state.reason})`,
            pid: state.ok && state.value.running ? state.value.identity.pid : undefined,
            startTime: state.ok && state.value.running ? state.value.identity.startTime : undefined,
            healthy: fleet.health.probes.length ? health.ok : null,
            health: health.ok ? (fleet.health.probes.length ? 'ok' : 'no probes') : health.reason,
            lb,
            sessions,
          };
        }),
      ),
    );
    const lockState = await inspectLock(fleet, parts.lockTransport(), signal);
    const lock = !lockState.ok
      ? { state: 'unknown' as const, detail: lockState.reason }
      : lockState.value === 'free'
        ? { state: 'free' as const, detail: 'no rollout running' }
        : { state: 'held' as const, detail: describeHolder(lockState.value) };
    return {
      fleet: fleet.name,
      journal: { path, runId: journal?.runId, status: journal?.status, updatedAt: journal?.updatedAt },
      lock,
      nodes,
    };
  } finally {
    await parts.close();
  }
}

const describeHolder = (held: HeldBy) =>
  held.owner
    ? `held by ${held.owner.user}@${held.owner.host} pid ${held.owner.pid} since ${held.owner.startedAt}, heartbeat ${held.heartbeatAgeSeconds}s ago`
    : `held (owner unreadable), heartbeat ${held.heartbeatAgeSeconds}s ago`;

export function formatStatus(status: FleetStatus): string {
  const header = ['node', 'service', 'pid', 'health', 'LB', 'sessions', 'journal'];
  const rows = status.nodes.map((n) => [
    n.node,
    n.service,
    n.pid === undefined ? '-' : String(n.pid),
    n.healthy === null ? n.health : n.healthy ? 'ok' : `FAIL: ${n.health}`,
    n.lb,
    n.sessions === undefined ? '-' : String(n.sessions),
    n.journal
      ? `${n.journal.state}${n.journal.step ? ` (${n.journal.step})` : ''}${n.journal.inRotation ? '' : ' OUT'}`
      : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const out = [chalk.bold(`fleet ${status.fleet}`), line(header), ...rows.map(line), ''];
  out.push(`lock: ${status.lock.state}: ${status.lock.detail}`);
  out.push(
    status.journal.runId
      ? `journal: ${status.journal.path}: run ${status.journal.runId} ${status.journal.status} (updated ${status.journal.updatedAt})`
      : `journal: none at ${status.journal.path}`,
  );
  return out.join('\n');
}

// graceroll against the end-to-end lab (test/lab): writes a fleet config for a running lab and runs
// the built CLI on it. The lab is real (systemd in nspawn, sshd, HAProxy), so everything here goes
// through the same SSH transport, systemctl and HAProxy runtime API a user's fleet would.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { RolloutReport } from '../../src/lib/engine/events.js';
import { LB_ADMIN_DIR } from '../lab/haproxy.js';
import type { Lab } from '../lab/lab.js';
import { sleep, waitFor } from '../lab/proc.js';
import { NODE_STATE_DIR } from '../lab/units.js';
import { jsonLines, repoRoot, startCli, tempDir, type CliResult } from './cli.js';

/** Where the queue service keeps its "worker alive" socket inside a node. */
export const QUEUE_SOCKET = `${NODE_STATE_DIR}/queue.sock`;
/** The admin socket's path inside the LB node (the host sees it as lab.lb.adminSocket). */
export const LB_NODE_ADMIN_SOCKET = `${LB_ADMIN_DIR}/admin.sock`;

export type LabDrainProbe =
  | { type: 'process-exited' }
  | { type: 'connections'; port: number }
  | { type: 'socket-file'; path: string; state?: 'absent' | 'present' }
  | { type: 'lb-sessions' }
  | { type: 'http'; url: string; [key: string]: unknown }
  | { type: 'command'; command: string };

export interface LabFleetOptions {
  /** Directory for the config (and graceroll's journal beside it). Default: a new temp dir. */
  dir?: string;
  /** Fleet name (also names the rollout lock). Default: unique per call. */
  name?: string;
  /** Lab nodes in the fleet, in rollout order. Default: every lab node. */
  nodes?: string[];
  /**
   * How graceroll reaches HAProxy: `socket` the admin socket bind-mounted out to this host,
   * `ssh` the socket inside the LB node over SSH (socat there), `tcp` the runtime API on TCP,
   * `none` no load balancer at all (negative control).
   */
  lb?: 'socket' | 'ssh' | 'tcp' | 'none';
  /** Graceful signal. Default USR1 (the lab service drains on it). */
  signal?: string;
  /** Drain probes. Default: process-exited + no established connections on the service port. */
  drainProbes?: LabDrainProbe[];
  drainDeadline?: string;
  drainInterval?: string;
  onDeadline?: 'escalate' | 'halt';
  escalation?: { signal: string; deadline: string }[];
  healthConsecutive?: number;
  healthInterval?: string;
  deadlines?: Record<string, string>;
  rollout?: Record<string, unknown>;
  /** Merged last, for anything else. */
  extra?: Record<string, unknown>;
}

export interface LabFleet {
  path: string;
  dir: string;
  name: string;
  /** The config as written (before YAML). */
  config: Record<string, unknown>;
  yaml: string;
}

/** The default drain probes for the lab's HTTP service. */
export const httpDrainProbes = (lab: Lab): LabDrainProbe[] => [
  { type: 'process-exited' },
  { type: 'connections', port: lab.servicePort },
];

/** The drain probe for the queue service: drained once its socket file is gone. */
export const queueDrainProbes = (): LabDrainProbe[] => [
  { type: 'socket-file', path: QUEUE_SOCKET, state: 'absent' },
];

const madeDirs = new Set<string>();

/** Removes the directories labFleetConfig made (configs, journals, locks); for afterAll. */
export function removeLabFleets(): void {
  for (const dir of madeDirs) rmSync(dir, { recursive: true, force: true });
  madeDirs.clear();
}

/** Writes a graceroll fleet YAML for a running lab and returns its path. */
export function labFleetConfig(lab: Lab, options: LabFleetOptions = {}): LabFleet {
  let dir = options.dir;
  if (!dir) madeDirs.add((dir = tempDir('graceroll-lab-fleet-')));
  mkdirSync(dir, { recursive: true });
  const name = options.name ?? `lab-${Math.random().toString(36).slice(2, 8)}`;
  const names = options.nodes ?? lab.nodes.map((n) => n.name);
  const nodes = names.map((nodeName) => {
    const node = lab.nodes.find((n) => n.name === nodeName);
    if (!node) throw new Error(`labFleetConfig: the lab has no node ${nodeName}`);
    return { name: node.name, host: node.ip, lbServer: lab.lb.serverName(node) };
  });

  const lbMode = options.lb ?? 'socket';
  const loadBalancer =
    lbMode === 'none'
      ? { type: 'none' }
      : {
          type: 'haproxy',
          ...(lbMode === 'socket' && { socket: lab.lb.adminSocket }),
          ...(lbMode === 'ssh' && { host: lab.lb.ip, socket: LB_NODE_ADMIN_SOCKET }),
          ...(lbMode === 'tcp' && { socket: `tcp:${lab.lb.adminTcp}` }),
          backend: lab.lb.backend,
        };

  const drain: Record<string, unknown> = { probes: options.drainProbes ?? httpDrainProbes(lab) };
  if (options.drainDeadline) drain.deadline = options.drainDeadline;
  if (options.drainInterval) drain.interval = options.drainInterval;
  if (options.onDeadline) drain.onDeadline = options.onDeadline;
  if (options.escalation) drain.escalation = options.escalation;

  const config: Record<string, unknown> = {
    name,
    transport: {
      type: 'ssh',
      user: lab.ssh.user,
      identityFile: lab.ssh.privateKeyPath,
      knownHosts: lab.ssh.knownHostsPath,
      hostKeyPolicy: 'strict',
      agent: false,
      connectTimeout: '5s',
    },
    service: { type: 'systemd', unit: 'web.service', signal: options.signal ?? 'USR1' },
    loadBalancer,
    drain,
    health: {
      probes: [{ type: 'http', url: `http://{host}:${lab.servicePort}/health` }],
      consecutive: options.healthConsecutive ?? 3,
      interval: options.healthInterval ?? '300ms',
    },
    ...(options.deadlines && { deadlines: options.deadlines }),
    rollout: { batchSize: 1, ...options.rollout },
    // Locks go beside the config, so a test run never meets another run's lock.
    lock: lbMode === 'ssh' ? { path: `/tmp/graceroll-${name}.lock` } : { path: join(dir, 'rollout.lock') },
    nodes,
    ...options.extra,
  };
  const yaml = stringify(config);
  const path = join(dir, 'fleet.yaml');
  writeFileSync(path, yaml);
  return { path, dir, name, config, yaml };
}

/** The newest modification time of any file under dir (0 when dir is missing). */
function newestMtime(dir: string): number {
  let newest = 0;
  try {
    for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
      if (!entry.isFile()) continue;
      try {
        newest = Math.max(newest, statSync(join(entry.parentPath, entry.name)).mtimeMs);
      } catch {
        // removed while we looked: a rebuild is under way, the next look sees it
      }
    }
  } catch {
    return 0;
  }
  return newest;
}

/**
 * Waits until dist/ has the built CLI and nothing in it changed for a moment: `npm run build`
 * (rm -rf dist && tsc) may be running beside the tests, and a CLI started from a half-written dist/
 * fails in ways that have nothing to do with the fleet.
 */
export async function waitForBuiltCli(timeoutMs = 60_000): Promise<void> {
  const dist = join(repoRoot, 'dist');
  const entries = ['commands/restart-fleet.js', 'lib/restart-fleet.js'].map((f) => join(dist, f));
  await waitFor(
    `a complete build in ${dist} (run npm run build)`,
    () => entries.every((f) => existsSync(f)) && Date.now() - newestMtime(dist) > 2000,
    timeoutMs,
    250,
  );
}

/** One `--json` event line, as parsed (each test checks the fields it needs). */

export type JsonEvent = Record<string, any>;

export interface RollResult extends CliResult {
  /** JSON events when run with --json (empty otherwise). */
  events: JsonEvent[];
  /** The report of the last `rollout-end` event, when there is one. */
  report?: RolloutReport;
  durationMs: number;
}

/** Runs `graceroll restart-fleet -c CONFIG --yes [--json] ...extra`; never throws on a non-zero exit. */
export async function rollFleet(
  fleet: LabFleet | string,
  options: { json?: boolean; args?: string[] } = {},
): Promise<RollResult> {
  await waitForBuiltCli();
  const path = typeof fleet === 'string' ? fleet : fleet.path;
  const json = options.json ?? true;
  const args = ['restart-fleet', '-c', path, '--yes', ...(json ? ['--json'] : []), ...(options.args ?? [])];
  const t0 = Date.now();
  const result = await startCli(args).done;
  const durationMs = Date.now() - t0;
  let events: JsonEvent[] = [];
  if (json) {
    try {
      events = jsonLines(result.stdout);
    } catch (error) {
      throw new Error(
        `graceroll --json printed a line that is not JSON (${(error as Error).message}); exit ${result.code}\nstdout:\n${result.stdout}\nstderr:\n${result.stderr}`,
      );
    }
  }
  const end = events.findLast((e) => e.kind === 'rollout-end');
  return { ...result, events, report: end?.report as RolloutReport | undefined, durationMs };
}

/** A short account of a roll for failure messages and logs. */
export function describeRoll(roll: RollResult): string {
  const tail = (text: string) => text.split('\n').slice(-40).join('\n');
  const preflight = roll.events
    .filter((e) => e.kind === 'preflight' && !e.ok)
    .map((e) => `\n  ${e.node}: ${e.detail}`)
    .join('');
  return `exit ${roll.code} after ${roll.durationMs} ms${preflight ? `\npreflight:${preflight}` : ''}\nreport: ${JSON.stringify(roll.report, null, 1)}\nstderr:\n${tail(roll.stderr)}${roll.events.length ? '' : `\nstdout:\n${tail(roll.stdout)}`}`;
}

/** web.service's MainPID in each node (0 when not running). */
export async function mainPids(
  lab: Lab,
  nodes = lab.nodes.map((n) => n.name),
): Promise<Record<string, number>> {
  const pids: Record<string, number> = {};
  for (const node of nodes) {
    const r = await lab.exec(node, 'systemctl show -p MainPID --value web.service');
    if (r.code !== 0) throw new Error(`reading MainPID on ${node}: ${r.stderr}`);
    pids[node] = Number(r.stdout.trim());
  }
  return pids;
}

/** Waits until HAProxy reports every lab server UP. */
export async function waitAllUp(lab: Lab, timeoutMs = 20_000): Promise<void> {
  await waitFor(
    'every server UP in HAProxy',
    async () => {
      const statuses = await lab.serverStatuses();
      return lab.nodes.every((n) => statuses[lab.lb.serverName(n)] === 'UP');
    },
    timeoutMs,
    100,
  );
}

/** Waits until a node's service answers /health with 200. */
export async function waitHealthy(lab: Lab, node: string, timeoutMs = 20_000): Promise<void> {
  const { url } = lab.nodes.find((n) => n.name === node)!;
  await waitFor(
    `${node} healthy`,
    async () => (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).status === 200,
    timeoutMs,
    100,
  );
}

/**
 * Puts a node back the way the lab starts it: service running and healthy (unhealthy-after-restart's
 * start counter reset), server ready in HAProxy, UP.
 */
export async function restoreNode(lab: Lab, node: string): Promise<void> {
  const reset = await lab.exec(
    node,
    `rm -f ${NODE_STATE_DIR}/starts && systemctl reset-failed web.service; systemctl restart web.service`,
  );
  if (reset.code !== 0) throw new Error(`restoring ${node}: ${reset.stderr}`);
  await waitHealthy(lab, node);
  await lab.haproxy(`set server ${lab.lb.backend}/${lab.lb.serverName(node)} state ready`);
}

/** Every node restored (see restoreNode) only where needed, then all UP. */
export async function restoreLab(lab: Lab): Promise<void> {
  const statuses = await lab.serverStatuses();
  for (const node of lab.nodes) {
    const healthy = await fetch(`${node.url}/health`, { signal: AbortSignal.timeout(2000) })
      .then((r) => r.status === 200)
      .catch(() => false);
    if (!healthy) await restoreNode(lab, node.name);
    else if (statuses[lab.lb.serverName(node)] !== 'UP')
      await lab.haproxy(`set server ${lab.lb.backend}/${lab.lb.serverName(node)} state ready`);
  }
  await waitAllUp(lab);
  // HAProxy just marked them UP: let a check round pass so no test starts on a flapping server.
  await sleep(200);
}

/** step-end events of one step, by node. */
export function stepEnds(events: JsonEvent[], step: string): JsonEvent[] {
  return events.filter((e) => e.kind === 'step-end' && e.step === step);
}

export interface EnqueueHandle {
  stats(): { sent: number; ok: number; failed: number; errors: Record<string, number> };
  /** Stops, lets requests in flight finish, and reports; `ids` are the acknowledged item ids. */
  stop(): Promise<{
    sent: number;
    ok: number;
    failed: number;
    errors: Record<string, number>;
    ids: string[];
  }>;
}

/**
 * POSTs /enqueue to one URL at a bounded rate over keep-alive connections, counting failures like
 * load.js does (non-2xx and socket errors). The queue service answers each item's id once it is recorded.
 */
export function startEnqueue(options: {
  url: string;
  rate: number;
  connections?: number;
  maxDurationMs?: number;
}): EnqueueHandle {
  const connections = options.connections ?? 8;
  const target = new URL('/enqueue', options.url);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const counts = { sent: 0, ok: 0, failed: 0, errors: {} as Record<string, number> };
  const ids: string[] = [];
  let stopping = false;
  const guard = setTimeout(() => (stopping = true), options.maxDurationMs ?? 120_000);
  const fail = (key: string) => {
    counts.failed++;
    counts.errors[key] = (counts.errors[key] ?? 0) + 1;
  };
  const once = () =>
    new Promise<void>((resolve) => {
      counts.sent++;
      let settled = false;
      const settle = (error: string | null, id?: string) => {
        if (settled) return;
        settled = true;
        if (error) fail(error);
        else {
          counts.ok++;
          ids.push(id!);
        }
        resolve();
      };
      const req = http.request(
        {
          host: target.hostname,
          port: target.port || 80,
          path: target.pathname,
          method: 'POST',
          agent,
          timeout: 30_000,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? err.message));
          res.on('end', () =>
            res.statusCode === 200 ? settle(null, body.trim()) : settle(`HTTP ${res.statusCode}`),
          );
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? err.message));
      req.end();
    });
  const interval = (1000 * connections) / options.rate;
  const worker = async (i: number) => {
    let next = Date.now() + (interval * i) / connections;
    while (!stopping) {
      const wait = next - Date.now();
      if (wait > 0) await sleep(wait);
      next = Math.max(next + interval, Date.now() - interval);
      if (stopping) break;
      await once();
    }
  };
  const done = Promise.all(Array.from({ length: connections }, (_, i) => worker(i))).then(() => {
    clearTimeout(guard);
    agent.destroy();
  });
  const snapshot = () => ({ ...counts, errors: { ...counts.errors } });
  return {
    stats: snapshot,
    async stop() {
      stopping = true;
      await done;
      return { ...snapshot(), ids: [...ids] };
    },
  };
}

/** Lines of a file in a node's state dir (absent file: none). */
export function stateLines(lab: Lab, node: string, file: string): string[] {
  const path = join(lab.nodes.find((n) => n.name === node)!.stateDir, file);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '');
}

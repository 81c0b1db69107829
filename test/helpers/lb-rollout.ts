// The harness of the load-balancer end-to-end tests (test/e2e/lb-*.test.ts): three instances of
// test/fixtures/service/server.js started with test/fixtures/demo/instance.js, a fleet file using the
// `command` service manager, and a rollout with the built CLI under load from test/fixtures/load/load.js.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { startLoad, type LoadResult } from '../fixtures/load/load.js';
import { jsonLines, repoRoot, runCli, type CliResult } from './cli.js';

const INSTANCE_JS = path.join(repoRoot, 'test/fixtures/demo/instance.js');
export const NODE_NAMES = ['web1', 'web2', 'web3'] as const;

/** An executable on PATH or in the sbin directories (nginx lives in /usr/sbin, not on a user's PATH). */
export function findBinary(name: string): string | undefined {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const dir of dirs.filter(Boolean)) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Whether an end-to-end suite runs: when a binary is missing it is skipped with the reason, except
 * under CI=true, where it runs and fails in beforeAll (a CI image without nginx is a broken image).
 */
export function requireBinaries(
  names: string[],
  install: string,
): { run: boolean; missing: string[]; title: string } {
  const missing = names.filter((n) => !findBinary(n));
  const inCi = process.env.CI === 'true';
  if (missing.length && !inCi) {
    process.stderr.write(`skipping: ${missing.join(', ')} not installed (${install})\n`);
  }
  return {
    run: missing.length === 0 || inCi,
    missing,
    title: missing.length ? ` [${missing.join(', ')} not installed: ${install}]` : '',
  };
}

/** `count` distinct free TCP ports on 127.0.0.1 (all listened on at once, then closed). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = Array.from({ length: count }, () => net.createServer());
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve))));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

export interface Instance {
  name: string;
  port: number;
}

function instance(args: string[]): void {
  const result = spawnSync(process.execPath, [INSTANCE_JS, ...args], { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0)
    throw new Error(`instance.js ${args.join(' ')}: ${result.stderr || result.stdout}`);
}

export function startInstances(dir: string, ports: number[]): Instance[] {
  const nodes = NODE_NAMES.map((name, i) => ({ name, port: ports[i] }));
  for (const n of nodes) instance(['start', '--name', n.name, '--port', String(n.port), '--dir', dir]);
  return nodes;
}

export function stopInstances(dir: string): void {
  for (const name of NODE_NAMES) instance(['stop', '--name', name, '--dir', dir]);
}

export const pidOf = (dir: string, name: string): number | undefined => {
  try {
    return Number(fs.readFileSync(path.join(dir, `${name}.pid`), 'utf8').trim()) || undefined;
  } catch {
    return undefined;
  }
};

const q = JSON.stringify;
const shq = (word: string) => `'${word.replaceAll("'", `'\\''`)}'`;

/** A fleet of the instances, with these lines as its loadBalancer section (none: the negative control). */
export function fleetYaml(dir: string, nodes: Instance[], loadBalancer: string[] | 'none'): string {
  const instance = `${shq(process.execPath)} ${shq(INSTANCE_JS)}`;
  return [
    'name: lb-e2e',
    'transport: { type: local }',
    'service:',
    '  type: command',
    '  signal: TERM',
    `  status: ${q(`${instance} pid --name {node} --dir ${shq(dir)}`)}`,
    `  restart: ${q(`${instance} start --name {node} --port {vars.port} --dir ${shq(dir)}`)}`,
    ...(loadBalancer === 'none'
      ? ['loadBalancer: { type: none }']
      : ['loadBalancer:', ...loadBalancer.map((l) => `  ${l}`)]),
    'drain:',
    '  deadline: 20s',
    '  probes: [{ type: process-exited }]',
    'health:',
    `  probes: [{ type: http, url: ${q('http://127.0.0.1:{vars.port}/health')} }]`,
    '  consecutive: 3',
    '  interval: 200ms',
    'rollout: { batchSize: 1 }',
    `lock: { path: ${q(path.join(dir, 'rollout.lock'))} }`,
    'nodes:',
    ...nodes.map((n) => `  - { name: ${n.name}, host: 127.0.0.1, vars: { port: ${n.port} } }`),
    '',
  ].join('\n');
}

export interface RolloutUnderLoad {
  cli: CliResult;
  /** The CLI's JSON events, as test/helpers/cli.ts parses them. */
  events: ReturnType<typeof jsonLines>;
  load: LoadResult;
  pidsBefore: (number | undefined)[];
  pidsAfter: (number | undefined)[];
  /** Session counts the lb-drain step reported while it waited (`N active sessions`). */
  drainSessions: number[];
}

/** Load on `url` (40 keep-alive connections, ~10% slow requests) for the whole rollout and 1 s after. */
export async function rollOutUnderLoad(
  dir: string,
  configFile: string,
  url: string,
): Promise<RolloutUnderLoad> {
  const pidsBefore = NODE_NAMES.map((n) => pidOf(dir, n));
  const load = startLoad({ url, connections: 40, slowPercent: 10, slowMs: [200, 2000] });
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const cli = await runCli(['restart-fleet', '-c', configFile, '--json', '--yes']);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const loadResult = await load.stop();
  const events = jsonLines(cli.stdout);
  const drainSessions = events
    .filter((e) => e.kind === 'step-progress' && e.step === 'lb-drain')
    .map((e) => /^(\d+) active sessions/.exec(String(e.detail))?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
  return {
    cli,
    events,
    load: loadResult,
    pidsBefore,
    pidsAfter: NODE_NAMES.map((n) => pidOf(dir, n)),
    drainSessions,
  };
}

/** What the rollout reported per node at the end. */
export const nodeOutcomes = (events: RolloutUnderLoad['events']): Record<string, string> =>
  Object.fromEntries(
    ((events.at(-1)?.report?.nodes ?? []) as { node: string; outcome: string }[]).map((n) => [
      n.node,
      n.outcome,
    ]),
  );

import { isIP } from 'node:net';
import type { FleetNode, LoadBalancerConfig } from '../config/types.js';
import { fail, OK, type Outcome, type Result } from '../outcome.js';
import { fillShell, nodeValues } from '../template.js';
import { commandLine } from '../transport/quote.js';
import type { RemoteCommand, Transport } from '../transport/types.js';
import { fillText, oneAtATime, requireValues } from './fill-text.js';
import { markServer, parseWorkers, readUpstream, splitAddress } from './nginx-upstream.js';
import type { LbServerState, LoadBalancer } from './types.js';
import { timerMs } from '../config/duration.js';

type NginxConfig = Extract<LoadBalancerConfig, { type: 'nginx' }>;

const CONFIRM_POLL_MS = 50;

/**
 * Writes stdin to FILE atomically: a temporary file beside it (a dot file that `include conf.d/*.conf`
 * does not pick up), the original's mode and owner where GNU chmod/chown can copy them, then rename(2).
 */
const WRITE_ATOMICALLY = [
  'set -e',
  'f=$1',
  't=$(dirname -- "$f")/.$(basename -- "$f").graceroll.$$',
  'trap \'rm -f -- "$t"\' EXIT',
  'cat > "$t"',
  'chmod --reference="$f" -- "$t" 2>/dev/null || true',
  'chown --reference="$f" -- "$t" 2>/dev/null || true',
  'mv -f -- "$t" "$f"',
  'trap - EXIT',
].join('\n');

/** `ss` filter for established connections to an address (hostnames resolved on the LB host, every address). */
export function ssArgv(addresses: string[], port: number): string[] {
  const terms = addresses.flatMap((a, i) => [
    ...(i > 0 ? ['or'] : []),
    'dst',
    `${isIP(a) === 6 ? `[${a}]` : a}:${port}`,
  ]);
  return ['ss', '-Htn', 'state', 'established', '(', ...terms, ')'];
}

/**
 * nginx OSS, through an upstream file it includes: a node goes out by marking its `server` down, then
 * `nginx -t` and a reload. nginx OSS has no API for server state, so `up` means "not marked down", and the
 * sessions are the established TCP connections from the nginx host to the server (ss), which includes
 * the connections of old workers still finishing requests after a reload.
 */
export function createNginxLoadBalancer(
  config: NginxConfig,
  transport: Transport,
  timeoutMs: number,
  close: () => Promise<void>,
): LoadBalancer {
  const where = config.host ?? 'localhost';
  const file = config.upstreamFile;
  const exclusive = oneAtATime();
  const asRoot = (argv: string[]): RemoteCommand => ({ argv: config.sudo ? ['sudo', '-n', ...argv] : argv });
  const operatorCommand = (line: string): RemoteCommand =>
    config.sudo ? { argv: ['sudo', '-n', 'sh', '-c', line] } : { shell: line };
  const serverOf = (node: FleetNode) => fillText(config.server, nodeValues(node));
  const testOf = (node: FleetNode) => operatorCommand(fillShell(config.test, nodeValues(node)));
  const reloadOf = (node: FleetNode) => operatorCommand(fillShell(config.reload, nodeValues(node)));

  const run = async (
    command: RemoteCommand,
    signal: AbortSignal,
    stdin?: string,
  ): Promise<Result<string>> => {
    const result = await transport.exec(command, { signal, timeoutMs, stdin });
    const shown = stdin === undefined ? commandLine(command) : `writing ${file}`;
    if (result.failure) return fail(`${where}: ${shown}: ${result.reason ?? result.failure}`);
    if (result.code !== 0) {
      const said = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' | ');
      return fail(`${where}: ${shown} exited ${result.code}${said ? `: ${said}` : ''}`);
    }
    return { ok: true, value: result.stdout };
  };
  const readFile = (signal: AbortSignal) => run(asRoot(['cat', '--', file]), signal);
  const writeFile = (text: string, signal: AbortSignal) =>
    run(asRoot(['sh', '-c', WRITE_ATOMICALLY, 'sh', file]), signal, text);

  const workers = async (signal: AbortSignal): Promise<Result<{ pid: number; shuttingDown: boolean }[]>> => {
    const pid = await run(asRoot(['cat', '--', config.pidFile]), signal);
    if (!pid.ok) return fail(`reading nginx's PID file (pidFile): ${pid.reason}`);
    if (!/^\d+$/.test(pid.value.trim()))
      return fail(`${config.pidFile} holds no PID: ${JSON.stringify(pid.value)}`);
    const result = await transport.exec(
      { argv: ['ps', '-o', 'pid=,args=', '--ppid', pid.value.trim()] },
      { signal, timeoutMs },
    );
    // ps exits 1 when no process matched: a master without workers.
    if (result.failure || (result.code !== 0 && result.stdout.trim() !== ''))
      return fail(`${where}: ps --ppid ${pid.value.trim()}: ${result.reason ?? result.stderr.trim()}`);
    return { ok: true, value: parseWorkers(result.stdout) };
  };

  /**
   * `nginx -s reload` returns once the signal is sent; until the master has started new workers and told
   * the old ones to stop, the old ones keep taking requests with the old upstream list. Measured here:
   * right after the command returns the old workers are still plain "worker process"; ~100 ms later they
   * are "worker process is shutting down" or gone. So the reload counts as done only then.
   */
  const waitForReload = async (before: number[], signal: AbortSignal): Promise<Outcome> => {
    const until = Date.now() + timeoutMs;
    let serving = before;
    for (;;) {
      const now = await workers(signal);
      if (!now.ok) return now;
      serving = now.value.filter((w) => before.includes(w.pid) && !w.shuttingDown).map((w) => w.pid);
      if (serving.length === 0) return OK;
      if (signal.aborted) return fail(`${where}: cancelled while waiting for the nginx reload`);
      if (Date.now() > until)
        return fail(
          `${where}: nginx did not apply the reload within ${timeoutMs}ms: old workers ${serving.join(', ')} still serving (check its error log)`,
        );
      await new Promise((resolve) => setTimeout(resolve, CONFIRM_POLL_MS));
    }
  };

  const setDown = (node: FleetNode, down: boolean, signal: AbortSignal): Promise<Outcome> =>
    exclusive(async () => {
      const values = requireValues(config.server, nodeValues(node), 'loadBalancer.server');
      if (!values.ok) return values;
      const original = await readFile(signal);
      if (!original.ok) return original;
      const edit = markServer(original.value, config.upstream, serverOf(node), down);
      if (!edit.ok) return fail(`${where}:${file}: ${edit.reason}`);
      const before = await workers(signal);
      if (!before.ok) return before;
      const restore = async (why: string): Promise<Outcome> => {
        if (!edit.value.changed) return fail(why);
        // Its own deadline rather than the rollout's signal: a Ctrl-C must not leave the edit in place.
        const back = await writeFile(original.value, AbortSignal.timeout(timerMs(timeoutMs)));
        return fail(
          back.ok ? `${why}; ${file} restored` : `${why}; restoring ${file} failed too: ${back.reason}`,
        );
      };
      // Reloaded even when the file already says so: a run cut short may have written it without a reload.
      if (edit.value.changed) {
        const written = await writeFile(edit.value.text, signal);
        if (!written.ok) return written;
      }
      const tested = await run(testOf(node), signal);
      if (!tested.ok) return restore(`the nginx config test failed: ${tested.reason}`);
      const reloaded = await run(reloadOf(node), signal);
      if (!reloaded.ok) return restore(`reloading nginx failed: ${reloaded.reason}`);
      return waitForReload(
        before.value.filter((w) => !w.shuttingDown).map((w) => w.pid),
        signal,
      );
    });

  const addresses = async (host: string, signal: AbortSignal): Promise<Result<string[]>> => {
    if (isIP(host)) return { ok: true, value: [host] };
    // nginx resolves an upstream hostname once, at (re)load, to every address it has.
    const answer = await run({ argv: ['getent', 'ahosts', host] }, signal);
    if (!answer.ok) return fail(`resolving ${host} on ${where}: ${answer.reason}`);
    const found = [
      ...new Set(
        answer.value
          .split('\n')
          .map((l) => l.split(/\s+/)[0])
          .filter(Boolean),
      ),
    ];
    return found.length ? { ok: true, value: found } : fail(`${host} does not resolve on ${where}`);
  };

  const sessions = async (address: string, signal: AbortSignal): Promise<Result<number | undefined>> => {
    const split = splitAddress(address);
    if (!split) return { ok: true, value: undefined };
    const hosts = await addresses(split.host, signal);
    if (!hosts.ok) return hosts;
    const counted = await run({ argv: ssArgv(hosts.value, split.port) }, signal);
    if (!counted.ok) return counted;
    return { ok: true, value: counted.value.split('\n').filter((l) => l.trim() !== '').length };
  };

  return {
    type: 'nginx',
    describe(node) {
      const server = serverOf(node);
      const reload = [
        `${where}: ${commandLine(testOf(node))}`,
        `${where}: ${commandLine(reloadOf(node))}, then wait until the old workers stop taking requests`,
      ];
      return {
        deregister: [
          `${where}: mark "server ${server}" down in upstream ${config.upstream} (${file})`,
          ...reload,
        ],
        register: [
          `${where}: remove "down" from "server ${server}" in upstream ${config.upstream} (${file})`,
          ...reload,
        ],
        state: [
          `${where}: ${commandLine(asRoot(['cat', '--', file]))}`,
          `${where}: count established connections to ${server} (ss)`,
        ],
      };
    },
    async state(node, signal): Promise<Result<LbServerState>> {
      const values = requireValues(config.server, nodeValues(node), 'loadBalancer.server');
      if (!values.ok) return values;
      const text = await readFile(signal);
      if (!text.ok) return text;
      const servers = readUpstream(text.value, config.upstream);
      if (!servers.ok) return fail(`${where}:${file}: ${servers.reason}`);
      const address = serverOf(node);
      const server = servers.value.find((s) => s.address.toLowerCase() === address.toLowerCase());
      if (!server)
        return {
          ok: true,
          value: { state: 'absent', detail: `no server ${address} in upstream ${config.upstream}` },
        };
      const count = await sessions(server.address, signal);
      if (!count.ok) return count;
      return {
        ok: true,
        value: {
          state: server.down ? 'maint' : 'up',
          sessions: count.value,
          detail: `server ${server.address}${server.down ? ' down' : ''}${count.value === undefined ? '' : `, ${count.value} connections`}`,
        },
      };
    },
    deregister: (node, signal) => setDown(node, true, signal),
    register: (node, signal) => setDown(node, false, signal),
    close,
  };
}

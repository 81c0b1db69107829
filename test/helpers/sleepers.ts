import { execSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeConfig } from './cli.js';

export interface SleeperOptions {
  nodes?: string[];
  /** Nodes whose process ignores SIGTERM, so draining them needs escalation to SIGKILL. */
  ignoreTerm?: string[];
  /** Nodes that fail their health check once restarted by graceroll. */
  unhealthyAfterRestart?: string[];
  /** A command load balancer whose state is a file per node (`up`, `maint`). */
  lb?: boolean;
  drainDeadline?: string;
  rolloutDeadline?: string;
  /** The drain probe passes only once `DIR/NODE.drained` exists, so a test controls when draining ends. */
  slowDrain?: boolean;
  lockPath?: string;
  extra?: string;
}

/**
 * A local fleet of `sleep` processes managed by shell commands, with its own name (so its own journal)
 * and lock in `dir`. Cheap enough for CLI tests of the engine's behaviour; the real HAProxy/systemd
 * behaviour is proven in the lab tests (test/e2e).
 * `trap '' TERM` before exec makes a process that ignores the graceful signal (ignored signals survive
 * exec, POSIX exec(3)).
 */
export function sleeperFleet(dir: string, options: SleeperOptions = {}) {
  const nodes = options.nodes ?? ['a', 'b', 'c'];
  const ignore = (options.ignoreTerm ?? []).map((n) => `[ {node} = ${n} ] && trap '' TERM;`).join(' ');
  // A slow drainer keeps running after SIGTERM until DIR/NODE.drained exists, as a real service finishing
  // its work would; a plain sleeper exits at once.
  if (options.slowDrain)
    writeFileSync(
      join(dir, 'drainer.sh'),
      `t=; trap 't=1' TERM\nwhile [ -z "$t" ] || [ ! -e ${dir}/$1.drained ]; do sleep 0.05; done\n`,
    );
  const program = options.slowDrain ? `sh ${dir}/drainer.sh {node}` : 'sleep 1000';
  const start = `${ignore} nohup ${program} >/dev/null 2>&1 & echo $! > ${dir}/{node}.pid`;
  const broken =
    (options.unhealthyAfterRestart ?? []).map((n) => `[ {node} != ${n} ]`).join(' && ') || 'true';
  const lb = options.lb
    ? `loadBalancer:
  type: command
  deregister: "echo maint > ${dir}/{node}.lb"
  register: "echo up > ${dir}/{node}.lb"
  state: "cat ${dir}/{node}.lb"`
    : '';
  const id = Math.random().toString(36).slice(2, 8);
  const name = `sleepers-${id}`;
  const config = writeConfig(
    dir,
    `name: ${name}
service:
  type: command
  signal: TERM
  status: cat ${dir}/{node}.pid
  restart: "${start}; touch ${dir}/{node}.restarted"
${lb}
drain:
  interval: 20ms
  deadline: ${options.drainDeadline ?? '2s'}
  probes: ${options.slowDrain ? `[{ type: command, command: "[ -e ${dir}/{node}.drained ]" }]` : '[{ type: process-exited }]'}
  escalation: [{ signal: KILL, deadline: 2s }]
health:
  # A node is sick while DIR/NODE.sick exists, and for good once restarted if listed in unhealthyAfterRestart.
  probes: [{ type: command, command: "[ ! -e ${dir}/{node}.sick ] && { [ ! -e ${dir}/{node}.restarted ] || { ${broken}; }; }" }]
  consecutive: 2
  interval: 20ms
deadlines: { rollout: ${options.rolloutDeadline ?? '1m'}, verify: 1s }
lock: { path: ${options.lockPath ?? `${dir}/${id}.lock`} }
${options.extra ?? ''}
nodes: [${nodes.map((n) => `{ name: ${n} }`).join(', ')}]
`,
    `fleet-${id}.yaml`,
  );
  return {
    name,
    config,
    /** Starts every sleeper as the fleet's restart command would, and puts each in rotation. */
    start() {
      for (const node of nodes) {
        execSync(`rm -f ${dir}/${node}.restarted; ${start.replaceAll('{node}', node)}`, { shell: '/bin/sh' });
        if (options.lb) writeFileSync(join(dir, `${node}.lb`), 'up\n');
      }
    },
    pid: (node: string) => readFileSync(join(dir, `${node}.pid`), 'utf8').trim(),
    /** Kills every sleeper still running. */
    kill() {
      for (const node of nodes) {
        try {
          process.kill(Number(readFileSync(join(dir, `${node}.pid`), 'utf8')), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
    },
  };
}

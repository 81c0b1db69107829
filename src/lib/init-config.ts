import { writeFile } from 'node:fs/promises';
import { dirname, relative, resolve, sep } from 'node:path';
import { ExitCode, GracerollError } from './exit-codes.js';

export const INIT_TRANSPORTS = ['ssh', 'local'] as const;
export const INIT_LOAD_BALANCERS = ['haproxy', 'none', 'command'] as const;
export const INIT_SERVICES = ['systemd', 'command'] as const;

export interface StarterOptions {
  transport: (typeof INIT_TRANSPORTS)[number];
  lb: (typeof INIT_LOAD_BALANCERS)[number];
  service: (typeof INIT_SERVICES)[number];
  /** Where the editor finds the JSON Schema, relative to the config file (or absolute). */
  schemaRef: string;
  /** The config's path, for the commands in its header. */
  fileName: string;
}

const header = (o: StarterOptions) => `# yaml-language-server: $schema=${o.schemaRef}
# A graceroll fleet: which nodes to restart, one batch at a time, and how to tell when each one is drained
# and healthy again. Your editor completes and checks every field from the schema named above.
#
# Preview every batch, step and exact command (touches nothing):
#   graceroll restart-fleet -c ${o.fileName} --dry-run
# Then roll the fleet:
#   graceroll restart-fleet -c ${o.fileName}
#
# Commands below are templates: {node}, {host}, {port}, {lbServer} and {vars.NAME} are filled in per node
# and shell-quoted.
name: web
`;

const transports: Record<StarterOptions['transport'], string> = {
  ssh: `
# How graceroll reaches the nodes: OpenSSH-compatible, host keys checked against known_hosts.
transport:
  type: ssh
  user: deploy                      # default: your local user name
  # identityFile: ~/.ssh/id_ed25519 # default: the SSH agent, then ~/.ssh/id_ed25519, id_ecdsa, id_rsa
  hostKeyPolicy: strict             # strict | accept-new (trust a host seen for the first time) | off
`,
  local: `
# Every command runs on this machine (the nodes are local services, e.g. one per port).
transport:
  type: local
`,
};

const services: Record<StarterOptions['service'], string> = {
  systemd: `
# The service on each node.
service:
  type: systemd
  unit: web.service
  signal: TERM      # the graceful signal: the service stops accepting, finishes what is in flight, exits
  # sudo: true      # run systemctl as \`sudo -n\` when the user is not root
`,
  command: `
# The service on each node, driven by your own commands.
service:
  type: command
  signal: TERM      # the graceful signal: the service stops accepting, finishes what is in flight, exits
  # Prints the main PID; no output or a non-zero exit means "not running".
  status: cat /run/web/{node}.pid
  # Starts it again once the old process has exited.
  restart: /usr/local/bin/start-web {node}
  # kill: kill -s {signal} {pid}   # how a signal is sent (this is the default)
`,
};

const loadBalancers = (o: StarterOptions): string => {
  switch (o.lb) {
    case 'haproxy':
      return `
# Nodes leave HAProxy (drain, then maint) before the signal and come back once healthy.
loadBalancer:
  type: haproxy
  socket: /run/haproxy/admin.sock   # the runtime API ("stats socket ... level admin"), or tcp:HOST:PORT
${o.transport === 'ssh' ? '  host: lb1.example.com             # where HAProxy runs, reached over SSH; omit if on this machine\n' : ''}  backend: web                      # each node's server name defaults to the node name (lbServer)
`;
    case 'command':
      return `
# Nodes leave the load balancer before the signal and come back once healthy, through your commands
# (run on this machine).
loadBalancer:
  type: command
  deregister: lbctl disable {lbServer}
  register: lbctl enable {lbServer}
  # Prints up, down, drain, maint or absent, optionally with the active sessions: "drain 3".
  state: lbctl state {lbServer}
`;
    case 'none':
      return `
# No load balancer: the service itself must stop taking new work when it gets the graceful signal.
loadBalancer:
  type: none
`;
  }
};

const drainAndHealth = (o: StarterOptions) => `
# After the signal: wait until every drain probe passes, then restart.
drain:
  probes:
    - type: process-exited          # the signalled process has exited
    # - type: connections           # no established TCP connection to this port on the node
    #   port: 8080
  deadline: 30s
  onDeadline: escalate              # at the deadline: escalate (below), or halt leaving the node out
  escalation:
    - { signal: TERM, deadline: 10s }
    - { signal: KILL, deadline: 5s }

# After the restart: a new process, then these probes passing \`consecutive\` times in a row.
health:
  probes:
    - type: http
      url: http://{host}:${o.transport === 'local' ? '{vars.port}' : '8080'}/health
  consecutive: 3
  interval: 500ms

rollout:
  batchSize: 1                      # nodes at a time: a count, or a percentage like 25%
  maxFailures: 0                    # failed nodes tolerated before the rollout halts
  # canary: 1                       # a first batch of this size, then a pause (pauseAfterCanary)
  # settle: 10s                     # how long a node must stay healthy before the next batch
`;

const nodes = (o: StarterOptions): string => {
  if (o.transport === 'ssh')
    return `
nodes:
  - { name: web1, host: web1.example.com }
  - { name: web2, host: web2.example.com }
  - { name: web3, host: web3.example.com }
`;
  // A systemd unit is one per machine, so a local systemd fleet is this machine alone.
  if (o.service === 'systemd')
    return `
nodes:
  - { name: local, host: 127.0.0.1, vars: { port: 8080 } }
`;
  return `
nodes:
  - { name: web1, host: 127.0.0.1, vars: { port: 8081 } }
  - { name: web2, host: 127.0.0.1, vars: { port: 8082 } }
`;
};

/** The commented starter config for one choice of transport, load balancer and service manager. */
export function starterConfig(o: StarterOptions): string {
  return [
    header(o),
    transports[o.transport],
    services[o.service],
    loadBalancers(o),
    drainAndHealth(o),
    nodes(o),
  ].join('');
}

/**
 * How a config at `outputPath` names the schema at `schemaFile`: a relative path, so the reference works
 * from a checkout wherever it lives (`node_modules/graceroll/schema/fleet.schema.json` in a project).
 */
export function schemaReference(outputPath: string, schemaFile: string): string {
  return relative(dirname(resolve(outputPath)), schemaFile)
    .split(sep)
    .join('/');
}

export interface InitResult {
  /** The file written, or `-` for stdout. */
  path: string;
  text: string;
}

/** Writes the starter config; an existing file is only replaced with `force` (the check and write are one step). */
export async function initConfig(
  output: string,
  options: Omit<StarterOptions, 'schemaRef' | 'fileName'>,
  schemaFile: string,
  force: boolean,
  stdout: NodeJS.WritableStream,
): Promise<InitResult> {
  const toStdout = output === '-';
  const text = starterConfig({
    ...options,
    schemaRef: toStdout ? schemaFile : schemaReference(output, schemaFile),
    fileName: toStdout ? 'fleet.yaml' : output,
  });
  if (toStdout) {
    stdout.write(text);
    return { path: '-', text };
  }
  try {
    await writeFile(output, text, { flag: force ? 'w' : 'wx' });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST')
      throw new GracerollError([`${output} already exists; nothing was written`], ExitCode.usage, [
        'pass --force to replace it, or --output to write somewhere else',
      ]);
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR')
      throw new GracerollError([`${output}: cannot write: ${code}`], ExitCode.usage);
    throw error;
  }
  return { path: output, text };
}

// Booting a node: systemd-nspawn --boot in its own network namespace and its own cgroup, and
// running commands inside a booted node with nsenter.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { cgroupRoots } from './registry.js';
import { run, type RunResult } from './proc.js';

export interface BootSpec {
  prefix: string;
  name: string;
  /** Node directory on the lab tmpfs (root/ is the mounted overlay). */
  dir: string;
  netns: string;
  /** Extra nspawn options (--bind=…, --bind-ro=…). */
  extraArgs: string[];
}

/** Starts the container in the background; its console goes to DIR/console.log. Returns nspawn's pid. */
export function boot(spec: BootSpec): number {
  // Trap (LAB.md): containers started from one cgroup share it, and `systemctl kill` inside them
  // then fails with "Input/output error". Each node's launcher moves itself into a fresh cgroup in
  // every mounted hierarchy before it execs nspawn.
  const cgroups = cgroupRoots().map((root) => path.join(root, 'graceroll-lab', spec.prefix, spec.name));
  for (const cg of cgroups) fs.mkdirSync(cg, { recursive: true });
  const args = [
    '-q',
    '-D',
    path.join(spec.dir, 'root'),
    '-M',
    `${spec.prefix}-${spec.name}`,
    // There is no systemd on the host to register with or to create a scope unit in.
    '--register=no',
    '--keep-unit',
    '--boot',
    '--console=read-only',
    '--link-journal=no',
    '--resolv-conf=off',
    '--timezone=off',
    `--network-namespace-path=/run/netns/${spec.netns}`,
    // The host's /root (dotfiles, tool caches, tokens) is none of a node's business; a clean one
    // also keeps each ssh command fast (no host .bashrc to run).
    '--tmpfs=/root',
    ...spec.extraArgs,
  ];
  const consoleFd = fs.openSync(path.join(spec.dir, 'console.log'), 'a');
  const child = spawn(
    '/bin/sh',
    [
      '-c',
      'for cg in $GRLAB_CGROUPS; do echo $$ > "$cg/cgroup.procs" || exit 97; done; exec "$@"',
      'sh',
      'systemd-nspawn',
      ...args,
    ],
    // Detached: a Ctrl-C on the test run must not reach nspawn (it would reboot the node);
    // the lab stops its nodes itself.
    {
      detached: true,
      stdio: ['ignore', consoleFd, consoleFd],
      env: { ...process.env, GRLAB_CGROUPS: cgroups.join(' ') },
    },
  );
  fs.closeSync(consoleFd);
  child.unref();
  if (!child.pid) throw new Error(`lab: could not start systemd-nspawn for ${spec.name}`);
  fs.writeFileSync(path.join(spec.dir, 'nspawn.pid'), `${child.pid}\n`);
  return child.pid;
}

/** The node's init (PID 1 in its pid namespace), as seen from the host; undefined until it runs. */
export function leaderPid(nspawnPid: number): number | undefined {
  let children: string[] = [];
  try {
    for (const task of fs.readdirSync(`/proc/${nspawnPid}/task`)) {
      children.push(
        ...fs.readFileSync(`/proc/${nspawnPid}/task/${task}/children`, 'utf8').trim().split(/\s+/),
      );
    }
  } catch {
    return undefined;
  }
  children = children.filter(Boolean);
  for (const pid of children) {
    try {
      const nspid = /^NSpid:\s+(.*)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1].split(/\s+/);
      if (nspid && nspid.length > 1 && nspid[nspid.length - 1] === '1') return Number(pid);
    } catch {
      // gone
    }
  }
  return undefined;
}

const NODE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  LANG: 'C.UTF-8',
  SYSTEMD_PAGER: '',
  SYSTEMD_COLORS: '0',
};

/** Runs a shell command inside a node (its mount, uts, ipc, net and pid namespaces). */
export function execIn(leader: number, shellCmd: string, timeoutMs: number): Promise<RunResult> {
  return run(
    'nsenter',
    ['-t', String(leader), '-m', '-u', '-i', '-n', '-p', '--', '/bin/sh', '-c', shellCmd],
    {
      env: NODE_ENV,
      timeoutMs,
    },
  );
}

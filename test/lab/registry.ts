// Which lab instances exist on this machine, who owns them, and how to get rid of them.
//
// A lab is named by a prefix `grlab<N>` that also picks its subnet 10.213.N.0/24, so labs started
// in parallel (or left over by a crashed run) never clash. The claim is an owner file created with
// O_EXCL before any resource exists; it holds the owner's pid and start time, so a lab whose
// owner died is recognised as stale (even after pid reuse) and torn down by the next startLab().
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './proc.js';

export const RUN_DIR = '/run/graceroll-lab';
export const TEARDOWN_SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), 'teardown.sh');
const MAX_LABS = 250;
const PREFIX_RE = /^grlab(\d+)$/;

export interface Claim {
  prefix: string;
  index: number;
}

function processIdentity(pid: number): string | undefined {
  try {
    // Field 22 of /proc/PID/stat is the start time; the command name (field 2) may hold spaces.
    const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const stat = fields.slice(fields.lastIndexOf(')') + 2).split(' ');
    // A killed owner can linger as a zombie when PID 1 is slow to reap (no systemd here): dead.
    if (stat[0] === 'Z' || stat[0] === 'X') return undefined;
    return `${pid} ${stat[19]}`;
  } catch {
    return undefined;
  }
}

function ownerAlive(ownerFile: string): boolean {
  let owner: string;
  try {
    owner = fs.readFileSync(ownerFile, 'utf8').trim();
  } catch {
    return false;
  }
  const pid = Number(owner.split(' ')[0]);
  return Number.isInteger(pid) && processIdentity(pid) === owner;
}

/** Claims the lowest free prefix for this process. */
export function claimPrefix(): Claim {
  fs.mkdirSync(RUN_DIR, { recursive: true });
  const me = processIdentity(process.pid)!;
  for (let index = 1; index <= MAX_LABS; index++) {
    const prefix = `grlab${index}`;
    try {
      fs.writeFileSync(path.join(RUN_DIR, `${prefix}.owner`), `${me}\n`, { flag: 'wx' });
      return { prefix, index };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
  throw new Error(`lab: all ${MAX_LABS} lab prefixes are in use (see ${RUN_DIR})`);
}

export async function teardown(prefix: string): Promise<void> {
  const r = await run('bash', [TEARDOWN_SCRIPT, prefix], { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`lab: teardown of ${prefix} failed (${r.code}): ${r.stderr.trim()}`);
}

/** Synchronous teardown, for the process 'exit' safety net where nothing async can run. */
export function teardownSync(prefix: string): void {
  spawnSync('bash', [TEARDOWN_SCRIPT, prefix], { stdio: 'inherit', timeout: 60_000 });
}

/** Prefixes of every lab with resources on this machine (owner file, tmpfs, netns, links, cgroups). */
export async function existingPrefixes(): Promise<Set<string>> {
  const found = new Set<string>();
  const add = (name: string) => {
    const m = /^(grlab\d+)/.exec(name);
    if (m && PREFIX_RE.test(m[1])) found.add(m[1]);
  };
  if (fs.existsSync(RUN_DIR)) fs.readdirSync(RUN_DIR).forEach(add);
  const netns = await run('ip', ['netns', 'list']);
  netns.stdout.split('\n').forEach((l) => add(l.split(' ')[0]));
  const links = await run('ip', ['-o', 'link', 'show']);
  links.stdout.split('\n').forEach((l) => add(l.split(': ')[1] ?? ''));
  for (const root of cgroupRoots()) {
    const dir = path.join(root, 'graceroll-lab');
    if (fs.existsSync(dir)) fs.readdirSync(dir).forEach(add);
  }
  return found;
}

/** Tears down every lab whose owner process is gone (a crashed or killed earlier run). */
export async function cleanupStaleLabs(): Promise<string[]> {
  const stale = [...(await existingPrefixes())].filter((p) => !ownerAlive(path.join(RUN_DIR, `${p}.owner`)));
  for (const prefix of stale) await teardown(prefix);
  return stale;
}

/** What of a lab is still on the machine; empty once it is fully torn down. */
export async function leftovers(prefix: string): Promise<string[]> {
  const left: string[] = [];
  const netns = await run('ip', ['netns', 'list']);
  for (const l of netns.stdout.split('\n'))
    if (l.startsWith(`${prefix}-`)) left.push(`netns ${l.split(' ')[0]}`);
  const links = await run('ip', ['-o', 'link', 'show']);
  for (const l of links.stdout.split('\n')) {
    const name = (l.split(': ')[1] ?? '').split('@')[0];
    if (name.startsWith(`${prefix}-`) || name.startsWith(`${prefix}v`)) left.push(`link ${name}`);
  }
  const base = path.join(RUN_DIR, prefix);
  for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const target = line.split(' ')[4];
    if (target === base || target?.startsWith(`${base}/`)) left.push(`mount ${target}`);
  }
  for (const root of cgroupRoots()) {
    if (fs.existsSync(path.join(root, 'graceroll-lab', prefix)))
      left.push(`cgroup ${root}/graceroll-lab/${prefix}`);
  }
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    try {
      const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('systemd-nspawn') && cmd.some((a) => a.startsWith(`${prefix}-`)))
        left.push(`process ${pid}`);
    } catch {
      // the process ended while we looked
    }
  }
  if (fs.existsSync(path.join(RUN_DIR, `${prefix}.owner`))) left.push(`owner file ${prefix}.owner`);
  if (fs.existsSync(base)) left.push(`dir ${base}`);
  return left;
}

/** The cgroup hierarchies a node must get its own cgroup in (see LAB.md: the shared-cgroup trap). */
export function cgroupRoots(): string[] {
  if (fs.existsSync('/sys/fs/cgroup/cgroup.controllers')) return ['/sys/fs/cgroup']; // pure cgroup v2
  return ['/sys/fs/cgroup/systemd', '/sys/fs/cgroup/unified'].filter((p) =>
    fs.existsSync(path.join(p, 'cgroup.procs')),
  );
}

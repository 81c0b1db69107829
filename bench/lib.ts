// Shared helpers for the benchmark scripts (bench/*.ts): timing child processes, peak memory, the
// machine, and waiting until nothing else heavy runs on it.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../', import.meta.url));
export const runJs = join(repoRoot, 'bin/run.js');
/** Raw figures of the last runs (JSON), outside the work tree; BENCHMARKS.md keeps the record. */
export const resultsDir = join(tmpdir(), 'graceroll-bench');

export interface Timed {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit, in milliseconds. */
  ms: number;
  /** When the child was spawned (Date.now()), to line it up with the ISO times of graceroll's events. */
  startedAt: number;
  /** Peak resident set size of the child in kB, when measured with /usr/bin/time. */
  maxRssKb?: number;
  /** CPU time of the child (user + system, its waited-for children included), with /usr/bin/time. */
  cpuMs?: number;
  /** CPU time of the whole machine (all cores) while the child ran, from /proc/stat. */
  machineCpuMs?: number;
}

export interface TimedOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Wrap in GNU time (`/usr/bin/time -f '%M %U %S'`) to read the child's peak RSS and CPU time. */
  measureMemory?: boolean;
  timeoutMs?: number;
  /** stdout is not kept (large outputs): only its size is counted. */
  discardStdout?: boolean;
}

/** Runs a command to completion and times it; never throws on a non-zero exit. */
export function timed(cmd: string, args: string[], options: TimedOptions = {}): Promise<Timed> {
  const rssFile = join(tmpdir(), `bench-rss-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const [file, argv] = options.measureMemory
    ? ['/usr/bin/time', ['-f', '%M %U %S', '-o', rssFile, cmd, ...args]]
    : [cmd, args];
  return new Promise((resolve, reject) => {
    const startedAt = Date.now();
    const cpu0 = machineCpuMs();
    const t0 = performance.now();
    const child = spawn(file, argv, {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, NO_COLOR: '1', ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stdoutBytes = 0;
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdoutBytes += d.length;
      if (!options.discardStdout) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = options.timeoutMs
      ? setTimeout(() => {
          stderr += `\n[bench] killed after ${options.timeoutMs} ms`;
          child.kill('SIGKILL');
        }, options.timeoutMs)
      : undefined;
    child.on('error', reject);
    child.on('close', (code, signal) => {
      const ms = performance.now() - t0;
      const machineCpu = machineCpuMs() - cpu0;
      clearTimeout(timer);
      let maxRssKb: number | undefined;
      let cpuMs: number | undefined;
      if (options.measureMemory) {
        try {
          const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
          const [rss, user, sys] = lines[lines.length - 1].split(' ').map(Number);
          maxRssKb = rss;
          cpuMs = (user + sys) * 1000;
        } catch {
          // time(1) wrote nothing: the child was killed
        }
        rmSync(rssFile, { force: true });
      }
      if (options.discardStdout) stdout = `(${stdoutBytes} bytes)`;
      resolve({ code, signal, stdout, stderr, ms, startedAt, maxRssKb, cpuMs, machineCpuMs: machineCpu });
    });
  });
}

/** CPU time spent by the whole machine so far (all cores, user + nice + system + irq + softirq). */
export function machineCpuMs(): number {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq] = fields;
  return ((user + nice + system + irq + softirq) * 1000) / 100; // USER_HZ is 100 on Linux
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
export const mb = (kb: number | undefined) => (kb === undefined ? '?' : `${(kb / 1024).toFixed(0)} MB`);
export const pct = (part: number, whole: number) => `${((100 * part) / whole).toFixed(1)} %`;
export const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}×`;
export const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');

/** The machine, for the figures' context. */
export function machine(): Record<string, string> {
  const sh = (cmd: string) => {
    try {
      return execFileSync('sh', ['-c', cmd], { encoding: 'utf8' }).trim();
    } catch {
      return '?';
    }
  };
  return {
    cpus: `${sh('nproc')} × ${cpus()[0]?.model ?? '?'}`,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    kernel: sh('uname -r'),
    os: sh('. /etc/os-release && echo "$PRETTY_NAME"'),
    load: loadavg()
      .map((l) => l.toFixed(2))
      .join(' '),
  };
}

/**
 * Other heavy work on the machine (test runs, other labs): `ps` lines matching vitest or nspawn, minus
 * the processes below `ownPid`'s tree (our own lab).
 */
export function otherHeavyWork(ownPids: Set<number> = new Set()): string[] {
  const ps = spawnSync('ps', ['-eo', 'pid=,ppid=,args='], { encoding: 'utf8' }).stdout ?? '';
  const rows = ps
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3] }));
  const parent = new Map(rows.map((r) => [r.pid, r.ppid]));
  const ours = (pid: number): boolean => {
    for (let p: number | undefined = pid; p && p > 1; p = parent.get(p)) {
      if (p === process.pid || ownPids.has(p)) return true;
    }
    return false;
  };
  return rows
    .filter((r) => /vitest|systemd-nspawn/.test(r.args) && !ours(r.pid))
    .map((r) => `${r.pid} ${r.args.slice(0, 120)}`);
}

/**
 * Waits (up to `maxWaitMs`) until no other test run or lab is running and the 1-minute load is low, so
 * the figures are not measured against someone else's work. Returns what was still running, if anything.
 */
export async function waitForQuiet(maxWaitMs: number, log: (line: string) => void): Promise<string[]> {
  const deadline = Date.now() + maxWaitMs;
  let reported = false;
  for (;;) {
    const busy = otherHeavyWork();
    const load = loadavg()[0];
    const quiet = busy.length === 0 && load < cpus().length * 0.75;
    if (quiet) return [];
    if (Date.now() >= deadline) return [...busy, `load average ${load.toFixed(2)}`];
    if (!reported) {
      log(`waiting for quiet (up to ${Math.round(maxWaitMs / 1000)} s): load ${load.toFixed(2)}`);
      for (const line of busy) log(`  busy: ${line}`);
      reported = true;
    }
    await sleep(5000);
  }
}

/** `--name value` / `--flag` parsing, small on purpose. */
export function args(spec: Record<string, string | boolean>): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = { ...spec };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--(no-)?([\w-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[2] in spec))
      throw new Error(`unknown argument ${argv[i]}; known: ${Object.keys(spec).join(', ')}`);
    const [, no, name, inline] = m;
    if (typeof spec[name] === 'boolean') out[name] = !no;
    else out[name] = inline ?? argv[++i];
  }
  return out;
}

/** `npm run build`, so the timed CLI is the current source. */
export function build(log: (line: string) => void): void {
  log('npm run build …');
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: repoRoot, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`npm run build failed:\n${r.stdout}${r.stderr}`);
}

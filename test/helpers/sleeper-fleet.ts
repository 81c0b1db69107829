import { execSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './cli.js';

/**
 * A local fleet of `sleep` processes managed by shell commands, behind a "load balancer" made of one
 * state file per node (`up` or `maint`). Cheap enough for CLI tests of safety behaviour; the real
 * HAProxy/systemd behaviour is proven in the lab tests.
 */
export class SleeperFleet {
  readonly dir = tempDir('graceroll-sleepers-');
  readonly name = `sleepers-${Math.random().toString(36).slice(2, 8)}`;
  constructor(readonly nodes = ['a', 'b', 'c']) {}

  config(extra = '', options: { drainDeadline?: string; slowDrain?: string } = {}): string {
    const d = this.dir;
    // slowDrain: the drain probe passes only once a marker file exists, so a test controls the timing.
    const drainProbe = options.slowDrain
      ? `[{ type: command, command: "[ -e ${d}/{node}.drained ]" }]`
      : '[{ type: process-exited }]';
    const path = join(d, 'fleet.yaml');
    writeFileSync(
      path,
      `
name: ${this.name}
service:
  type: command
  status: cat ${d}/{node}.pid
  restart: "nohup sleep 1000 >/dev/null 2>&1 & echo $! > ${d}/{node}.pid"
loadBalancer:
  type: command
  deregister: echo maint > ${d}/{node}.lb
  register: echo up > ${d}/{node}.lb
  state: cat ${d}/{node}.lb
drain:
  interval: 20ms
  deadline: ${options.drainDeadline ?? '5s'}
  probes: ${drainProbe}
  escalation: [{ signal: KILL, deadline: 2s }]
health:
  probes: [{ type: command, command: "[ ! -e ${d}/{node}.sick ]" }]
  consecutive: 2
  interval: 20ms
deadlines: { verify: 2s }
lock: { path: ${d}/rollout.lock }
${extra}
nodes: [${this.nodes.map((n) => `{ name: ${n} }`).join(', ')}]
`,
    );
    return path;
  }

  start(): void {
    for (const node of this.nodes) {
      execSync(`nohup sleep 1000 >/dev/null 2>&1 & echo $! > ${this.dir}/${node}.pid`, { shell: '/bin/sh' });
      writeFileSync(join(this.dir, `${node}.lb`), 'up\n');
    }
  }

  pid(node: string): string {
    return readFileSync(join(this.dir, `${node}.pid`), 'utf8').trim();
  }

  lb(node: string): string {
    return readFileSync(join(this.dir, `${node}.lb`), 'utf8').trim();
  }

  journalPath(): string {
    return join(this.dir, '.graceroll', `${this.name}.journal.json`);
  }

  journal(): any {
    return JSON.parse(readFileSync(this.journalPath(), 'utf8'));
  }

  touch(file: string): void {
    writeFileSync(join(this.dir, file), '');
  }

  cleanup(): void {
    for (const node of this.nodes) {
      const file = join(this.dir, `${node}.pid`);
      if (!existsSync(file)) continue;
      try {
        process.kill(Number(readFileSync(file, 'utf8')), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

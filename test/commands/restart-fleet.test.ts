import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { jsonLines, repoRoot, runCli, startCli, tempDir, writeConfig } from '../helpers/cli.js';

const dir = tempDir();
afterAll(() => {
  // Kill any sleeper a test left running (they record their PIDs in the temp dir).
  for (const name of ['a', 'b', 'c']) {
    try {
      process.kill(Number(readFileSync(join(dir, `${name}.pid`), 'utf8')), 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A local fleet of `sleep` processes managed by shell commands. `trap '' TERM` before exec makes a
 * process that ignores the graceful signal (ignored signals survive exec, POSIX exec(3)).
 */
function sleeperFleet(
  options: {
    ignoreTerm?: string[];
    health?: string;
    rolloutDeadline?: string;
    drainDeadline?: string;
    extra?: string;
  } = {},
): string {
  const ignore = (options.ignoreTerm ?? []).map((n) => `[ {node} = ${n} ] && trap '' TERM;`).join(' ');
  return writeConfig(
    dir,
    `
name: sleepers
service:
  type: command
  signal: TERM
  status: cat ${dir}/{node}.pid
  restart: "${ignore} nohup sleep 1000 >/dev/null 2>&1 & echo $! > ${dir}/{node}.pid"
drain:
  interval: 20ms
  deadline: ${options.drainDeadline ?? '2s'}
  escalation: [{ signal: KILL, deadline: 2s }]
health:
  probes: [{ type: command, command: "${options.health ?? 'true'}" }]
  consecutive: 2
  interval: 20ms
deadlines: { rollout: ${options.rolloutDeadline ?? '1m'}, verify: 2s }
${options.extra ?? ''}
nodes: [{ name: a }, { name: b }, { name: c }]
`,
    `fleet-${Math.random().toString(36).slice(2)}.yaml`,
  );
}

async function startSleepers(config: string) {
  // The fleet's own restart command starts each sleeper, exactly as graceroll will.
  const text = readFileSync(config, 'utf8');
  const restart = /restart: "(.*)"/.exec(text)![1];
  const { execSync } = await import('node:child_process');
  for (const node of ['a', 'b', 'c']) {
    // The previous test's sleeper for this node, if still running, is replaced: stop it first.
    try {
      process.kill(Number(readFileSync(join(dir, `${node}.pid`), 'utf8')), 'SIGKILL');
    } catch {
      /* none, or already gone */
    }
    execSync(restart.replaceAll('{node}', node), { shell: '/bin/sh' });
  }
}

describe('graceroll restart-fleet (through the CLI)', () => {
  it('--dry-run prints every step and command and opens no connection (hosts unreachable): exit 0', async () => {
    const { code, stdout } = await runCli([
      'restart-fleet',
      '-c',
      join(repoRoot, 'examples/systemd-haproxy.yaml'),
      '--dry-run',
    ]);
    expect(code).toBe(0);
    expect(stdout).toContain('Batch 3: web3');
    expect(stdout).toContain('sudo -n systemctl restart web.service');
    expect(stdout).toContain('set server web/web2 state drain');
    expect(stdout).toMatch(/drain: .*\[deadline 2m\]/);
  });

  it('--dry-run --json prints the plan as one JSON document', async () => {
    const { code, stdout } = await runCli([
      'restart-fleet',
      '-c',
      join(repoRoot, 'examples/systemd-haproxy.yaml'),
      '--dry-run',
      '--json',
      '--batch-size',
      '2',
    ]);
    expect(code).toBe(0);
    const [plan] = jsonLines(stdout);
    expect(plan.kind).toBe('plan');
    expect(plan.plan.batches.map((b: { nodes: string[] }) => b.nodes)).toEqual([['web1', 'web2'], ['web3']]);
  });

  it('a malformed config exits 2 with one located message per problem and no stack trace', async () => {
    const bad = writeConfig(
      dir,
      'service: {type: systemd, unit: "a b"}\nrollout: {batchSize: lots}\nnodes: []\n',
      'bad.yaml',
    );
    const { code, stderr, stdout } = await runCli(['restart-fleet', '-c', bad]);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    const lines = stderr.trim().split('\n');
    expect(lines, stderr).toHaveLength(3);
    expect(stderr).toMatch(/bad\.yaml:1:\d+: service\.unit: expected a systemd unit name/);
    expect(stderr).toMatch(/bad\.yaml:2:\d+: rollout\.batchSize: /);
    expect(stderr).toMatch(/bad\.yaml:3:\d+: nodes: expected at least one node/);
    expect(stderr).not.toMatch(/\n\s+at /);
  });

  it('a missing config file exits 2 with a hint', async () => {
    const { code, stderr } = await runCli(['restart-fleet', '-c', join(dir, 'nope.yaml')]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/nope\.yaml: cannot read the config: no such file/);
  });

  it('an unknown flag exits 2', async () => {
    expect((await runCli(['restart-fleet', '--frobnicate'])).code).toBe(2);
  });

  it('refuses to start when a service is not running (preflight): exit 3, nothing touched', async () => {
    const config = sleeperFleet();
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json', '--yes']);
    expect(code).toBe(3);
    const events = jsonLines(stdout);
    const report = events.at(-1)!;
    expect(report.kind).toBe('rollout-end');
    expect(report.report.status).toBe('preflight-refused');
    expect(report.report.problems.join('\n')).toMatch(/a: service is not running/);
    expect(events.some((e) => e.kind === 'step-start')).toBe(false);
  });

  it('rolls a local fleet: exit 0, JSON events only on stdout, every process replaced', async () => {
    const config = sleeperFleet();
    await startSleepers(config);
    const before = ['a', 'b', 'c'].map((n) => readFileSync(join(dir, `${n}.pid`), 'utf8').trim());
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json', '--yes']);
    expect(code).toBe(0);
    const events = jsonLines(stdout);
    expect(events.every((e) => e.v === 1 && typeof e.time === 'string')).toBe(true);
    const { report } = events.at(-1)!;
    expect(report.status).toBe('ok');
    expect(report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual(['done', 'done', 'done']);
    const after = ['a', 'b', 'c'].map((n) => readFileSync(join(dir, `${n}.pid`), 'utf8').trim());
    after.forEach((pid, i) => expect(pid).not.toBe(before[i]));
  });

  it('plain output when not a TTY: timestamped lines naming the node, no cursor codes, a summary', async () => {
    const config = sleeperFleet();
    await startSleepers(config);
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--nodes', 'b']);
    expect(code).toBe(0);
    expect(stdout).not.toContain('\u001b[');
    expect(stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z b restart ok in \d+/m);
    expect(stdout).toMatch(/^node\s+outcome\s+in LB/m);
    expect(stdout).not.toMatch(/ a (signal|restart)/);
  });

  it('escalates a node that ignores the graceful signal and names it', async () => {
    const config = sleeperFleet({ ignoreTerm: ['a'], drainDeadline: '300ms' });
    await startSleepers(config);
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json', '--nodes', 'a']);
    expect(code).toBe(0);
    const escalation = jsonLines(stdout).find((e) => e.kind === 'escalation');
    expect(escalation).toMatchObject({ node: 'a', signal: 'SIGKILL' });
    expect(escalation!.stillInFlight).toMatch(/still running/);
  });

  it('a node unhealthy after restart fails the rollout: exit 1, later nodes untouched', async () => {
    const config = sleeperFleet({
      health: '[ ! -e ' + dir + '/{node}.restarted ] || [ {node} != b ]',
      extra: '',
    });
    await startSleepers(config);
    // Mark b as broken from its next start on: its health command then fails.
    const fs = await import('node:fs');
    const text = fs
      .readFileSync(config, 'utf8')
      .replace('echo $! >', `touch ${dir}/{node}.restarted; echo $! >`);
    fs.writeFileSync(config, text);
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(code).toBe(1);
    const { report } = jsonLines(stdout).at(-1)!;
    expect(report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual(['done', 'failed', 'skipped']);
    expect(report.nodes[1].reason).toMatch(/not healthy/);
  });

  it('the rollout deadline stops it: exit 5', async () => {
    const config = sleeperFleet({ ignoreTerm: ['a'], drainDeadline: '30s', rolloutDeadline: '500ms' });
    await startSleepers(config);
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(code).toBe(5);
    expect(jsonLines(stdout).at(-1)!.report.status).toBe('deadline');
  });

  it('SIGINT finishes the node in flight, starts no other, and exits 130', async () => {
    const config = sleeperFleet({ ignoreTerm: ['a'], drainDeadline: '800ms' });
    await startSleepers(config);
    const run = startCli(['restart-fleet', '-c', config, '--json']);
    let sent = false;
    run.child.stdout!.on('data', (chunk: Buffer) => {
      if (!sent && chunk.toString().includes('"step":"drain"')) sent = run.child.kill('SIGINT');
    });
    const { code, stdout } = await run.done;
    expect(code).toBe(130);
    const events = jsonLines(stdout);
    expect(events.find((e) => e.kind === 'interrupt')).toMatchObject({ signal: 'SIGINT', count: 1 });
    const { report } = events.at(-1)!;
    expect(report.status).toBe('interrupted');
    expect(report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual(['done', 'skipped', 'skipped']);
  });
});

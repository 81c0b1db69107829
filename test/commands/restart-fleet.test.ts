import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { jsonLines, repoRoot, runCli, startCli, tempDir, writeConfig } from '../helpers/cli.js';
import { sleeperFleet, type SleeperOptions } from '../helpers/sleepers.js';

const dir = tempDir();
const fleets: ReturnType<typeof sleeperFleet>[] = [];
afterEach(() => fleets.splice(0).forEach((f) => f.kill()));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A started local fleet of sleepers (test/helpers/sleepers.ts). */
function startedFleet(options: SleeperOptions = {}) {
  const fleet = sleeperFleet(dir, options);
  fleets.push(fleet);
  fleet.start();
  return fleet;
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

  it('--batch-size 100% never takes the whole fleet out: the plan caps it and says so', async () => {
    const { code, stdout } = await runCli([
      'restart-fleet',
      '-c',
      join(repoRoot, 'examples/systemd-haproxy.yaml'),
      '--dry-run',
      '--batch-size',
      '100%',
    ]);
    expect(code).toBe(0);
    expect(stdout).toMatch(
      /^Notice: a batch of 3 would take every node out of rotation at once: batches of 2 instead/m,
    );
    expect(stdout).toContain('Batch 1: web1, web2');
    expect(stdout).toContain('Batch 2: web3');
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

  it('a config path that is a directory exits 2 with one plain sentence', async () => {
    const { code, stderr } = await runCli(['restart-fleet', '-c', dir]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/cannot read the config: it is a directory, not a file/);
    expect(stderr).not.toMatch(/EISDIR|\n\s+at /);
  });

  it('an unknown flag exits 2', async () => {
    expect((await runCli(['restart-fleet', '--frobnicate'])).code).toBe(2);
  });

  it('refuses to start when a service is not running (preflight): exit 3, nothing touched', async () => {
    const { config } = sleeperFleet(dir);
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
    const fleet = startedFleet();
    const config = fleet.config;
    const before = ['a', 'b', 'c'].map(fleet.pid);
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json', '--yes']);
    expect(code).toBe(0);
    const events = jsonLines(stdout);
    expect(events.every((e) => e.v === 2 && typeof e.time === 'string')).toBe(true);
    const { report } = events.at(-1)!;
    expect(report.status).toBe('ok');
    expect(report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual(['done', 'done', 'done']);
    const after = ['a', 'b', 'c'].map(fleet.pid);
    after.forEach((pid, i) => expect(pid).not.toBe(before[i]));
  });

  it('plain output when not a TTY: timestamped lines naming the node, no cursor codes, a summary', async () => {
    const { config } = startedFleet();
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--nodes', 'b']);
    expect(code).toBe(0);
    expect(stdout).not.toContain('\u001b[');
    expect(stdout).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z b restart ok in \d+/m);
    expect(stdout).toMatch(/^node\s+outcome\s+in LB/m);
    expect(stdout).not.toMatch(/ a (signal|restart)/);
  });

  it('escalates a node that ignores the graceful signal and names it', async () => {
    const { config } = startedFleet({ ignoreTerm: ['a'], drainDeadline: '300ms' });
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json', '--nodes', 'a']);
    // Every node is back, but its drain was forced: its own exit code and outcome.
    expect(code).toBe(6);
    expect(jsonLines(stdout).at(-1)!.report).toMatchObject({
      status: 'forced',
      nodes: [{ node: 'a', outcome: 'forced', forced: { how: 'escalated' } }],
    });
    const escalation = jsonLines(stdout).find((e) => e.kind === 'escalation');
    expect(escalation).toMatchObject({ node: 'a', signal: 'SIGKILL' });
    expect(escalation!.stillInFlight).toMatch(/still running/);
  });

  it('a node unhealthy after restart fails the rollout: exit 1, later nodes untouched', async () => {
    const { config } = startedFleet({ unhealthyAfterRestart: ['b'] });
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(code).toBe(1);
    const { report } = jsonLines(stdout).at(-1)!;
    expect(report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual(['done', 'failed', 'skipped']);
    expect(report.nodes[1].reason).toMatch(/not healthy/);
  });

  it('the rollout deadline stops it: exit 5', async () => {
    const { config } = startedFleet({ ignoreTerm: ['a'], drainDeadline: '30s', rolloutDeadline: '500ms' });
    const { code, stdout } = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(code).toBe(5);
    expect(jsonLines(stdout).at(-1)!.report.status).toBe('deadline');
  });

  it('SIGINT finishes the node in flight, starts no other, and exits 130', async () => {
    const { config } = startedFleet({ ignoreTerm: ['a'], drainDeadline: '800ms' });
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
    // a ignores SIGTERM: it finished its pipeline by escalation.
    expect(report.nodes.map((n: { outcome: string }) => n.outcome)).toEqual(['forced', 'skipped', 'skipped']);
  });
});

import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { jsonLines, runCli, startCli } from '../helpers/cli.js';
import { SleeperFleet } from '../helpers/sleeper-fleet.js';

let fleet: SleeperFleet;
afterEach(() => fleet?.cleanup());

/** Starts a roll and resolves when a JSON event matching `when` appears; returns the run. */
function rollUntil(args: string[], when: (event: Record<string, unknown>) => boolean) {
  const run = startCli(args);
  let buffer = '';
  const reached = new Promise<void>((resolve) => {
    run.child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      if (lines.some((l) => l && when(JSON.parse(l)))) resolve();
    });
  });
  return { run, reached };
}

/** Starts a roll, and kill -9s graceroll while b drains (a is done): the journal says b is in flight. */
async function killMidRoll(): Promise<string> {
  fleet = new SleeperFleet();
  const config = fleet.config('', { slowDrain: 'yes' });
  fleet.start();
  fleet.touch('a.drained');
  const { run, reached } = rollUntil(
    ['restart-fleet', '-c', config, '--json'],
    (e) => e.kind === 'step-start' && e.node === 'b' && e.step === 'drain',
  );
  await reached;
  run.child.kill('SIGKILL');
  await run.done;
  return config;
}

describe('journal', () => {
  it('records every node as it goes, readable as JSON and as a log', async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const { code } = await runCli(['restart-fleet', '-c', fleet.config(), '--json']);
    expect(code).toBe(0);
    const journal = fleet.journal();
    expect(journal.status).toBe('ok');
    expect(Object.values(journal.nodes).map((n: any) => [n.state, n.inRotation])).toEqual([
      ['done', true],
      ['done', true],
      ['done', true],
    ]);
    expect(journal.nodes.a.history.map((h: any) => h.text)).toContain('deregister started');
    const log = readFileSync(fleet.journalPath().replace(/\.json$/, '.log'), 'utf8');
    expect(log).toMatch(/ b restart ok in /);
  });

  it('survives kill -9 of graceroll: the node in flight is recorded out of rotation, and --resume finishes the roll', async () => {
    const config = await killMidRoll();
    const journal = fleet.journal();
    expect(journal.status).toBe('running');
    expect(journal.nodes.a).toMatchObject({ state: 'done', inRotation: true });
    expect(journal.nodes.b).toMatchObject({ state: 'in-flight', step: 'drain', inRotation: false });
    expect(journal.nodes.c).toMatchObject({ state: 'pending', inRotation: true });
    expect(fleet.lb('b')).toBe('maint');

    // A new run without --resume is refused (b is out of rotation) and says how to continue.
    const fresh = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(fresh.code).toBe(3);
    expect(fresh.stdout).toMatch(/--resume continues it/);

    const aPid = fleet.pid('a');
    fleet.touch('b.drained');
    fleet.touch('c.drained');
    const resumed = await runCli(['restart-fleet', '-c', config, '--json', '--resume']);
    expect(resumed.code).toBe(0);
    const { report } = jsonLines(resumed.stdout).at(-1)!;
    expect(report.nodes.map((n: any) => n.outcome)).toEqual(['done', 'done', 'done']);
    expect(report.outOfRotation).toEqual([]);
    expect(fleet.pid('a')).toBe(aPid); // finished nodes are not touched again
    expect(['a', 'b', 'c'].map((n) => fleet.lb(n))).toEqual(['up', 'up', 'up']);
    expect(fleet.journal().resumedFrom).toBe(journal.runId);
  });

  it('--resume without a journal is a usage error', async () => {
    fleet = new SleeperFleet();
    const { code, stderr } = await runCli(['restart-fleet', '-c', fleet.config(), '--resume']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/--resume: no journal at /);
  });
});

describe('journal identity', () => {
  it('--resume refuses a journal written for another version of the config, touching nothing', async () => {
    const config = await killMidRoll();
    writeFileSync(config, `${readFileSync(config, 'utf8')}# edited after the run\n`);
    const before = fleet.journal();
    const { code, stderr } = await runCli(['restart-fleet', '-c', config, '--json', '--resume']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/--resume: .*\.journal\.json belongs to another version of .*\.yaml/);
    expect(stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(fleet.journal()).toEqual(before);
    expect(fleet.lb('b')).toBe('maint');
  });

  it('--resume refuses another selection of nodes and says which one to resume', async () => {
    const config = await killMidRoll();
    const { code, stderr } = await runCli([
      'restart-fleet',
      '-c',
      config,
      '--json',
      '--resume',
      '--nodes',
      'a,b',
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/is a run of the nodes a, b, c, not a, b/);
    expect(stderr).toMatch(/resume with --nodes a,b,c/);
  });

  it('two configs in one directory keep two journals', async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const config = fleet.config();
    const other = join(fleet.dir, 'other.yaml');
    writeFileSync(other, readFileSync(config, 'utf8').replace(/^name: .*$/m, 'name: other'));
    expect((await runCli(['restart-fleet', '-c', config, '--json', '--nodes', 'a'])).code).toBe(0);
    expect((await runCli(['restart-fleet', '-c', other, '--json', '--nodes', 'b'])).code).toBe(0);
    const first = fleet.journal();
    const second = JSON.parse(readFileSync(join(fleet.dir, '.graceroll', 'other.journal.json'), 'utf8'));
    expect(first.selection).toEqual(['a']);
    expect(second.selection).toEqual(['b']);
  });

  it('a journal that cannot be written halts the rollout before any node and never exits 0', async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const config = fleet.config();
    // The journal's own path is a directory: the first write (when the first batch starts) fails.
    mkdirSync(fleet.journalPath(), { recursive: true });
    const pids = ['a', 'b', 'c'].map((n) => fleet.pid(n));
    const { code, stdout, stderr } = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(code).toBe(1);
    const { report } = jsonLines(stdout).at(-1)!;
    expect(report.status).toBe('failed');
    expect(report.problems.join('\n')).toMatch(/the journal .* cannot be written.*no new node was started/);
    expect(stderr).toMatch(/error: the journal .* cannot be written/);
    expect(['a', 'b', 'c'].map((n) => fleet.pid(n))).toEqual(pids);
    expect(['a', 'b', 'c'].map((n) => fleet.lb(n))).toEqual(['up', 'up', 'up']);
  });
});

describe('lock', () => {
  it('refuses a second rollout while one runs (exit 4), naming the holder', async () => {
    fleet = new SleeperFleet();
    const config = fleet.config('', { slowDrain: 'yes' });
    fleet.start();
    const { run, reached } = rollUntil(
      ['restart-fleet', '-c', config, '--json'],
      (e) => e.kind === 'step-start' && e.step === 'drain',
    );
    await reached;
    const second = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(second.code).toBe(4);
    expect(second.stderr).toMatch(/is locked by .*pid \d+.*another rollout is running/);
    expect(second.stdout).toBe('');
    for (const n of fleet.nodes) fleet.touch(`${n}.drained`);
    expect((await run.done).code).toBe(0);
    expect(existsSync(join(fleet.dir, 'rollout.lock'))).toBe(false);
  });

  it('takes over a stale lock with a warning', async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const lock = join(fleet.dir, 'rollout.lock');
    mkdirSync(lock);
    writeFileSync(
      join(lock, 'owner'),
      JSON.stringify({
        token: 'x',
        user: 'ghost',
        host: 'gone',
        pid: 1,
        startedAt: '2020-01-01',
        config: 'x',
      }),
    );
    writeFileSync(join(lock, 'heartbeat'), '');
    const old = new Date(Date.now() - 3600_000);
    utimesSync(join(lock, 'heartbeat'), old, old);
    const { code, stderr } = await runCli(['restart-fleet', '-c', fleet.config(), '--json', '--nodes', 'a']);
    expect(code).toBe(0);
    expect(stderr).toMatch(/taking over a stale rollout lock .* held by ghost@gone/);
  });
});

describe('canary', () => {
  it('refuses to start without a terminal when the canary needs a confirmation (exit 2, nothing touched)', async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const before = fleet.pid('a');
    const { code, stderr } = await runCli(['restart-fleet', '-c', fleet.config('rollout: { canary: 1 }')]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/pass --yes/);
    expect(fleet.pid('a')).toBe(before);
  });

  it('waits the configured pause after the canary and then rolls the rest', async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const { code, stdout } = await runCli([
      'restart-fleet',
      '-c',
      fleet.config('rollout: { canary: 1, batchSize: 2, maxUnavailable: 2, pauseAfterCanary: 300ms }'),
      '--json',
    ]);
    expect(code).toBe(0);
    const events = jsonLines(stdout);
    expect(events.filter((e) => e.kind === 'batch-start').map((e) => e.nodes)).toEqual([['a'], ['b', 'c']]);
    expect(events.find((e) => e.kind === 'pause')?.detail).toMatch(/waiting 300ms/);
  });
});

describe('status', () => {
  it("shows each node's live state beside the journal", async () => {
    fleet = new SleeperFleet();
    fleet.start();
    const config = fleet.config();
    expect((await runCli(['restart-fleet', '-c', config, '--nodes', 'a', '--json'])).code).toBe(0);
    fleet.touch('b.sick');
    const { code, stdout } = await runCli(['status', '-c', config, '--json']);
    expect(code).toBe(0);
    const status = JSON.parse(stdout);
    expect(status.lock.state).toBe('free');
    const byNode = Object.fromEntries(status.nodes.map((n: any) => [n.node, n]));
    expect(byNode.a).toMatchObject({
      service: 'running',
      healthy: true,
      lb: 'up',
      journal: { state: 'done', inRotation: true },
    });
    expect(byNode.a.pid).toBe(Number(fleet.pid('a')));
    expect(byNode.b).toMatchObject({ healthy: false, service: 'running' });
    expect(byNode.b.journal).toBeUndefined(); // not part of that run
    const text = await runCli(['status', '-c', config]);
    expect(text.stdout).toMatch(/^a\s+running\s+\d+\s+ok\s+up/m);
  });
});

describe('signals to graceroll', () => {
  it('SIGTERM: the node in flight finishes and is back in rotation; exit 143', async () => {
    fleet = new SleeperFleet();
    const config = fleet.config('', { slowDrain: 'yes' });
    fleet.start();
    const { run, reached } = rollUntil(
      ['restart-fleet', '-c', config, '--json'],
      (e) => e.kind === 'step-start' && e.step === 'drain',
    );
    await reached;
    run.child.kill('SIGTERM');
    setTimeout(() => fleet.touch('a.drained'), 300);
    const { code, stdout } = await run.done;
    expect(code).toBe(143);
    const { report } = jsonLines(stdout).at(-1)!;
    expect(report.nodes.map((n: any) => n.outcome)).toEqual(['done', 'skipped', 'skipped']);
    expect(report.outOfRotation).toEqual([]);
    expect(fleet.lb('a')).toBe('up');
  });

  it('a second SIGINT cuts the drain short: the stopped node stays out and is named on screen, in the journal and the exit code', async () => {
    fleet = new SleeperFleet();
    const config = fleet.config('', { slowDrain: 'yes' });
    fleet.start();
    const run = startCli(['restart-fleet', '-c', config]);
    let sent = 0;
    run.child.stdout!.on('data', (chunk: Buffer) => {
      if (sent === 0 && / a drain started/.test(chunk.toString())) {
        sent = 1;
        run.child.kill('SIGINT');
        setTimeout(() => run.child.kill('SIGINT'), 200);
      }
    });
    const { code, stdout } = await run.done;
    expect(code).toBe(130);
    expect(stdout).toMatch(/OUT OF ROTATION: a/);
    expect(stdout).toMatch(/a is OUT of rotation \(the signalled process is still draining/);
    expect(fleet.lb('a')).toBe('maint');
    expect(fleet.journal().nodes.a).toMatchObject({ state: 'interrupted', inRotation: false });
  });
});

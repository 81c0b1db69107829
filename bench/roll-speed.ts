// Roll speed: graceroll against a hand-written shell loop and an Ansible playbook, in ONE invocation,
// on the same real lab fleet (test/lab: systemd nodes in nspawn, sshd, HAProxy with retries 0), each
// under the same live load whose failed requests are counted per run.
//
//   npx tsx bench/roll-speed.ts --nodes 5            # needs root and the lab's packages + ansible
//   npx tsx bench/roll-speed.ts --nodes 20 [--runs 3] [--rate 200] [--only graceroll,shell] [--no-build]
//                                         [--cpu-prof DIR]   # graceroll runs with node --cpu-prof
//                                         [--bin PATH]       # time another build's bin/run.js
//
// Prints each tool's wall time, failed/sent requests, the ratios graceroll/shell and graceroll/ansible,
// and graceroll's orchestration overhead (BENCHMARKS.md defines it), then a per-step comparison with
// the shell loop. Raw figures go to $TMPDIR/graceroll-bench/roll-speed-N-TIME.json.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labAvailable, startLab, type Lab } from '../test/lab/lab.js';
import { labFleetConfig, mainPids, restoreLab } from '../test/helpers/lab-fleet.js';
import {
  args,
  build,
  machine,
  median,
  pct,
  ratio,
  repoRoot,
  resultsDir,
  runJs,
  seconds,
  sleep,
  timed,
  verdict,
  waitForQuiet,
  type Timed,
} from './lib.js';

const opts = args({
  nodes: '5',
  runs: '3',
  rate: '200',
  connections: '40',
  only: 'graceroll,shell,ansible',
  build: true,
  'quiet-wait': '900',
  'cpu-prof': '',
  // Another build's bin/run.js to time instead of this one (before/after comparisons of a fix).
  bin: '',
});
const graceroll = opts.bin ? String(opts.bin) : runJs;
const nodeCount = Number(opts.nodes);
const runs = Number(opts.runs);
const tools = String(opts.only).split(',') as Tool[];
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);

type Tool = 'graceroll' | 'shell' | 'ansible';
/** Steps in which a node is draining or coming back; everything else graceroll does is overhead. */
const WAITING_STEPS = ['lb-drain', 'drain', 'escalate', 'restart', 'verify', 'register'];
const TARGETS = { shell: 1.05, ansible: 0.35, overhead: 0.05 };

interface LoadResult {
  sent: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
}

interface Run {
  tool: Tool;
  round: number;
  code: number | null;
  ms: number;
  load: LoadResult;
  /** Nodes whose main PID did not change: the tool did not restart them. */
  notRestarted: string[];
  /** Σ ms per step over all nodes (graceroll from its events, the shell loop from its phase lines). */
  steps?: Record<string, number>;
  overhead?: Overhead;
  stderrTail: string;
}

interface Overhead {
  wallMs: number;
  waitingMs: number;
  overheadMs: number;
  breakdown: Record<string, number>;
}

type JsonEvent = Record<string, any>;

/** graceroll's overhead from its own --json events: wall time minus the time nodes spent waiting. */
function grOverhead(run: Timed): { overhead: Overhead; steps: Record<string, number> } {
  const events: JsonEvent[] = run.stdout
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as JsonEvent);
  const at = (kind: string) => {
    const e = events.find((x) => x.kind === kind);
    if (!e) throw new Error(`graceroll printed no ${kind} event`);
    return Date.parse(e.time as string);
  };
  const steps: Record<string, number> = {};
  for (const e of events.filter((x) => x.kind === 'step-end'))
    steps[e.step] = (steps[e.step] ?? 0) + (e.durationMs as number);
  const waitingMs = WAITING_STEPS.reduce((sum, s) => sum + (steps[s] ?? 0), 0);
  const allStepsMs = Object.values(steps).reduce((a, b) => a + b, 0);
  const exitAt = run.startedAt + run.ms;
  const rolloutMs = at('rollout-end') - at('preflight-end');
  const breakdown = {
    'start-up, config, lock (spawn → rollout-start)': at('rollout-start') - run.startedAt,
    'preflight (rollout-start → preflight-end)': at('preflight-end') - at('rollout-start'),
    'deregister steps': steps.deregister ?? 0,
    'signal steps': steps.signal ?? 0,
    'between steps and nodes (journal, events)': rolloutMs - allStepsMs,
    'exit (rollout-end → process exit)': exitAt - at('rollout-end'),
  };
  return {
    steps,
    overhead: { wallMs: run.ms, waitingMs, overheadMs: run.ms - waitingMs, breakdown },
  };
}

/** Ansible's per-task totals from the profile_tasks callback (`Task name ---- 1.23s`). */
function ansibleSteps(stdout: string): Record<string, number> {
  const steps: Record<string, number> = {};
  for (const m of stdout.matchAll(/^(.+?) -{3,} (\d+(?:\.\d+)?)s$/gm))
    steps[m[1].trim()] = Number(m[2]) * 1000;
  return steps;
}
const ANSIBLE_LB_DRAIN = 'Drain in HAProxy, wait for 0 sessions, then MAINT';

function shellSteps(stderr: string): Record<string, number> {
  const steps: Record<string, number> = {};
  for (const m of stderr.matchAll(/^phase (\S+) (\S+) (\d+)$/gm))
    steps[m[2]] = (steps[m[2]] ?? 0) + Number(m[3]);
  return steps;
}

/** The load generator (test/fixtures/load/load.js) in its own process, so it does not share our event loop. */
function startLoad(lab: Lab) {
  const child = spawn(
    process.execPath,
    [
      join(repoRoot, 'test/fixtures/load/load.js'),
      ...['--url', lab.lb.url, '--connections', String(opts.connections), '--rate', String(opts.rate)],
      ...['--duration', '20m'],
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    child,
    async stop(): Promise<LoadResult> {
      child.kill('SIGINT');
      await closed;
      return JSON.parse(out.trim().split('\n').pop() ?? '{}') as LoadResult;
    },
  };
}

async function main(): Promise<void> {
  const available = labAvailable();
  if (!available.ok) throw new Error(`the lab cannot run here: ${available.reason}`);
  // Quiet first: a build removes dist/, which a test run elsewhere may be using.
  const busy = await waitForQuiet(Number(opts['quiet-wait']) * 1000, log);
  if (busy.length) log(`WARNING: measuring while other work runs: ${busy.join('; ')}`);
  if (opts.build) build(log);

  log(`starting a lab of ${nodeCount} nodes …`);
  const lab = await startLab({ nodes: nodeCount, readyTimeoutMs: 120_000 });
  // The fleet config, inventory and graceroll's journal and lock: removed at the end.
  const dir = mkdtempSync(join(tmpdir(), 'graceroll-bench-roll-'));
  let load: ReturnType<typeof startLoad> | undefined;
  const onSignal = () => {
    load?.child.kill('SIGKILL');
    void lab.stop().finally(() => {
      rmSync(dir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  log(`lab ${lab.prefix} ready in ${lab.startMs} ms`);

  try {
    const fleet = labFleetConfig(lab, {
      dir,
      name: 'bench',
      drainInterval: '100ms',
      healthInterval: '100ms',
      healthConsecutive: 3,
    });
    const inventory = join(fleet.dir, 'inventory.ini');
    writeFileSync(
      inventory,
      [
        '[web]',
        ...lab.nodes.map((n) => `${n.name} ansible_host=${n.ip}`),
        '[web:vars]',
        'ansible_user=root',
        `ansible_ssh_common_args='-F ${lab.ssh.configPath}'`,
        '',
      ].join('\n'),
    );
    const command: Record<Tool, () => Promise<Timed>> = {
      graceroll: () =>
        timed(process.execPath, [
          ...(opts['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', String(opts['cpu-prof'])] : []),
          ...[graceroll, 'restart-fleet', '-c', fleet.path, '--json', '--yes'],
        ]),
      shell: () =>
        timed('bash', [
          join(repoRoot, 'bench/shell-loop.sh'),
          lab.lb.adminSocket,
          lab.lb.backend,
          lab.ssh.configPath,
          String(lab.servicePort),
          ...lab.nodes.map((n) => `${n.name}=${n.ip}`),
        ]),
      ansible: () =>
        timed(
          'ansible-playbook',
          [
            ...['-i', inventory, join(repoRoot, 'bench/ansible/roll.yml')],
            ...['-e', `lb_socket=${lab.lb.adminSocket}`, '-e', `lb_backend=${lab.lb.backend}`],
            ...['-e', `service_port=${lab.servicePort}`],
          ],
          { env: { ANSIBLE_CONFIG: join(repoRoot, 'bench/ansible/ansible.cfg'), ANSIBLE_NOCOLOR: '1' } },
        ),
    };

    const results: Run[] = [];
    for (let round = 0; round < runs; round++) {
      // Rotate the order each round, so no tool always goes first on a freshly booted fleet.
      const order = tools.map((_, i) => tools[(i + round) % tools.length]);
      for (const tool of order) {
        await restoreLab(lab);
        await sleep(1000);
        const before = await mainPids(lab);
        load = startLoad(lab);
        await sleep(1500);
        log(`round ${round + 1}/${runs}: ${tool} …`);
        const run = await command[tool]();
        const loadResult = await load.stop();
        load = undefined;
        const after = await mainPids(lab);
        const notRestarted = lab.nodes.map((n) => n.name).filter((n) => after[n] === before[n] || !after[n]);
        const result: Run = {
          tool,
          round,
          code: run.code,
          ms: run.ms,
          load: loadResult,
          notRestarted,
          stderrTail: run.stderr.split('\n').slice(-30).join('\n'),
        };
        if (tool === 'graceroll' && run.code === 0) Object.assign(result, grOverhead(run));
        if (tool === 'shell') result.steps = shellSteps(run.stderr);
        if (tool === 'ansible') {
          result.steps = ansibleSteps(run.stdout);
          result.stderrTail = run.stdout.split('\n').slice(-40).join('\n');
        }
        results.push(result);
        log(
          `  ${tool}: exit ${run.code}, ${seconds(run.ms)}, failed ${loadResult.failed}/${loadResult.sent}` +
            (notRestarted.length ? `, NOT restarted: ${notRestarted.join(',')}` : ''),
        );
        if (run.code !== 0) log(`  ${tool} output tail:\n${result.stderrTail}`);
      }
    }
    report(results, lab);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await lab.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(results: Run[], lab: Lab): void {
  const ok = (t: Tool) => results.filter((r) => r.tool === t && r.code === 0 && !r.notRestarted.length);
  const wall = (t: Tool) => (ok(t).length ? median(ok(t).map((r) => r.ms)) : NaN);
  /** The run whose wall time is the median (the lower middle one for an even count): its steps are shown. */
  const medianRun = (t: Tool): Run | undefined => {
    const runs = [...ok(t)].sort((a, b) => a.ms - b.ms);
    return runs[Math.floor((runs.length - 1) / 2)];
  };
  const lines: string[] = [];
  const out = (line = '') => lines.push(line);
  const m = machine();
  out(
    `# roll-speed: ${nodeCount} nodes, ${runs} run(s) per tool, load ${opts.rate} req/s over ${opts.connections} connections`,
  );
  out(`machine: ${m.cpus}, ${m.memory}, node ${m.node}, ${m.os}, kernel ${m.kernel}, load ${m.load}`);
  out(
    `lab: ${lab.nodes.length} systemd nodes + HAProxy (retries 0); polling 100 ms (graceroll drain/health, shell loop)`,
  );
  out();
  out('| tool | wall (median) | runs ok | failed / sent requests |');
  out('| --- | ---: | ---: | ---: |');
  for (const t of tools) {
    const all = results.filter((r) => r.tool === t);
    const failed = all.reduce((s, r) => s + r.load.failed, 0);
    const sent = all.reduce((s, r) => s + r.load.sent, 0);
    const walls = all.map((r) => (r.ms / 1000).toFixed(2)).join(', ');
    out(`| ${t} | ${seconds(wall(t))} (${walls}) | ${ok(t).length}/${all.length} | ${failed} / ${sent} |`);
  }
  out();
  const g = wall('graceroll');
  if (tools.includes('shell')) {
    const r = g / wall('shell');
    out(
      `graceroll / shell loop: ${ratio(g, wall('shell'))} (target ≤ ${TARGETS.shell}×: ${verdict(r <= TARGETS.shell)})`,
    );
  }
  if (tools.includes('ansible')) {
    const r = g / wall('ansible');
    out(
      `graceroll / Ansible:    ${ratio(g, wall('ansible'))} (target ≤ ${TARGETS.ansible}×: ${verdict(r <= TARGETS.ansible)})`,
    );
  }
  // The LB drain wait is set by the load (slow requests still in flight), not by the tool: the same
  // ratios without it are steadier from run to run.
  const lbDrain = (r: Run) =>
    r.tool === 'graceroll'
      ? (r.steps?.deregister ?? 0) + (r.steps?.['lb-drain'] ?? 0)
      : r.tool === 'shell'
        ? (r.steps?.['lb-drain'] ?? 0)
        : (r.steps?.[ANSIBLE_LB_DRAIN] ?? 0);
  const rest = (t: Tool) => (ok(t).length ? median(ok(t).map((r) => r.ms - lbDrain(r))) : NaN);
  out();
  out('without the wait for LB sessions to reach 0 (its length is set by the slow requests in flight):');
  for (const t of tools) out(`  ${t}: ${seconds(rest(t))}`);
  if (tools.includes('shell')) out(`  graceroll / shell loop: ${ratio(rest('graceroll'), rest('shell'))}`);
  if (tools.includes('ansible'))
    out(`  graceroll / Ansible:    ${ratio(rest('graceroll'), rest('ansible'))}`);
  const gr = ok('graceroll').filter((r) => r.overhead);
  if (gr.length) {
    const mid = medianRun('graceroll')!;
    const o = mid.overhead!;
    out();
    out(
      `graceroll overhead (run of ${seconds(o.wallMs)}): ${seconds(o.overheadMs)} = ${pct(o.overheadMs, o.wallMs)} of the roll ` +
        `(target ≤ ${TARGETS.overhead * 100} %: ${verdict(o.overheadMs / o.wallMs <= TARGETS.overhead)})`,
    );
    out(`  nodes waiting (Σ ${WAITING_STEPS.join(' + ')}): ${seconds(o.waitingMs)}`);
    for (const [k, v] of Object.entries(o.breakdown)) out(`  ${k}: ${seconds(v)}`);
    const sh = medianRun('shell')?.steps ?? {};
    const an = medianRun('ansible')?.steps ?? {};
    const ansibleTasks: Record<string, string[]> = {
      'deregister + lb-drain': [ANSIBLE_LB_DRAIN],
      signal: ['Read the main PID', 'Send the graceful signal'],
      drain: ['Wait for the signalled process to exit', 'Wait for established connections to finish'],
      restart: ['Restart the service'],
      verify: ['Check that a new process runs', 'Wait until healthy'],
      register: ['Back into rotation, wait for UP'],
    };
    const gs = mid.steps!;
    const grStep = (s: string) =>
      s === 'deregister + lb-drain' ? (gs.deregister ?? 0) + (gs['lb-drain'] ?? 0) : (gs[s] ?? 0);
    const shStep = (s: string) => sh[s === 'deregister + lb-drain' ? 'lb-drain' : s] ?? 0;
    const anStep = (s: string) => ansibleTasks[s].reduce((sum, task) => sum + (an[task] ?? 0), 0);
    out();
    const columns: [string, (s: string) => number][] = [
      ['graceroll', grStep],
      ...(tools.includes('shell') ? [['shell loop', shStep] as [string, (s: string) => number]] : []),
      ...(tools.includes('ansible') ? [['Ansible', anStep] as [string, (s: string) => number]] : []),
    ];
    out('per step, Σ over nodes (Ansible: its profile_tasks totals of the matching tasks):');
    out(`| step | ${columns.map(([name]) => name).join(' | ')} |`);
    out(`| --- |${columns.map(() => ' ---: |').join('')}`);
    for (const s of Object.keys(ansibleTasks))
      out(`| ${s} | ${columns.map(([, f]) => seconds(f(s))).join(' | ')} |`);
  }
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  const dir = resultsDir;
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(
      dir,
      `roll-speed-${nodeCount}${opts.bin ? '-bin' : ''}-${new Date().toISOString().replace(/[:.]/g, '')}.json`,
    ),
    JSON.stringify({ date: new Date().toISOString(), machine: m, opts, results, summary: text }, null, 1),
  );
}

await main();

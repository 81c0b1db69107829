import { mkdtempSync, readFileSync, rmSync, existsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { parseFleet } from '../../src/lib/config/load-config.js';
import { EVENT_SCHEMA_VERSION, type RolloutReport } from '../../src/lib/engine/events.js';
import { runRollout } from '../../src/lib/engine/run-rollout.js';
import { ExitCode } from '../../src/lib/exit-codes.js';
import { createJournalWriter, journalPath } from '../../src/lib/journal/journal.js';
import type { FileSystem } from '../../src/lib/journal/safe-write.js';
import type { Journal } from '../../src/lib/journal/types.js';
import { combineRenderers } from '../../src/lib/output/combine.js';
import { createPlainRenderer } from '../../src/lib/output/plain.js';
import { formatSummary } from '../../src/lib/output/summary.js';
import { planRollout } from '../../src/lib/plan/plan-rollout.js';
import { finalExitCode } from '../../src/lib/restart-fleet.js';
import { FaultFleet, OPS, type NodeBehaviour } from './fault-fleet.js';

const HOOKS = ['beforeDeregister', 'beforeSignal', 'afterRestart', 'afterRegister'] as const;

const hookArb = fc.oneof(
  { weight: 6, arbitrary: fc.constant([]) },
  { weight: 2, arbitrary: fc.constant(['hook-ok {node}']) },
  { weight: 1, arbitrary: fc.constant([{ command: 'hook-ok {node}', on: 'controller' }]) },
  { weight: 1, arbitrary: fc.constant(['hook-fail {node}']) },
);

const faultArb = fc.record({
  op: fc.constantFrom(...OPS),
  nth: fc.integer({ min: 1, max: 6 }),
  kind: fc.constantFrom('throw' as const, 'throw-after' as const, 'fail' as const, 'hang' as const),
});

const nodeArb: fc.Arbitrary<NodeBehaviour> = fc.record({
  ignoresGraceful: fc.oneof(
    { weight: 5, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  onlyKill: fc.oneof(
    { weight: 8, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  unhealthyAfterRestart: fc.oneof(
    { weight: 8, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  drainChecks: fc.integer({ min: 0, max: 4 }),
  lbSessions: fc.integer({ min: 0, max: 3 }),
  flapping: fc.oneof(
    { weight: 8, arbitrary: fc.constant(false) },
    { weight: 1, arbitrary: fc.constant(true) },
  ),
  faults: fc.oneof(
    { weight: 8, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.array(faultArb, { minLength: 1, maxLength: 2 }) },
  ),
});

/** One generated scenario: a valid config, a simulated fleet with faults, and signals at random moments. */
export const scenarioArb = fc.record({
  nodeCount: fc.integer({ min: 1, max: 5 }),
  batchSize: fc.oneof(fc.integer({ min: 1, max: 6 }), fc.constantFrom('25%', '50%', '100%')),
  canary: fc.integer({ min: 0, max: 2 }),
  maxUnavailable: fc.option(fc.oneof(fc.integer({ min: 1, max: 4 }), fc.constant('50%')), { nil: undefined }),
  maxFailures: fc.oneof(fc.integer({ min: 0, max: 2 }), fc.constant('50%')),
  settle: fc.constantFrom('0s', '6ms', '15ms'),
  pauseAfterCanary: fc.constantFrom('none', '5ms', 'confirm'),
  continueAfterCanary: fc.boolean(),
  hooks: fc.record(
    Object.fromEntries(HOOKS.map((h) => [h, hookArb])) as Record<(typeof HOOKS)[number], typeof hookArb>,
  ),
  onDeadline: fc.constantFrom('escalate' as const, 'halt' as const),
  lbSessions: fc.constantFrom('before-signal' as const, 'with-drain' as const, 'never' as const),
  gracefulCommand: fc.boolean(),
  onForced: fc.constantFrom('continue' as const, 'halt' as const),
  forcedIsOk: fc.boolean(),
  escalation: fc.constantFrom(['TERM'], ['TERM', 'KILL'], ['KILL']),
  drainProbes: fc.subarray(
    ['process-exited', 'command', 'socket-file', 'connections', 'lb-sessions', 'http'] as const,
    {
      minLength: 1,
    },
  ),
  healthProbes: fc.subarray(['command', 'http', 'tcp'] as const),
  consecutive: fc.integer({ min: 1, max: 3 }),
  rolloutDeadline: fc.oneof(
    { weight: 6, arbitrary: fc.constant('1m') },
    { weight: 1, arbitrary: fc.constantFrom('60ms', '200ms') },
  ),
  behaviours: fc.array(nodeArb, { minLength: 5, maxLength: 5 }),
  /** The journal's disk takes this many writes, then no more bytes. */
  journalWrites: fc.oneof(
    { weight: 6, arbitrary: fc.constant(undefined) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 80 }) },
  ),
  interrupt: fc.oneof(
    { weight: 3, arbitrary: fc.constant(undefined) },
    {
      weight: 1,
      arbitrary: fc.record({
        firstMs: fc.integer({ min: 0, max: 150 }),
        secondMs: fc.option(fc.integer({ min: 0, max: 80 }), { nil: undefined }),
      }),
    },
  ),
  seed: fc.integer(),
});
export type Scenario = typeof scenarioArb extends fc.Arbitrary<infer T> ? T : never;

function configFor(s: Scenario, port: number): Record<string, unknown> {
  const drainProbe = (type: string) =>
    type === 'command'
      ? { type, command: 'drain-check {node}' }
      : type === 'socket-file'
        ? { type, path: '/run/app.sock' }
        : type === 'connections'
          ? { type, port: 8080 }
          : type === 'http'
            ? {
                type,
                url: `http://127.0.0.1:${port}/inflight/{node}`,
                json: { path: 'inflight', equals: 0 },
                timeout: '50ms',
              }
            : { type };
  const healthProbe = (type: string) =>
    type === 'command'
      ? { type, command: 'health-check {node}' }
      : type === 'http'
        ? { type, url: `http://127.0.0.1:${port}/health/{node}`, timeout: '50ms' }
        : { type, host: '127.0.0.1', port, timeout: '50ms' };
  return {
    name: 'faults',
    service: {
      type: 'command',
      status: 'status',
      restart: 'restart',
      signal: 'USR1',
      ...(s.gracefulCommand ? { gracefulCommand: 'graceful-shutdown {pid}' } : {}),
    },
    loadBalancer: { type: 'command', deregister: 'x', register: 'y', state: 'z' },
    drain: {
      interval: '2ms',
      deadline: '40ms',
      onDeadline: s.onDeadline,
      lbSessions: s.lbSessions,
      onForced: s.onForced,
      forcedIsOk: s.forcedIsOk,
      probes: s.drainProbes.map(drainProbe),
      escalation: s.escalation.map((signal) => ({ signal, deadline: '15ms' })),
    },
    health: { probes: s.healthProbes.map(healthProbe), consecutive: s.consecutive, interval: '2ms' },
    deadlines: {
      command: '30ms',
      deregister: '40ms',
      lbDrain: '40ms',
      restart: '30ms',
      verify: '60ms',
      register: '40ms',
      rollout: s.rolloutDeadline,
    },
    rollout: {
      batchSize: s.batchSize,
      canary: s.canary,
      settle: s.settle,
      maxFailures: s.maxFailures,
      ...(s.maxUnavailable !== undefined ? { maxUnavailable: s.maxUnavailable } : {}),
      pauseAfterCanary: s.pauseAfterCanary,
    },
    hooks: Object.fromEntries(
      HOOKS.map((h) => [
        h,
        s.hooks[h].map((hook) =>
          typeof hook === 'string' ? { command: hook, deadline: '20ms' } : { ...hook, deadline: '20ms' },
        ),
      ]),
    ),
    nodes: Array.from({ length: s.nodeCount }, (_, i) => ({ name: `n${i + 1}` })),
  };
}

/** A disk that takes `writes` more writes, then writes nothing (as a full device does). */
const diskFor = (writes: number | undefined): FileSystem | undefined => {
  if (writes === undefined) return undefined;
  let left = writes;
  return {
    writeSync: (fd, buffer, offset, length) => (left-- > 0 ? writeSync(fd, buffer, offset, length) : 0),
  };
};

const EXPECTED_CODE: Record<RolloutReport['status'], number> = {
  ok: ExitCode.ok,
  forced: ExitCode.forced,
  failed: ExitCode.rolloutFailed,
  'preflight-refused': ExitCode.preflightRefused,
  deadline: ExitCode.deadline,
  interrupted: ExitCode.interrupted,
};

/**
 * Runs one scenario through the real planner, engine, journal writer, plain renderer and summary, and
 * checks the invariants users rely on. Throws an Error naming the broken invariant.
 */
export async function checkScenario(
  s: Scenario,
  /** For the checker's own negative control: changes the fleet behind the engine's back after the run. */
  sabotage?: (fake: FaultFleet) => void,
): Promise<ScenarioOutcome> {
  const dir = mkdtempSync(join(tmpdir(), 'graceroll-faults-'));
  const names = Array.from({ length: s.nodeCount }, (_, i) => `n${i + 1}`);
  const fake = new FaultFleet(names, s.behaviours.slice(0, s.nodeCount), s.seed, 'USR1');
  const port = await fake.listen();
  const fleet = parseFleet(configFor(s, port), join(dir, 'fleet.yaml'));
  const stop = new AbortController();
  const abort = new AbortController();
  const timers: NodeJS.Timeout[] = [];
  let interrupted = false;
  if (s.interrupt) {
    const { firstMs, secondMs } = s.interrupt;
    timers.push(
      setTimeout(() => {
        interrupted = true;
        stop.abort(new Error('SIGINT received'));
        if (secondMs !== undefined)
          timers.push(setTimeout(() => abort.abort(new Error('SIGINT received again')), secondMs));
      }, firstMs),
    );
  }
  const path = journalPath(fleet);
  let journal: ReturnType<typeof createJournalWriter>;
  try {
    journal = createJournalWriter(path, fleet, undefined, { resume: false, fs: diskFor(s.journalWrites) });
  } catch (error) {
    // No room even to open the journal: restart-fleet refuses before touching anything (exit 1).
    timers.forEach(clearTimeout);
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
    if (/cannot be written/.test((error as Error).message))
      return { status: 'refused: no journal', out: 0, journalFailed: true };
    throw error;
  }
  let plainText = '';
  const renderer = combineRenderers(
    journal,
    createPlainRenderer((t) => (plainText += t)),
  );
  const problems: string[] = [];
  const check = (ok: boolean, what: string) => ok || problems.push(what);
  let report: RolloutReport | undefined;
  let journalFailedAt: string | undefined;
  try {
    const parts = fake.parts(fleet, (event) =>
      renderer.handle({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), ...event }),
    );
    const plan = planRollout(fleet, parts);
    try {
      report = await runRollout(
        plan,
        parts,
        { stop: stop.signal, abort: abort.signal },
        {
          continueAfterCanary: () => new Promise((r) => setTimeout(() => r(s.continueAfterCanary), 1)),
        },
      );
    } catch (error) {
      check(false, `runRollout threw: ${(error as Error).stack}`);
      report = undefined;
    }
    if (!report) throw new Error(problems.join('\n'));
    await renderer.finish();
    sabotage?.(fake);
    const ends = fake.events.filter((e) => e.kind === 'rollout-end');
    check(ends.length === 1, `${ends.length} rollout-end events, expected exactly one`);
    check(fake.events.at(-1)?.kind === 'rollout-end', 'the last event is not rollout-end');
    check(
      fake.maxOut <= plan.maxUnavailable,
      `${fake.maxOut} nodes out of rotation at once, maxUnavailable is ${plan.maxUnavailable}`,
    );

    const failure = journal.failure();
    journalFailedAt = failure;
    const code = finalExitCode(report, interrupted ? ExitCode.interrupted : undefined, failure);
    check(
      code === (failure && report.status === 'ok' ? ExitCode.rolloutFailed : EXPECTED_CODE[report.status]),
      `exit code ${code} for status ${report.status}`,
    );
    if (failure) check(code !== ExitCode.ok, 'a run whose journal failed exited 0');
    if (report.status === 'forced')
      check(
        !s.forcedIsOk &&
          report.nodes.some((n) => n.outcome === 'forced') &&
          report.nodes.every((n) => n.outcome === 'done' || n.outcome === 'forced'),
        'status forced, but not every node is back or none was forced (or forcedIsOk is set)',
      );
    for (const n of report.nodes)
      if (n.outcome === 'forced')
        check(n.forced !== undefined && n.inRotation, `${n.node} forced without a forced record`);
    if (report.status === 'ok')
      check(
        report.nodes.every(
          (n) => (n.outcome === 'done' || (n.outcome === 'forced' && s.forcedIsOk)) && n.inRotation,
        ) && !report.problems.length,
        'status ok, but not every node is done and in rotation',
      );
    if (report.status === 'interrupted') check(interrupted, 'status interrupted without a signal');

    const summary = formatSummary(report);
    const recorded: Journal | undefined = existsSync(path)
      ? (JSON.parse(readFileSync(path, 'utf8')) as Journal)
      : undefined;
    const batchesStarted = fake.events.some((e) => e.kind === 'batch-start');
    if (!failure && batchesStarted)
      check(
        recorded?.status === report.status,
        `journal status ${recorded?.status}, report ${report.status}`,
      );
    for (const node of report.nodes) {
      const sim = fake.node(node.node);
      const out = sim.admin !== 'up';
      // The node's health as the configured probes can see it (a tcp probe to the shared server cannot).
      const checksHealth = s.healthProbes.some((p) => p === 'command' || p === 'http');
      const healthy = sim.process !== undefined && (sim.healthy || !checksHealth);
      if (out) {
        check(!node.inRotation, `${node.node} is out of rotation but the report says it is in`);
        check(
          report.outOfRotation.includes(node.node),
          `${node.node} is out of rotation but not in outOfRotation`,
        );
        check(
          summary.includes('OUT OF ROTATION:') &&
            new RegExp(`OUT OF ROTATION:.*\\b${node.node}\\b`).test(summary),
          `${node.node} is out of rotation but the summary does not name it`,
        );
        if (!failure)
          check(
            recorded?.nodes[node.node]?.inRotation === false,
            `${node.node} is out of rotation but the journal says it is in`,
          );
      } else {
        check(
          healthy,
          `${node.node} is in rotation but not healthy (process ${sim.process ? 'running' : 'gone'}, healthy ${sim.healthy})`,
        );
      }
      if (!failure && recorded && batchesStarted && node.outcome !== 'skipped')
        check(
          recorded.nodes[node.node]?.inRotation === node.inRotation,
          `${node.node}: journal and report disagree on rotation`,
        );
      if (node.outcome === 'failed' || node.outcome === 'interrupted')
        check(
          node.reason !== undefined && plainText.includes(node.node),
          `${node.node} ${node.outcome} without a reason`,
        );
    }
  } finally {
    timers.forEach(clearTimeout);
    await fake.close();
    rmSync(dir, { recursive: true, force: true });
  }
  if (problems.length) {
    const tail = fake.events
      .slice(-25)
      .map((e) => JSON.stringify(e))
      .join('\n  ');
    throw new Error(
      `invariants broken:\n- ${problems.join('\n- ')}\nstatus ${report?.status}; last events:\n  ${tail}`,
    );
  }
  return {
    status: report.status,
    out: report.outOfRotation.length,
    journalFailed: journalFailedAt !== undefined,
  };
}

export interface ScenarioOutcome {
  status: string;
  /** Nodes the run left (and named) out of rotation. */
  out: number;
  journalFailed: boolean;
}

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { checkScenario, scenarioArb, type Scenario } from '../helpers/fault-scenarios.js';

/**
 * Model-based: generated valid configs × generated faults × Ctrl-C at random moments, through the real
 * planner, engine, journal and renderers over a simulated fleet (helpers/fault-fleet.ts). `npm run
 * faults` runs 10,000 or more; a failure prints its seed and the counterexample, and
 * `FAULTS_SEED=… FAULTS_PATH=…` replays it.
 */
const RUNS = Number(process.env.FAULTS_RUNS ?? 150);

describe('generated fault scenarios', () => {
  it(`the rollout never throws, ends once, respects maxUnavailable and names every node it leaves out (${RUNS} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (scenario) => {
        await checkScenario(scenario);
      }),
      {
        numRuns: RUNS,
        seed: process.env.FAULTS_SEED ? Number(process.env.FAULTS_SEED) : undefined,
        path: process.env.FAULTS_PATH,
        endOnFailure: true,
      },
    );
  }, 600_000);

  it("the checker is a fair judge: a node left out behind the engine's back is caught", async () => {
    // Negative control: a clean scenario, then one node is taken out of rotation without the engine
    // knowing. The invariants must name it; a checker that passes this would pass anything.
    const calm = {
      ignoresGraceful: false,
      onlyKill: false,
      unhealthyAfterRestart: false,
      drainChecks: 1,
      lbSessions: 1,
      flapping: false,
      faults: [],
    };
    const scenario: Scenario = {
      nodeCount: 2,
      batchSize: 1,
      canary: 0,
      maxUnavailable: undefined,
      maxFailures: 0,
      settle: '0s',
      pauseAfterCanary: 'none',
      continueAfterCanary: true,
      hooks: { beforeDeregister: [], beforeSignal: [], afterRestart: [], afterRegister: [] },
      onDeadline: 'escalate',
      lbSessions: 'before-signal',
      gracefulCommand: false,
      onForced: 'continue',
      forcedIsOk: false,
      escalation: ['TERM'],
      drainProbes: ['process-exited'],
      healthProbes: ['command'],
      consecutive: 1,
      rolloutDeadline: '1m',
      behaviours: Array.from({ length: 5 }, () => calm),
      journalWrites: undefined,
      interrupt: undefined,
      seed: 1,
    };
    await expect(checkScenario(scenario)).resolves.toMatchObject({ status: 'ok', out: 0 });
    await expect(
      checkScenario(scenario, (fake) => {
        fake.node('n2').admin = 'maint';
      }),
    ).rejects.toThrow(/n2 is out of rotation but the report says it is in/);
  });
});

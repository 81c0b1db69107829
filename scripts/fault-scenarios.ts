/**
 * `npm run faults [-- --runs 10000 --seed 42]`: the generated fault scenarios of
 * test/unit/engine-faults.test.ts at scale. Prints the number of cases, the seed, how the runs ended, and
 * the first counterexample (fast-check shrinks it) with the command that replays it.
 */
import fc from 'fast-check';
import { parseArgs } from 'node:util';
import { checkScenario, scenarioArb, type ScenarioOutcome } from '../test/helpers/fault-scenarios.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '10000' },
    seed: { type: 'string' },
    parallel: { type: 'string', default: '4' },
  },
});
const runs = Number(values.runs);
const parallel = Math.max(1, Number(values.parallel));
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const tally = new Map<string, number>();
let leftOut = 0;
let journalFailures = 0;
const count = (outcome: ScenarioOutcome) => {
  tally.set(outcome.status, (tally.get(outcome.status) ?? 0) + 1);
  leftOut += outcome.out;
  if (outcome.journalFailed) journalFailures += 1;
};

// A rejection nobody handles would crash a real run of graceroll: here it is a bug to report, by case.
const unhandled: string[] = [];
process.on('unhandledRejection', (error) => {
  unhandled.push(error instanceof Error ? (error.stack ?? error.message) : String(error));
});

const started = performance.now();
// The cases wait on timers, not on the CPU: several independent runs share the event loop.
const shares = Array.from(
  { length: parallel },
  (_, i) => Math.floor(runs / parallel) + (i < runs % parallel ? 1 : 0),
);
const results = await Promise.all(
  shares.map((numRuns, i) =>
    fc.check(
      fc.asyncProperty(scenarioArb, async (scenario) => {
        count(await checkScenario(scenario));
      }),
      { numRuns, seed: seed + i, endOnFailure: false },
    ),
  ),
);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
const ran = results.reduce((sum, r) => sum + r.numRuns, 0);
console.log(
  `fault scenarios: ${ran} cases in ${seconds}s, seed ${seed} (${parallel} runs: seeds ${seed}..${seed + parallel - 1})`,
);
console.log(
  `  ended: ${[...tally]
    .sort((a, b) => b[1] - a[1])
    .map(([s, n]) => `${s} ${n}`)
    .join(', ')}`,
);
console.log(
  `  nodes left out of rotation and named: ${leftOut}; runs whose journal failed: ${journalFailures}`,
);
if (unhandled.length) {
  console.log(`\nUNHANDLED REJECTIONS (${unhandled.length}), the first:\n${unhandled[0]}`);
  process.exitCode = 1;
}
const failed = results.find((r) => r.failed);
if (failed) {
  const i = results.indexOf(failed);
  console.log(`\nCOUNTEREXAMPLE (seed ${seed + i}, path ${failed.counterexamplePath}):`);
  console.log(JSON.stringify(failed.counterexample?.[0], null, 2));
  console.log(`\n${String((failed.errorInstance as Error | undefined)?.message ?? failed.error)}`);
  console.log(
    `\nreplay: FAULTS_SEED=${seed + i} FAULTS_PATH=${failed.counterexamplePath} npx vitest run test/unit/engine-faults.test.ts`,
  );
  process.exitCode = 1;
} else if (!unhandled.length) {
  console.log('  every invariant held in every case');
}

import { createInterface } from 'node:readline/promises';
import type { FleetOverrides } from './config/types.js';
import { loadFleet } from './config/load-config.js';
import { EVENT_SCHEMA_VERSION, type RolloutEvent, type RolloutReport } from './engine/events.js';
import { runRollout } from './engine/run-rollout.js';
import { ExitCode } from './exit-codes.js';
import { buildFleetParts } from './fleet-parts.js';
import { createLiveRenderer } from './output/live.js';
import { chooseOutputMode, configureColor } from './output/mode.js';
import { formatPlan } from './output/plan-text.js';
import { createJsonRenderer, createPlainRenderer } from './output/plain.js';
import type { Renderer } from './output/types.js';
import { planRollout } from './plan/plan-rollout.js';
import { ownSignals } from './signals.js';

export interface RestartFleetOptions {
  configPath: string;
  overrides: FleetOverrides;
  dryRun: boolean;
  json: boolean;
  yes: boolean;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export function exitCodeFor(report: RolloutReport, signalExit: ExitCode | undefined): ExitCode {
  switch (report.status) {
    case 'ok':
      return ExitCode.ok;
    case 'failed':
      return ExitCode.rolloutFailed;
    case 'preflight-refused':
      return ExitCode.preflightRefused;
    case 'deadline':
      return ExitCode.deadline;
    case 'interrupted':
      return signalExit ?? ExitCode.interrupted;
  }
}

async function confirm(
  question: string,
  stdin: NodeJS.ReadStream,
  stderr: NodeJS.WriteStream,
): Promise<boolean> {
  const rl = createInterface({ input: stdin, output: stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}

/** `graceroll restart-fleet`: load, plan, then either print the plan or run it. Returns the exit code. */
export async function restartFleet(options: RestartFleetOptions): Promise<ExitCode> {
  const { stdout, stderr, env } = options;
  const outputEnv = { json: options.json, isTTY: Boolean(stdout.isTTY), env };
  configureColor(outputEnv);
  const fleet = await loadFleet(options.configPath, options.overrides);

  // Events before the renderer exists (none are emitted during planning) would be dropped.
  const sink: { renderer?: Renderer } = {};
  const emit = (event: RolloutEvent) =>
    sink.renderer?.handle({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), ...event });
  const parts = buildFleetParts(fleet, emit);
  const plan = planRollout(fleet, parts);

  if (options.dryRun) {
    stdout.write(
      options.json
        ? `${JSON.stringify({ v: EVENT_SCHEMA_VERSION, kind: 'plan', plan })}\n`
        : `${formatPlan(plan)}\n`,
    );
    return ExitCode.ok;
  }
  if (!options.yes && process.stdin.isTTY && !options.json) {
    const go = await confirm(
      `Roll ${fleet.nodes.length} node(s) of ${fleet.name} in ${plan.batches.length} batch(es)? [y/N] `,
      process.stdin,
      stderr,
    );
    if (!go) {
      stderr.write('Nothing was touched.\n');
      return ExitCode.ok;
    }
  }

  const write = (text: string) => stdout.write(text);
  const mode = chooseOutputMode(outputEnv);
  const renderer =
    mode === 'json'
      ? createJsonRenderer(write)
      : mode === 'plain'
        ? createPlainRenderer(write)
        : createLiveRenderer(plan, write);
  sink.renderer = renderer;
  const signals = ownSignals((signal, count) => {
    const detail =
      count === 1
        ? 'finishing the nodes in flight, starting no new ones (send again to cut their waits short)'
        : 'cutting waits short; nodes in flight are put back if healthy, otherwise reported';
    emit({ kind: 'interrupt', signal, count, detail });
    if (mode === 'tty') stderr.write(`\n${signal}: ${detail}\n`);
  });
  try {
    const report = await runRollout(plan, parts, signals.control);
    await renderer.finish();
    return exitCodeFor(report, signals.exitCode());
  } finally {
    signals.dispose();
    await parts.close();
  }
}

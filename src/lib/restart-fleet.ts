import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import type { Fleet, FleetOverrides } from './config/types.js';
import { loadFleet } from './config/load-config.js';
import { EVENT_SCHEMA_VERSION, type RolloutEvent, type RolloutReport } from './engine/events.js';
import { runRollout } from './engine/run-rollout.js';
import type { RolloutOptions } from './engine/types.js';
import { ExitCode, GracerollError } from './exit-codes.js';
import { buildFleetParts } from './fleet-parts.js';
import { createJournalWriter, journalPath, readJournal, resumeSets } from './journal/journal.js';
import type { Journal } from './journal/types.js';
import { acquireLock } from './lock/lock.js';
import { combineRenderers } from './output/combine.js';
import { createGithubReporter } from './output/github.js';
import { createLiveRenderer } from './output/live.js';
import { chooseOutputMode, configureColor } from './output/mode.js';
import { writePlan } from './output/plan-text.js';
import { createJsonRenderer, createPlainRenderer } from './output/plain.js';
import type { Renderer } from './output/types.js';
import { planRollout } from './plan/plan-rollout.js';
import { askPassphraseIfNeeded } from './passphrase.js';
import { ownSignals } from './signals.js';

export interface RestartFleetOptions {
  configPath: string;
  overrides: FleetOverrides;
  dryRun: boolean;
  json: boolean;
  yes: boolean;
  resume: boolean;
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

export function exitCodeFor(report: RolloutReport, signalExit: ExitCode | undefined): ExitCode {
  switch (report.status) {
    case 'ok':
      return ExitCode.ok;
    case 'forced':
      return ExitCode.forced;
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

/** The exit code of a finished run: from its status, and never 0 when its journal could not be kept. */
export function finalExitCode(
  report: RolloutReport,
  signalExit: ExitCode | undefined,
  journalFailure: string | undefined,
): ExitCode {
  const code = exitCodeFor(report, signalExit);
  return journalFailure && code === ExitCode.ok ? ExitCode.rolloutFailed : code;
}

async function ask(
  question: string,
  stdin: NodeJS.ReadStream,
  stderr: NodeJS.WriteStream,
  signal?: AbortSignal,
): Promise<boolean> {
  const rl = createInterface({ input: stdin, output: stderr });
  // On a terminal readline turns Ctrl-C into its own event; hand it to the one signal owner.
  rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  try {
    return /^y(es)?$/i.test((await rl.question(question, { signal })).trim());
  } catch {
    return false;
  } finally {
    rl.close();
  }
}

/**
 * Resume sets from the journal, or a usage error when there is nothing to resume or the journal belongs
 * to another config, another version of this config, or another selection of nodes: resuming it would
 * skip or repeat nodes by someone else's record.
 */
function resumeFrom(path: string, previous: Journal | undefined, fleet: Fleet): RolloutOptions {
  if (!previous)
    throw new GracerollError([`--resume: no journal at ${path}`], ExitCode.usage, [
      'run without --resume to start a new rollout',
    ]);
  if (previous.status === 'ok') {
    throw new GracerollError(
      [`--resume: the last run (${previous.runId}) finished ok; there is nothing to resume`],
      ExitCode.usage,
    );
  }
  const config = resolve(fleet.source);
  function refuse(why: string, hint: string): never {
    throw new GracerollError([`--resume: ${path} ${why}`], ExitCode.usage, [hint]);
  }
  if (previous.config !== config)
    refuse(
      `was written for the config ${previous.config}, not ${config}`,
      `resume with --config ${previous.config}, or run without --resume`,
    );
  if (previous.configDigest === undefined)
    refuse(
      'was written by an older graceroll and does not say which version of the config it belongs to',
      'run without --resume: nodes that run left out of rotation are re-examined by preflight',
    );
  if (previous.configDigest !== fleet.sourceDigest)
    refuse(
      `belongs to another version of ${config}: the file changed since run ${previous.runId} (${previous.configDigest.slice(0, 19)}… then, ${fleet.sourceDigest.slice(0, 19)}… now)`,
      'put the config back as it was to resume, or run without --resume to start a new rollout',
    );
  const selection = fleet.nodes.map((n) => n.name);
  const before = previous.selection ?? [];
  if (before.join(',') !== selection.join(','))
    refuse(
      `is a run of the nodes ${before.join(', ')}, not ${selection.join(', ')}`,
      `resume with --nodes ${before.join(',')}`,
    );
  return resumeSets(previous);
}

/** `graceroll restart-fleet`: load, plan, then either print the plan or run it. Returns the exit code. */
export async function restartFleet(options: RestartFleetOptions): Promise<ExitCode> {
  const { stdout, stderr, env, stdin } = options;
  const outputEnv = { json: options.json, isTTY: Boolean(stdout.isTTY), env };
  configureColor(outputEnv);
  const fleet: Fleet = await loadFleet(options.configPath, options.overrides);

  // Events before the renderer exists (none are emitted during planning) would be dropped.
  const sink: { renderer?: Renderer } = {};
  const emit = (event: RolloutEvent) =>
    sink.renderer?.handle({ v: EVENT_SCHEMA_VERSION, time: new Date().toISOString(), ...event });
  const plan = planRollout(fleet, buildFleetParts(fleet, emit));
  if (options.dryRun) {
    if (options.json) stdout.write(`${JSON.stringify({ v: EVENT_SCHEMA_VERSION, kind: 'plan', plan })}\n`);
    else writePlan(plan, (text) => stdout.write(text));
    return ExitCode.ok;
  }
  const interactive = Boolean(stdin.isTTY) && !options.json;
  const hasCanary = plan.batches.some((b) => b.canary) && plan.batches.length > 1;
  if (hasCanary && fleet.rollout.pauseAfterCanary === 'confirm' && !options.yes && !interactive) {
    throw new GracerollError(
      ['rollout.pauseAfterCanary is confirm, but there is no terminal to ask'],
      ExitCode.usage,
      ['pass --yes to go on after the canary, or set rollout.pauseAfterCanary to a duration such as 2m'],
    );
  }
  const path = journalPath(fleet);
  const previous = readJournal(path);
  const resume = options.resume ? resumeFrom(path, previous, fleet) : {};
  if (!options.yes && interactive) {
    const go = await ask(
      `Roll ${fleet.nodes.length} node(s) of ${fleet.name} in ${plan.batches.length} batch(es)? [y/N] `,
      stdin,
      stderr,
    );
    if (!go) {
      stderr.write('Nothing was touched.\n');
      return ExitCode.ok;
    }
  }

  const passphrase = await askPassphraseIfNeeded(fleet, stdin, stderr);
  const parts = buildFleetParts(fleet, emit, { passphrase });
  const write = (text: string) => stdout.write(text);
  const mode = chooseOutputMode(outputEnv);
  const view =
    mode === 'json'
      ? createJsonRenderer(write)
      : mode === 'plain'
        ? createPlainRenderer(write)
        : createLiveRenderer(plan, write);
  const signals = ownSignals((signal, count) => {
    const detail =
      count === 1
        ? 'finishing the nodes in flight, starting no new ones (send again to cut their waits short)'
        : 'cutting waits short; nodes in flight are put back if healthy, otherwise reported';
    emit({ kind: 'interrupt', signal, count, detail });
    if (mode === 'tty') stderr.write(`\n${signal}: ${detail}\n`);
  });
  let lock;
  // A lost lock halts the rollout like a first Ctrl-C, but the run ends failed, saying why.
  const lockLost = new AbortController();
  try {
    lock = await acquireLock(fleet, parts.lockTransport(), signals.control.stop, {
      warn: (message) => stderr.write(`warning: ${message}\n`),
      onLost: (why) => lockLost.abort(new Error(why)),
    });
    let journal;
    try {
      journal = createJournalWriter(path, fleet, previous, { resume: options.resume });
    } catch (error) {
      throw new GracerollError([`${(error as Error).message}; nothing was touched`], ExitCode.rolloutFailed, [
        'free space or fix the permissions of the journal directory, or set `journal:` in the config',
      ]);
    }
    // Before `view`: a node's log group opens before its first line and closes before its outcome line.
    const github = createGithubReporter(env, mode === 'json' ? (text) => stderr.write(text) : write);
    sink.renderer = combineRenderers(journal, github, view);
    if (!options.resume && previous && previous.status !== 'ok') {
      const left = Object.entries(previous.nodes)
        .filter(([, n]) => !n.inRotation)
        .map(([name]) => name);
      if (left.length)
        emit({
          kind: 'warning',
          message: `the last run (${previous.status}) left ${left.join(', ')} out of rotation; --resume continues it`,
        });
    }
    const report = await runRollout(
      plan,
      parts,
      { ...signals.control, halt: lockLost.signal },
      {
        ...resume,
        continueAfterCanary: options.yes
          ? () => Promise.resolve(true)
          : (canary, signal) =>
              ask(`Canary ${canary.join(', ')} done. Continue with the rest? [y/N] `, stdin, stderr, signal),
      },
    );
    await sink.renderer.finish();
    const journalFailure = journal.failure();
    if (journalFailure) stderr.write(`error: ${journalFailure}\n`);
    if (mode !== 'json' && (report.status !== 'ok' || journalFailure)) stderr.write(`journal: ${path}\n`);
    return finalExitCode(report, signals.exitCode(), journalFailure);
  } finally {
    signals.dispose();
    await lock?.release();
    await parts.close();
  }
}

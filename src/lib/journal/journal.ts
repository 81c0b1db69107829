import { randomUUID } from 'node:crypto';
import { closeSync, readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import type { Fleet } from '../config/types.js';
import type { Stamped } from '../engine/events.js';
import { ExitCode, GracerollError } from '../exit-codes.js';
import { expandHome } from '../home.js';
import { lineFor } from '../output/lines.js';
import type { Renderer } from '../output/types.js';
import { openAppend, writeAll, writeAtomic, type FileSystem } from './safe-write.js';
import { JOURNAL_VERSION, READABLE_VERSIONS, type Journal, type JournalNode } from './types.js';

/**
 * Default: `.graceroll/<config file name>.journal.json` beside the config file, so two configs in one
 * directory (web.yaml, api.yaml) never share a journal.
 */
export function journalPath(fleet: Pick<Fleet, 'journal' | 'source'>): string {
  if (fleet.journal) return resolve(expandHome(fleet.journal));
  const config = resolve(fleet.source);
  const stem = basename(config).replace(/\.(ya?ml|json)$/i, '');
  return join(dirname(config), '.graceroll', `${stem}.journal.json`);
}

export function readJournal(path: string): Journal | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const journal = JSON.parse(text) as Journal;
    if (!READABLE_VERSIONS.includes(journal.version) || typeof journal.nodes !== 'object')
      throw new Error('unknown format');
    return journal;
  } catch (error) {
    throw new GracerollError(
      [`${path}: the journal cannot be read: ${(error as Error).message}`],
      ExitCode.usage,
      ['move it aside to start afresh (nodes it names may be out of rotation: check them first)'],
    );
  }
}

const PLAIN = (line: string | undefined) => line?.replace(/\u001b\[[0-9;]*m/g, '');

/** A journal that could not be written: the rollout halts (finishing the nodes in flight) and fails. */
export class JournalWriteError extends Error {}

export type JournalWriter = Renderer & {
  journal: Journal;
  /** Why the journal could not be written, if it ever failed during this run. */
  failure(): string | undefined;
};

/**
 * The journal follows the events: every node's state is written (atomically) as it changes, before the
 * action it announces runs, so even a `kill -9` of graceroll leaves a true record of what may have been
 * touched. It is first written when the first batch starts. A `.log` beside it holds the same history as
 * plain lines for people. A record of a node out of rotation is kept from the previous run until this run
 * touches that node (a run of `--nodes a` does not forget that b is out).
 */
export function createJournalWriter(
  path: string,
  fleet: Fleet,
  previous: Journal | undefined,
  options: { resume: boolean; fs?: FileSystem },
): JournalWriter {
  const now = new Date().toISOString();
  const journal: Journal = {
    version: JOURNAL_VERSION,
    fleet: fleet.name,
    config: resolve(fleet.source),
    configDigest: fleet.sourceDigest,
    selection: fleet.nodes.map((n) => n.name),
    runId: randomUUID(),
    resumedFrom: options.resume ? previous?.runId : undefined,
    pid: process.pid,
    startedAt: now,
    updatedAt: now,
    status: 'running',
    nodes: {},
  };
  const needsAttention = (node: JournalNode) =>
    !node.inRotation || node.state === 'in-flight' || node.state === 'failed' || node.state === 'interrupted';
  for (const node of fleet.nodes) {
    const before = previous?.nodes[node.name];
    journal.nodes[node.name] =
      before && (options.resume || needsAttention(before))
        ? {
            ...before,
            history: [
              ...before.history,
              {
                time: now,
                text: options.resume
                  ? `resumed by run ${journal.runId}`
                  : `kept from run ${previous.runId} until run ${journal.runId} touches it`,
              },
            ],
          }
        : { state: 'pending', inRotation: true, updatedAt: now, history: [] };
  }
  for (const [name, before] of Object.entries(previous?.nodes ?? {})) {
    if (journal.nodes[name] || !needsAttention(before)) continue;
    journal.nodes[name] = {
      ...before,
      history: [...before.history, { time: now, text: `not part of run ${journal.runId}; record kept` }],
    };
  }
  let failure: string | undefined;
  const guarded = (what: string, write: () => void) => {
    try {
      write();
    } catch (error) {
      const why = `the journal ${what} cannot be written: ${(error as Error).message}`;
      failure ??= why;
      throw new JournalWriteError(why);
    }
  };
  const logPath = path.replace(/\.json$/, '') + '.log';
  let logFd: number | undefined;
  guarded(logPath, () => {
    logFd = openAppend(logPath);
    writeAll(
      logFd,
      `${now} ${options.resume && previous ? `resume of run ${previous.runId}` : 'new run'} ${journal.runId} of ${fleet.name} (${journal.config})\n`,
      options.fs,
    );
  });
  // The previous journal stays as it is until this run touches a node: a run refused at preflight or
  // by the lock changed nothing, and must not erase the record of what an earlier run left behind.
  let touching = false;
  const save = () => {
    if (touching) guarded(path, () => writeAtomic(path, `${JSON.stringify(journal, null, 2)}\n`, options.fs));
  };

  const touch = (
    name: string,
    change: Partial<JournalNode>,
    text?: string,
    time = new Date().toISOString(),
  ) => {
    const node = journal.nodes[name];
    if (!node) return;
    Object.assign(node, change, { updatedAt: time });
    if (text) node.history.push({ time, text });
  };

  const apply: { [K in Stamped['kind']]: (event: Extract<Stamped, { kind: K }>) => boolean } = {
    'rollout-start': () => false,
    preflight: () => false,
    'preflight-end': () => false,
    'step-progress': () => false, // frequent and not a state change
    pause: () => false,
    interrupt: () => false,
    warning: () => false,
    'batch-end': () => false,
    'batch-start': () => (touching = true),
    'step-start': (event) => {
      touch(
        event.node,
        {
          state: 'in-flight',
          step: event.step,
          stepEnded: false,
          ...(event.step === 'deregister' ? { inRotation: false } : {}),
        },
        `${event.step} started`,
        event.time,
      );
      return true;
    },
    'step-end': (event) => {
      touch(
        event.node,
        { stepEnded: true, ...(event.step === 'register' && event.ok ? { inRotation: true } : {}) },
        `${event.step} ${event.ok ? 'ok' : 'FAILED'}: ${event.detail}`,
        event.time,
      );
      return true;
    },
    hook: (event) => {
      touch(
        event.node,
        {},
        `hook ${event.hook} ${event.ok ? 'ok' : 'FAILED'}: ${event.command}\n${event.output}`,
        event.time,
      );
      return true;
    },
    escalation: (event) => {
      touch(
        event.node,
        {},
        `escalation ${event.signal}; still in flight: ${event.stillInFlight}`,
        event.time,
      );
      return true;
    },
    'node-end': (event) => {
      touch(
        event.node,
        { state: event.outcome, inRotation: event.inRotation, reason: event.reason },
        `${event.outcome}${event.inRotation ? '' : ' (OUT OF ROTATION)'}${event.reason ? `: ${event.reason}` : ''}`,
        event.time,
      );
      return true;
    },
    'rollout-end': (event) => {
      journal.status = event.report.status;
      for (const node of event.report.nodes) {
        touch(node.node, {
          oldProcess: node.oldProcess ?? journal.nodes[node.node]?.oldProcess,
          newProcess: node.newProcess ?? journal.nodes[node.node]?.newProcess,
        });
      }
      // A run that touched nothing still ends with its own record when an earlier one is replaced.
      return true;
    },
  };

  return {
    journal,
    failure: () => failure,
    handle(event: Stamped) {
      const line = PLAIN((lineFor[event.kind] as (e: Stamped) => string | undefined)(event));
      if (line && logFd !== undefined) {
        const fd = logFd;
        guarded(logPath, () => writeAll(fd, `${event.time} ${line}\n`, options.fs));
      }
      const changed = (apply[event.kind] as (e: Stamped) => boolean)(event);
      if (!changed) return;
      journal.updatedAt = event.time;
      save();
    },
    finish() {
      if (logFd !== undefined) closeSync(logFd);
      return Promise.resolve();
    },
  };
}

/** What a resumed run does with each node of the journal it continues. */
export function resumeSets(previous: Journal): { alreadyDone: Set<string>; reexamine: Set<string> } {
  const alreadyDone = new Set<string>();
  const reexamine = new Set<string>();
  for (const [name, node] of Object.entries(previous.nodes)) {
    if (node.state === 'done' || node.state === 'forced') alreadyDone.add(name);
    else if (
      node.state === 'in-flight' ||
      node.state === 'failed' ||
      node.state === 'interrupted' ||
      !node.inRotation
    )
      reexamine.add(name);
  }
  return { alreadyDone, reexamine };
}

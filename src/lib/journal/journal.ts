import { randomUUID } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Fleet } from '../config/types.js';
import type { Stamped } from '../engine/events.js';
import { ExitCode, GracerollError } from '../exit-codes.js';
import { expandHome } from '../home.js';
import { lineFor } from '../output/lines.js';
import type { Renderer } from '../output/types.js';
import { JOURNAL_VERSION, type Journal, type JournalNode } from './types.js';

/** Default: `.graceroll/NAME.journal.json` beside the config file. */
export function journalPath(fleet: Fleet): string {
  return fleet.journal
    ? resolve(expandHome(fleet.journal))
    : join(dirname(resolve(fleet.source)), '.graceroll', `${fleet.name}.journal.json`);
}

/** Writes a file so that a reader (or a crash) sees the old or the new content, never half of either. */
export function writeAtomic(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
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
    if (journal.version !== JOURNAL_VERSION || typeof journal.nodes !== 'object')
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

/**
 * The journal follows the events: every node's state is written (atomically) as it changes, before the
 * action it announces runs, so even a `kill -9` of graceroll leaves a true record of what may have been
 * touched. It is first written when the first batch starts. A `.log` beside it holds the same history as plain lines for people.
 */
export function createJournalWriter(
  path: string,
  fleet: Fleet,
  previous?: Journal,
): Renderer & { journal: Journal } {
  const now = new Date().toISOString();
  const journal: Journal = {
    version: JOURNAL_VERSION,
    fleet: fleet.name,
    config: resolve(fleet.source),
    runId: randomUUID(),
    resumedFrom: previous?.runId,
    pid: process.pid,
    startedAt: now,
    updatedAt: now,
    status: 'running',
    nodes: {},
  };
  for (const node of fleet.nodes) {
    const before = previous?.nodes[node.name];
    journal.nodes[node.name] = before
      ? { ...before, history: [...before.history, { time: now, text: `resumed by run ${journal.runId}` }] }
      : { state: 'pending', inRotation: true, updatedAt: now, history: [] };
  }
  const logPath = path.replace(/\.json$/, '') + '.log';
  const logFd = (() => {
    mkdirSync(dirname(logPath), { recursive: true });
    return openSync(logPath, 'a', 0o600);
  })();
  writeSync(
    logFd,
    `${now} ${previous ? `resume of run ${previous.runId}` : 'new run'} ${journal.runId} of ${fleet.name} (${journal.config})\n`,
  );
  // The previous journal stays as it is until this run touches a node: a run refused at preflight or
  // by the lock changed nothing, and must not erase the record of what an earlier run left behind.
  let touching = false;
  const save = () => {
    if (touching) writeAtomic(path, `${JSON.stringify(journal, null, 2)}\n`);
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

  return {
    journal,
    handle(event: Stamped) {
      const line = PLAIN((lineFor[event.kind] as (e: Stamped) => string | undefined)(event));
      if (line) writeSync(logFd, `${event.time} ${line}\n`);
      switch (event.kind) {
        case 'step-progress':
          return; // frequent and not a state change
        case 'batch-start':
          touching = true;
          break;
        case 'step-start':
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
          break;
        case 'step-end':
          touch(
            event.node,
            { stepEnded: true, ...(event.step === 'register' && event.ok ? { inRotation: true } : {}) },
            `${event.step} ${event.ok ? 'ok' : 'FAILED'}: ${event.detail}`,
            event.time,
          );
          break;
        case 'hook':
          touch(
            event.node,
            {},
            `hook ${event.hook} ${event.ok ? 'ok' : 'FAILED'}: ${event.command}\n${event.output}`,
            event.time,
          );
          break;
        case 'escalation':
          touch(
            event.node,
            {},
            `escalation ${event.signal}; still in flight: ${event.stillInFlight}`,
            event.time,
          );
          break;
        case 'node-end':
          touch(
            event.node,
            { state: event.outcome, inRotation: event.inRotation, reason: event.reason },
            `${event.outcome}${event.inRotation ? '' : ' (OUT OF ROTATION)'}${event.reason ? `: ${event.reason}` : ''}`,
            event.time,
          );
          break;
        case 'rollout-end':
          journal.status = event.report.status;
          for (const node of event.report.nodes) {
            touch(node.node, {
              oldProcess: node.oldProcess ?? journal.nodes[node.node]?.oldProcess,
              newProcess: node.newProcess ?? journal.nodes[node.node]?.newProcess,
            });
          }
          break;
        default:
          return;
      }
      journal.updatedAt = event.time;
      save();
    },
    finish() {
      closeSync(logFd);
      return Promise.resolve();
    },
  };
}

/** What a resumed run does with each node of the journal it continues. */
export function resumeSets(previous: Journal): { alreadyDone: Set<string>; reexamine: Set<string> } {
  const alreadyDone = new Set<string>();
  const reexamine = new Set<string>();
  for (const [name, node] of Object.entries(previous.nodes)) {
    if (node.state === 'done') alreadyDone.add(name);
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

// Fault drills against the lab (test/lab): a roll started in the background whose --json event
// stream the test watches, so a fault (a signal, a dead sshd, a vanished LB socket…) lands at an
// exact step of an exact node; and the check every drill ends with: no node silently out of rotation.
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import type { RolloutReport } from '../../src/lib/engine/events.js';
import type { Journal } from '../../src/lib/journal/types.js';
import type { Lab } from '../lab/lab.js';
import { sleep } from '../lab/proc.js';
import { startCli, type CliRun } from './cli.js';
import { waitForBuiltCli, type JsonEvent, type LabFleet, type RollResult } from './lab-fleet.js';

export const labRequired = process.env.CI === 'true' || process.env.GRACEROLL_REQUIRE_LAB === '1';

export interface LiveRoll {
  run: CliRun;
  /** Events parsed so far. */
  events: JsonEvent[];
  /** Resolves with the first event (already seen or to come) matching `pred`; rejects on timeout or exit. */
  waitForEvent(pred: (e: JsonEvent) => boolean, label: string, timeoutMs?: number): Promise<JsonEvent>;
  /** Sends a signal to the graceroll process. */
  signal(sig: NodeJS.Signals): void;
  /** Resolves when graceroll exits. */
  done: Promise<RollResult>;
}

/** Starts `graceroll restart-fleet -c CONFIG --yes --json ...args` and parses events as they come. */
export async function startRoll(fleet: LabFleet, args: string[] = []): Promise<LiveRoll> {
  await waitForBuiltCli();
  const t0 = Date.now();
  const run = startCli(['restart-fleet', '-c', fleet.path, '--yes', '--json', ...args]);
  const events: JsonEvent[] = [];
  const waiters: { pred: (e: JsonEvent) => boolean; resolve: (e: JsonEvent) => void }[] = [];
  let buffer = '';
  let exited = false;
  const exitListeners: (() => void)[] = [];
  run.child.stdout!.on('data', (d: Buffer) => {
    buffer += d.toString();
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (!line) continue;
      let event: JsonEvent;
      try {
        event = JSON.parse(line) as JsonEvent;
      } catch {
        event = { kind: 'not-json', line };
      }
      events.push(event);
      for (const w of [...waiters]) {
        if (w.pred(event)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    }
  });
  const done = run.done.then((result) => {
    exited = true;
    for (const l of exitListeners) l();
    const end = events.findLast((e) => e.kind === 'rollout-end');
    return {
      ...result,
      events,
      report: end?.report as RolloutReport | undefined,
      durationMs: Date.now() - t0,
    };
  });
  return {
    run,
    events,
    done,
    signal: (sig) => void run.child.kill(sig),
    waitForEvent(pred, label, timeoutMs = 60_000) {
      const seen = events.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const fail = (why: string) =>
          reject(
            new Error(
              `waiting for ${label}: ${why}; events so far:\n${events.map((e) => JSON.stringify(e)).join('\n')}`,
            ),
          );
        const timer = setTimeout(() => fail(`no such event within ${timeoutMs} ms`), timeoutMs);
        const onExit = () => {
          clearTimeout(timer);
          fail('graceroll exited first');
        };
        if (exited) return onExit();
        exitListeners.push(onExit);
        waiters.push({
          pred,
          resolve: (e) => {
            clearTimeout(timer);
            exitListeners.splice(exitListeners.indexOf(onExit), 1);
            resolve(e);
          },
        });
      });
    },
  };
}

/** Matches a step event of one node. */
export const stepEvent =
  (kind: 'step-start' | 'step-end', node: string, step: string) =>
  (e: JsonEvent): boolean =>
    e.kind === kind && e.node === node && e.step === step;

/** graceroll's journal for a lab fleet (beside its config). */
export function readJournal(fleet: LabFleet): Journal | undefined {
  const path = join(fleet.dir, '.graceroll', 'fleet.journal.json'); // beside fleet.yaml
  if (!existsSync(path)) return undefined;
  return JSON.parse(readFileSync(path, 'utf8')) as Journal;
}

export async function healthStatus(url: string): Promise<number> {
  try {
    return (await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

export interface NodeView {
  node: string;
  haproxy: string;
  health: number;
  /** Named in the report's outOfRotation. */
  namedOut: boolean;
  /** The journal's inRotation for it (undefined: not in the journal). */
  journalInRotation?: boolean;
}

/**
 * Every lab node as HAProxy and the service see it, beside what graceroll said about it. A node is
 * accounted for when it is in rotation and healthy (HAProxy UP, /health 200), or named out of
 * rotation in the report AND the journal. Returns the views and the problems (empty: none silently out).
 */
export async function accountForNodes(
  lab: Lab,
  report: RolloutReport | undefined,
  journal: Journal | undefined,
): Promise<{ views: NodeView[]; problems: string[] }> {
  // HAProxy's health checks need a moment to see a node that just came back.
  await sleep(1000);
  const statuses = await lab.serverStatuses();
  const views: NodeView[] = [];
  const problems: string[] = [];
  for (const node of lab.nodes) {
    const view: NodeView = {
      node: node.name,
      haproxy: statuses[lab.lb.serverName(node)] ?? 'absent',
      health: await healthStatus(node.url),
      namedOut: report?.outOfRotation.includes(node.name) ?? false,
      journalInRotation: journal?.nodes[node.name]?.inRotation,
    };
    views.push(view);
    const inRotationAndHealthy = view.haproxy === 'UP' && view.health === 200;
    if (inRotationAndHealthy) continue;
    if (!view.namedOut)
      problems.push(
        `${node.name} is silently out: HAProxy ${view.haproxy}, /health ${view.health}, not in the report's outOfRotation ${JSON.stringify(report?.outOfRotation)}`,
      );
    else if (view.journalInRotation !== false)
      problems.push(
        `${node.name} is named out in the report but the journal says inRotation=${view.journalInRotation}`,
      );
  }
  // A node graceroll names out must not be in rotation according to it anywhere else.
  for (const name of report?.outOfRotation ?? []) {
    const r = report?.nodes.find((n) => n.node === name);
    if (r && r.inRotation) problems.push(`${name} is in outOfRotation but its report says inRotation=true`);
  }
  return { views, problems };
}

/** Polls HAProxy's view of every server until stop(); records each distinct status per server. */
export function watchStatuses(lab: Lab, intervalMs = 100) {
  const seen: Record<string, string[]> = {};
  let stopping = false;
  const loop = (async () => {
    while (!stopping) {
      try {
        const statuses = await lab.serverStatuses();
        for (const [server, status] of Object.entries(statuses)) {
          const list = (seen[server] ??= []);
          if (list.at(-1) !== status) list.push(status);
        }
      } catch {
        // the admin socket may be gone on purpose (LB drills)
      }
      await sleep(intervalMs);
    }
  })();
  return {
    seen,
    async stop() {
      stopping = true;
      await loop;
      return seen;
    },
  };
}

/** A short line for logs. */
export const brief = (roll: RollResult) =>
  `exit ${roll.code}, ${roll.durationMs} ms, status ${roll.report?.status}, out ${JSON.stringify(roll.report?.outOfRotation)}, nodes ${JSON.stringify(roll.report?.nodes.map((n) => [n.node, n.outcome, n.inRotation]))}`;

export interface StreamResult {
  status: number;
  lines: number;
  /** Milliseconds between the first and the last line the server wrote. */
  spanMs: number;
  /** The response ended normally (not aborted). */
  complete: boolean;
  error?: string;
}

/** GET {base}/stream?ms=N (the lab service writes a timestamped line every 100 ms for N ms). */
export function fetchStream(base: string, ms: number, agent?: http.Agent): Promise<StreamResult> {
  return new Promise((resolve) => {
    const req = http.get(`${base.replace(/\/$/, '')}/stream?ms=${ms}`, { agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('error', (err: NodeJS.ErrnoException) =>
        resolve({
          status: res.statusCode ?? 0,
          lines: 0,
          spanMs: 0,
          complete: false,
          error: err.code ?? err.message,
        }),
      );
      res.on('end', () => {
        const lines = body.split('\n').filter(Boolean);
        const times = lines.map((l) => Number(l.split(' ').at(-1)));
        resolve({
          status: res.statusCode ?? 0,
          lines: lines.length,
          spanMs: (times.at(-1) ?? 0) - (times[0] ?? 0),
          complete: res.complete,
        });
      });
    });
    req.on('error', (err: NodeJS.ErrnoException) =>
      resolve({ status: 0, lines: 0, spanMs: 0, complete: false, error: err.code ?? err.message }),
    );
  });
}

/** A stream that was cut off (not 200, aborted, or shorter than asked). */
export const streamCut = (s: StreamResult, ms: number) =>
  s.status !== 200 || !s.complete || s.spanMs < ms - 200;

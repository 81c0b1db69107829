import { setTimeout as sleep } from 'node:timers/promises';
import { timerMs } from '../config/duration.js';
import type { Outcome } from '../outcome.js';

export type WaitOutcome =
  | { ok: true; attempts: number; elapsedMs: number }
  | { ok: false; why: 'deadline' | 'aborted'; lastReason: string; attempts: number; elapsedMs: number };

export interface WaitOptions {
  intervalMs: number;
  deadlineMs: number;
  signal: AbortSignal;
  /** Passes needed in a row (health gates); a failure resets the count. */
  consecutive?: number;
  /** Called after each check, for progress output. */
  onCheck?: (outcome: Outcome, streak: number) => void;
}

/**
 * Polls `check` until it passes `consecutive` times in a row, the deadline passes or the signal aborts.
 * Each check receives a signal that also fires at the deadline, so a slow check cannot overrun it.
 */
export async function waitUntil(
  check: (signal: AbortSignal) => Promise<Outcome>,
  options: WaitOptions,
): Promise<WaitOutcome> {
  const started = performance.now();
  const deadline = AbortSignal.timeout(timerMs(options.deadlineMs));
  const signal = AbortSignal.any([options.signal, deadline]);
  const needed = options.consecutive ?? 1;
  let streak = 0;
  let attempts = 0;
  let lastReason = 'not checked yet';
  const stopped = (): WaitOutcome => ({
    ok: false,
    why: options.signal.aborted ? 'aborted' : 'deadline',
    lastReason,
    attempts,
    elapsedMs: performance.now() - started,
  });
  for (;;) {
    if (signal.aborted) return stopped();
    attempts += 1;
    const outcome = await check(signal);
    if (signal.aborted && !outcome.ok) return stopped();
    streak = outcome.ok ? streak + 1 : 0;
    lastReason = outcome.ok ? `passed ${streak} of ${needed} checks in a row` : outcome.reason;
    options.onCheck?.(outcome, streak);
    if (streak >= needed) return { ok: true, attempts, elapsedMs: performance.now() - started };
    try {
      await sleep(timerMs(options.intervalMs), undefined, { signal });
    } catch {
      return stopped();
    }
  }
}

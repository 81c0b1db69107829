import type { RolloutControl } from './engine/types.js';
import { ExitCode } from './exit-codes.js';

const SIGNAL_EXIT: Record<string, ExitCode> = {
  SIGINT: ExitCode.interrupted,
  SIGTERM: ExitCode.terminated,
  SIGHUP: ExitCode.interruptedHup,
};

export interface SignalOwner {
  control: RolloutControl;
  /** Exit code of the first signal received, if any. */
  exitCode(): ExitCode | undefined;
  dispose(): void;
}

/**
 * The one owner of process signals. The first SIGINT/SIGTERM/SIGHUP stops scheduling new nodes and lets
 * the nodes in flight finish; the second cuts their waits short (they are then restored or reported).
 * listr2 is told not to install handlers of its own (it would exit 127 and skip every finally block).
 */
export function ownSignals(onSignal: (signal: string, count: number) => void): SignalOwner {
  const stop = new AbortController();
  const abort = new AbortController();
  let first: string | undefined;
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count += 1;
    first ??= signal;
    onSignal(signal, count);
    if (count === 1) stop.abort(new Error(`${signal} received`));
    else abort.abort(new Error(`${signal} received again`));
  };
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, handler);
  return {
    control: { stop: stop.signal, abort: abort.signal },
    exitCode: () => (first ? SIGNAL_EXIT[first] : undefined),
    dispose: () => signals.forEach((signal) => process.off(signal, handler)),
  };
}

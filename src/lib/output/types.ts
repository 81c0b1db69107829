import type { RolloutEvent, Stamped } from '../engine/events.js';

export interface Renderer {
  handle(event: Stamped): void;
  /** Waits until everything is written (the live view has finished drawing). */
  finish(): Promise<void>;
}

/** A line (or nothing) for each event kind: a missing kind is a compile error. */
export type LineFormatters = {
  [K in RolloutEvent['kind']]: (event: Extract<RolloutEvent, { kind: K }>) => string | undefined;
};

export type OutputMode = 'tty' | 'plain' | 'json';

import type { Stamped } from '../engine/events.js';
import { lineFor } from './lines.js';
import { formatSummary } from './summary.js';
import type { Renderer } from './types.js';

type Formatter = (event: Stamped) => string | undefined;

/** Plain timestamped lines, no cursor codes: for CI logs and pipes. */
export function createPlainRenderer(write: (text: string) => void): Renderer {
  return {
    handle(event) {
      const text = (lineFor[event.kind] as Formatter)(event);
      if (text !== undefined) write(`${event.time} ${text}\n`);
      if (event.kind === 'rollout-end') write(`\n${formatSummary(event.report)}\n`);
    },
    finish: () => Promise.resolve(),
  };
}

/** One JSON event per line; the last is the report (`rollout-end`). Nothing else goes to stdout. */
export function createJsonRenderer(write: (text: string) => void): Renderer {
  return {
    handle: (event) => write(`${JSON.stringify(event)}\n`),
    finish: () => Promise.resolve(),
  };
}

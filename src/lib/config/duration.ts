import { z } from 'zod';

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
/** One or more `<number><unit>` parts, largest unit first by convention: `1m30s`, `1h`, `1.5s`, `250ms`. */
const DURATION = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+$/;
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

/**
 * The largest delay a Node.js timer holds: setTimeout and AbortSignal.timeout take a signed 32-bit
 * millisecond count, and a larger one fires at once (Node docs, timers: "When delay is larger than
 * 2147483647 … the delay will be set to 1"). About 24.8 days.
 */
export const MAX_TIMER_MS = 2_147_483_647;

export type DurationParse = { ok: true; ms: number } | { ok: false; message: string };

/**
 * Parses `500ms`, `2s`, `1.5m`, `1m30s`, `1h`, `2d` into whole milliseconds. A unit is required: a bare
 * `10` could mean 10 ms or 10 s, so it is refused with a suggestion (only `0` needs none).
 */
export function parseDuration(value: string | number): DurationParse {
  const text = typeof value === 'number' ? String(value) : value.trim();
  if (typeof value === 'number' || /^\d+(\.\d+)?$/.test(text)) {
    if (Number(text) === 0) return { ok: true, ms: 0 };
    return {
      ok: false,
      message: `a duration needs a unit: write ${text}s (seconds) or ${text}ms (milliseconds), not ${text}`,
    };
  }
  if (!DURATION.test(text))
    return {
      ok: false,
      message: `expected a duration like 500ms, 30s, 2m or 1m30s, got ${JSON.stringify(value)}`,
    };
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(PART)) ms += Number(amount) * UNIT_MS[unit];
  ms = Math.round(ms);
  if (ms > MAX_TIMER_MS)
    return {
      ok: false,
      message: `${text} is longer than the longest timer Node.js can hold (${formatDuration(MAX_TIMER_MS)})`,
    };
  return { ok: true, ms };
}

export function formatDuration(ms: number): string {
  // 999.6 ms is shown as 1s, not as 1000ms.
  if (Math.round(ms) < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1).replace(/\.?0+$/, '')}s`;
  const totalSeconds = Math.round(ms / 1000);
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3600);
  const minutes = Math.floor((totalSeconds % 3600) / 60);
  const seconds = totalSeconds % 60;
  return (
    [
      [days, 'd'],
      [hours, 'h'],
      [minutes, 'm'],
      [seconds, 's'],
    ] as const
  )
    .filter(([n]) => n > 0)
    .map(([n, unit]) => `${n}${unit}`)
    .join('');
}

/**
 * A delay for a timer: a whole number of milliseconds between 1 and MAX_TIMER_MS. Every setTimeout,
 * sleep and AbortSignal.timeout in graceroll goes through this (a fraction throws a RangeError there, and
 * an overflow fires at once).
 */
export function timerMs(ms: number): number {
  if (!Number.isFinite(ms)) return MAX_TIMER_MS;
  return Math.min(MAX_TIMER_MS, Math.max(1, Math.ceil(ms)));
}

/** A zod field for a duration written as `500ms`, `30s`, `1m30s`; the parsed value is milliseconds. */
export const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const parsed = parseDuration(value);
  if (!parsed.ok) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: parsed.message });
    return z.NEVER;
  }
  return parsed.ms;
});

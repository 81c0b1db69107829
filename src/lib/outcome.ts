/** Expected outcomes are values: a probe, a command or an API call either worked or says why not. */
export type Outcome = { ok: true } | { ok: false; reason: string };
export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

export const OK: Outcome = { ok: true };
export const fail = (reason: string): { ok: false; reason: string } => ({ ok: false, reason });

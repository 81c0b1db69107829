/** How often the lock holder refreshes its heartbeat (and checks it still owns the lock). */
export const HEARTBEAT_MS = 5_000;
/** `lock.staleAfter` may not be shorter than this many heartbeats: one slow heartbeat must not look dead. */
export const STALE_FLOOR_HEARTBEATS = 4;
export const MIN_STALE_AFTER_MS = HEARTBEAT_MS * STALE_FLOOR_HEARTBEATS;

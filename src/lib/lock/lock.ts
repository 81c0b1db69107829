import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { formatDuration } from '../config/duration.js';
import type { Fleet } from '../config/types.js';
import { ExitCode, GracerollError } from '../exit-codes.js';
import { fail, type Result } from '../outcome.js';
import { shellQuote } from '../transport/quote.js';
import type { Transport } from '../transport/types.js';

export interface LockOwner {
  token: string;
  user: string;
  host: string;
  pid: number;
  startedAt: string;
  config: string;
}

export interface HeldLock {
  owner: LockOwner;
  where: string;
  release(): Promise<void>;
}

/** How often the holder refreshes its heartbeat. */
export const HEARTBEAT_MS = 15_000;
const COMMAND_TIMEOUT_MS = 15_000;

export const defaultLockPath = (fleet: Fleet): string =>
  fleet.lock.path ?? `/tmp/graceroll-${fleet.name}.lock`;

/**
 * Tries to create the lock directory (mkdir is atomic on every POSIX filesystem). When it exists,
 * prints the owner record and the heartbeat's age in seconds instead.
 */
export function acquireScript(path: string, owner: LockOwner): string {
  const p = shellQuote(path);
  return [
    `if mkdir ${p} 2>/dev/null; then printf '%s' ${shellQuote(JSON.stringify(owner))} > ${p}/owner && touch ${p}/heartbeat && echo ACQUIRED;`,
    `else echo HELD; cat ${p}/owner 2>/dev/null; echo; echo $(( $(date +%s) - $(stat -c %Y ${p}/heartbeat 2>/dev/null || stat -c %Y ${p} 2>/dev/null || date +%s) )); fi`,
  ].join(' ');
}

/** Moves a stale lock aside (rename is atomic: of two takers only one succeeds) and removes it. */
const takeOverScript = (path: string) => {
  const p = shellQuote(path);
  const aside = shellQuote(`${path}.stale.${randomUUID()}`);
  return `mv ${p} ${aside} && rm -rf ${aside}`;
};
const ifOwner = (path: string, token: string, action: string) =>
  `grep -qF ${shellQuote(token)} ${shellQuote(`${path}/owner`)} && ${action}`;

export interface HeldBy {
  owner?: LockOwner;
  heartbeatAgeSeconds: number;
}

export function parseHeld(stdout: string): HeldBy {
  const lines = stdout.trim().split('\n');
  const age = Number(lines.at(-1));
  let owner: LockOwner | undefined;
  try {
    owner = JSON.parse(lines.slice(1, -1).join('\n')) as LockOwner;
  } catch {
    owner = undefined;
  }
  return { owner, heartbeatAgeSeconds: Number.isFinite(age) ? age : Infinity };
}

async function attempt(
  transport: Transport,
  path: string,
  owner: LockOwner,
  signal: AbortSignal,
): Promise<Result<'acquired' | HeldBy>> {
  const result = await transport.exec(
    { shell: acquireScript(path, owner) },
    { signal, timeoutMs: COMMAND_TIMEOUT_MS },
  );
  if (result.failure || result.code !== 0)
    return fail(result.reason ?? (result.stderr.trim() || `exit ${result.code}`));
  if (result.stdout.startsWith('ACQUIRED')) return { ok: true, value: 'acquired' };
  return { ok: true, value: parseHeld(result.stdout) };
}

/**
 * Takes the fleet's rollout lock on `transport` (the load balancer host, where every rollout of the
 * fleet must go). A lock whose heartbeat is older than `staleAfter` is taken over, with a warning.
 */
export async function acquireLock(
  fleet: Fleet,
  transport: Transport,
  signal: AbortSignal,
  warn: (message: string) => void,
): Promise<HeldLock> {
  const path = defaultLockPath(fleet);
  const where = `${transport.node}:${path}`;
  const owner: LockOwner = {
    token: randomUUID(),
    user: userInfo().username,
    host: hostname(),
    pid: process.pid,
    startedAt: new Date().toISOString(),
    config: fleet.source,
  };
  for (let tries = 0; ; tries++) {
    const got = await attempt(transport, path, owner, signal);
    if (!got.ok)
      throw new GracerollError(
        [`cannot take the rollout lock ${where}: ${got.reason}`],
        ExitCode.preflightRefused,
      );
    if (got.value === 'acquired') break;
    const held = got.value;
    const who = held.owner
      ? `${held.owner.user}@${held.owner.host} (pid ${held.owner.pid}, since ${held.owner.startedAt}, config ${held.owner.config})`
      : 'an unknown owner';
    const stale = held.heartbeatAgeSeconds * 1000 > fleet.lock.staleAfter || deadOnThisHost(held.owner);
    if (!stale || tries > 0) {
      throw new GracerollError(
        [
          `fleet ${fleet.name} is locked by ${who}: another rollout is running (lock ${where}, heartbeat ${held.heartbeatAgeSeconds}s ago)`,
        ],
        ExitCode.lockHeld,
        [
          `if that rollout is dead, its lock goes stale ${formatDuration(fleet.lock.staleAfter)} after its last heartbeat; or remove ${path} on ${transport.node} by hand`,
        ],
      );
    }
    warn(
      `taking over a stale rollout lock ${where} held by ${who}: ${deadOnThisHost(held.owner) ? 'that process is gone' : `no heartbeat for ${held.heartbeatAgeSeconds}s`}`,
    );
    await transport.exec({ shell: takeOverScript(path) }, { signal, timeoutMs: COMMAND_TIMEOUT_MS });
  }
  const heartbeat = setInterval(() => {
    void transport.exec(
      { shell: ifOwner(path, owner.token, `touch ${shellQuote(`${path}/heartbeat`)}`) },
      { signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS), timeoutMs: COMMAND_TIMEOUT_MS },
    );
  }, HEARTBEAT_MS);
  heartbeat.unref();
  return {
    owner,
    where,
    async release() {
      clearInterval(heartbeat);
      await transport.exec(
        { shell: ifOwner(path, owner.token, `rm -rf ${shellQuote(path)}`) },
        { signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS), timeoutMs: COMMAND_TIMEOUT_MS },
      );
    },
  };
}

/** A holder on this very machine whose process is gone (killed, crashed) cannot be running a rollout. */
function deadOnThisHost(owner: LockOwner | undefined): boolean {
  if (!owner || owner.host !== hostname()) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** Reads the lock without taking it (for `graceroll status`). */
export async function inspectLock(
  fleet: Fleet,
  transport: Transport,
  signal: AbortSignal,
): Promise<Result<HeldBy | 'free'>> {
  const path = shellQuote(defaultLockPath(fleet));
  const result = await transport.exec(
    {
      shell: `if [ -d ${path} ]; then echo HELD; cat ${path}/owner 2>/dev/null; echo; echo $(( $(date +%s) - $(stat -c %Y ${path}/heartbeat 2>/dev/null || date +%s) )); else echo FREE; fi`,
    },
    { signal, timeoutMs: COMMAND_TIMEOUT_MS },
  );
  if (result.failure || result.code !== 0) return fail(result.reason ?? result.stderr.trim());
  return { ok: true, value: result.stdout.startsWith('FREE') ? 'free' : parseHeld(result.stdout) };
}

import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { formatDuration } from '../config/duration.js';
import type { Fleet } from '../config/types.js';
import { ExitCode, GracerollError } from '../exit-codes.js';
import { fail, type Result } from '../outcome.js';
import { shellQuote } from '../transport/quote.js';
import type { Transport } from '../transport/types.js';
import { HEARTBEAT_MS } from './timing.js';

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

export { HEARTBEAT_MS } from './timing.js';
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

/**
 * Takes over a stale lock atomically and checked: the lock directory is renamed aside (of two takers only
 * one rename succeeds), then the owner file of what was moved is compared with the stale owner that was
 * judged. If another rollout took the lock in between, what was moved is its fresh lock: it is put back
 * (`mv -T` fails rather than merging when the path exists again) and the takeover is refused.
 */
export const takeOverScript = (path: string, staleToken: string | undefined) => {
  const p = shellQuote(path);
  const aside = shellQuote(`${path}.stale.${randomUUID()}`);
  const same =
    staleToken === undefined
      ? `! grep -q '"token"' ${aside}/owner 2>/dev/null`
      : `grep -qF ${shellQuote(`"token":"${staleToken}"`)} ${aside}/owner 2>/dev/null`;
  return [
    `if ! mv -T ${p} ${aside} 2>/dev/null; then echo GONE;`,
    `elif ${same}; then rm -rf ${aside}; echo TAKEN;`,
    `else mv -T ${aside} ${p} 2>/dev/null || rm -rf ${aside}; echo RACED; fi`,
  ].join(' ');
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

export interface LockCallbacks {
  warn(message: string): void;
  /** The lock was lost while held (a heartbeat did not land, or another owner holds it now). */
  onLost(why: string): void;
}

/**
 * Takes the fleet's rollout lock on `transport` (the load balancer host, where every rollout of the
 * fleet must go). A lock whose heartbeat is older than `staleAfter` is taken over, with a warning, unless
 * its owner is a process on this machine that is still alive. While held, every heartbeat checks that the
 * lock is still this run's and that the touch landed; when not, `onLost` halts the rollout.
 */
export async function acquireLock(
  fleet: Fleet,
  transport: Transport,
  signal: AbortSignal,
  callbacks: LockCallbacks,
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
    const alive = aliveOnThisHost(held.owner);
    const dead = alive === false;
    const stale = alive !== true && (held.heartbeatAgeSeconds * 1000 > fleet.lock.staleAfter || dead);
    const refuse = (why: string) =>
      new GracerollError(
        [
          `fleet ${fleet.name} is locked by ${who}: ${why} (lock ${where}, heartbeat ${held.heartbeatAgeSeconds}s ago)`,
        ],
        ExitCode.lockHeld,
        [
          alive
            ? `that process is running on this machine: wait for it, or stop it (kill -INT ${held.owner?.pid})`
            : `if that rollout is dead, its lock goes stale ${formatDuration(fleet.lock.staleAfter)} after its last heartbeat; or remove ${path} on ${transport.node} by hand`,
        ],
      );
    if (!stale || tries > 2) throw refuse('another rollout is running');
    callbacks.warn(
      `taking over a stale rollout lock ${where} held by ${who}: ${dead ? 'that process is gone' : `no heartbeat for ${held.heartbeatAgeSeconds}s`}`,
    );
    const taken = await transport.exec(
      { shell: takeOverScript(path, held.owner?.token) },
      { signal, timeoutMs: COMMAND_TIMEOUT_MS },
    );
    if (taken.failure || taken.code !== 0)
      throw new GracerollError(
        [
          `cannot take over the rollout lock ${where}: ${taken.reason ?? (taken.stderr.trim() || `exit ${taken.code}`)}`,
        ],
        ExitCode.preflightRefused,
      );
    if (taken.stdout.includes('RACED')) throw refuse('another rollout took it over first');
    // TAKEN or GONE: try to create it afresh (mkdir decides between concurrent takers).
  }
  let lost = false;
  const heartbeat = setInterval(() => {
    void (async () => {
      const result = await transport.exec(
        {
          shell: `${ifOwner(path, owner.token, `touch ${shellQuote(`${path}/heartbeat`)} && echo BEAT`)} || echo LOST`,
        },
        { signal: AbortSignal.timeout(COMMAND_TIMEOUT_MS), timeoutMs: COMMAND_TIMEOUT_MS },
      );
      if (lost) return;
      if (result.stdout.includes('BEAT')) return;
      // A transport hiccup is not yet a lost lock: it is stale only after staleAfter without a beat.
      if (!result.stdout.includes('LOST')) {
        callbacks.warn(
          `the lock heartbeat on ${where} did not land: ${result.reason ?? (result.stderr.trim() || `exit ${result.code}`)}`,
        );
        return;
      }
      lost = true;
      callbacks.onLost(`the rollout lock ${where} is no longer this run's (removed or taken over)`);
    })();
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

/**
 * Whether the lock's owner is a live process on this machine: true (never taken over, whatever its
 * heartbeat says), false (it is gone: the lock is stale at once), or undefined (another host: only the
 * heartbeat can tell). A PID reused by an unrelated process counts as alive: it errs on the safe side.
 */
export function aliveOnThisHost(owner: LockOwner | undefined): boolean | undefined {
  if (!owner || owner.host !== hostname()) return undefined;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH' ? false : true;
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

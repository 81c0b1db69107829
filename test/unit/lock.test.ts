import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseFleet } from '../../src/lib/config/load-config.js';
import { ExitCode, GracerollError } from '../../src/lib/exit-codes.js';
import { acquireLock, aliveOnThisHost, HEARTBEAT_MS, takeOverScript } from '../../src/lib/lock/lock.js';
import { createLocalTransport } from '../../src/lib/transport/local.js';

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'graceroll-lock-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const local = createLocalTransport('controller');
const sh = (script: string) => execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8' });
const fleetWith = (lockPath: string, staleAfter = '20s') =>
  parseFleet(
    {
      service: { type: 'systemd', unit: 'a.service' },
      lock: { path: lockPath, staleAfter },
      nodes: [{ name: 'a' }],
    },
    join(dir, 'fleet.yaml'),
  );
/** A lock directory as another rollout leaves it, with a heartbeat `ageSeconds` old. */
function plantLock(path: string, owner: { token: string; pid: number; host?: string }, ageSeconds: number) {
  mkdirSync(path);
  writeFileSync(
    join(path, 'owner'),
    JSON.stringify({ user: 'x', host: hostname(), startedAt: 'then', config: 'c', ...owner }),
  );
  writeFileSync(join(path, 'heartbeat'), '');
  const then = Date.now() / 1000 - ageSeconds;
  utimesSync(join(path, 'heartbeat'), then, then);
}
const callbacks = () => {
  const warnings: string[] = [];
  const lost: string[] = [];
  return {
    warnings,
    lost,
    cb: { warn: (m: string) => warnings.push(m), onLost: (m: string) => lost.push(m) },
  };
};

describe('lock config', () => {
  it('refuses a staleAfter shorter than four heartbeats, at its path', () => {
    expect(() => fleetWith('/tmp/x.lock', '3s')).toThrow(
      /lock\.staleAfter: must be at least 20s \(4 heartbeats of 5s\)/,
    );
    expect(() => fleetWith('/tmp/x.lock', '20s')).not.toThrow();
  });
});

describe('lock takeover', () => {
  it('takes over the stale lock it judged', () => {
    const path = join(dir, 'l');
    plantLock(path, { token: 'stale-1', pid: 1 }, 100);
    expect(sh(takeOverScript(path, 'stale-1')).trim()).toBe('TAKEN');
    expect(existsSync(path)).toBe(false);
  });

  it('puts back a fresh lock that another rollout took in between, and refuses', () => {
    const path = join(dir, 'l');
    plantLock(path, { token: 'fresh-2', pid: 1 }, 0);
    expect(sh(takeOverScript(path, 'stale-1')).trim()).toBe('RACED');
    expect(JSON.parse(readFileSync(join(path, 'owner'), 'utf8')).token).toBe('fresh-2');
  });

  it('never takes over a lock whose owner is alive on this machine, however old its heartbeat', async () => {
    const path = join(dir, 'l');
    plantLock(path, { token: 't', pid: process.pid }, 10_000);
    expect(
      aliveOnThisHost({
        token: 't',
        pid: process.pid,
        host: hostname(),
        user: userInfo().username,
        startedAt: '',
        config: '',
      }),
    ).toBe(true);
    const { cb } = callbacks();
    const error = await acquireLock(fleetWith(path), local, new AbortController().signal, cb).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(GracerollError);
    expect((error as GracerollError).exitCode).toBe(ExitCode.lockHeld);
    expect((error as GracerollError).problems[0]).toMatch(/another rollout is running/);
    expect(JSON.parse(readFileSync(join(path, 'owner'), 'utf8')).token).toBe('t');
  });

  it('takes over a lock whose owner process on this machine is gone', async () => {
    const path = join(dir, 'l');
    const dead = Number(sh("sh -c 'echo $$'"));
    plantLock(path, { token: 'dead', pid: dead }, 0);
    const { cb, warnings } = callbacks();
    const lock = await acquireLock(fleetWith(path), local, new AbortController().signal, cb);
    expect(warnings.join('\n')).toMatch(/that process is gone/);
    expect(JSON.parse(readFileSync(join(path, 'owner'), 'utf8')).token).toBe(lock.owner.token);
    await lock.release();
    expect(existsSync(path)).toBe(false);
  });

  it('a holder whose lock is removed or taken over learns it at the next heartbeat', async () => {
    const path = join(dir, 'l');
    const { cb, lost } = callbacks();
    const lock = await acquireLock(fleetWith(path), local, new AbortController().signal, cb);
    rmSync(path, { recursive: true });
    plantLock(path, { token: 'someone-else', pid: 1 }, 0);
    await new Promise((r) => setTimeout(r, HEARTBEAT_MS + 1500));
    expect(lost).toEqual([expect.stringMatching(/is no longer this run's/)]);
    await lock.release();
    // Release removes only its own lock.
    expect(JSON.parse(readFileSync(join(path, 'owner'), 'utf8')).token).toBe('someone-else');
  }, 20_000);
});

import { spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLocalTransport, OUTPUT_CAP_BYTES } from '../../src/lib/transport/local.js';
import type { ExecOptions, RemoteCommand } from '../../src/lib/transport/types.js';

const local = createLocalTransport('localhost');
const exec = (command: RemoteCommand, options: Partial<ExecOptions> = {}) =>
  local.exec(command, { signal: new AbortController().signal, timeoutMs: 10_000, ...options });

describe('local transport', () => {
  it('connects trivially and names its node', async () => {
    expect(local.node).toBe('localhost');
    expect(await local.connect(new AbortController().signal)).toEqual({ ok: true });
  });

  it('returns exit code, stdout and stderr', async () => {
    const result = await exec({ shell: 'echo out; echo err >&2; exit 3' });
    expect(result).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('runs argv without a shell: nothing in it is expanded', async () => {
    const result = await exec({ argv: ['printf', '%s|', '$HOME', '$(id)', '*', "it's"] });
    expect(result).toEqual({ code: 0, stdout: "$HOME|$(id)|*|it's|", stderr: '' });
  });

  it('feeds stdin and closes it, so a reader terminates', async () => {
    expect((await exec({ argv: ['cat'] }, { stdin: 'hello\nworld' })).stdout).toBe('hello\nworld');
    expect(await exec({ argv: ['cat'] })).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('answers 127 for a missing command, as a shell would', async () => {
    const result = await exec({ argv: ['graceroll-no-such-command'] });
    expect(result.code).toBe(127);
    expect(result.failure).toBeUndefined();
    expect(result.stderr).toMatch(/ENOENT/);
  });

  it('kills the whole process group at the deadline, background children included', async () => {
    const marker = uniqueSleep();
    const started = Date.now();
    const run = exec({ shell: `${marker} & ${marker} & wait` }, { timeoutMs: 500 });
    await sleep(200);
    expect(pgrep(marker).length).toBe(2);
    const result = await run;
    expect(result).toMatchObject({ code: null, failure: 'timeout' });
    expect(result.reason).toMatch(/500 ms/);
    expect(Date.now() - started).toBeLessThan(1500);
    expect(await pgrepSettled(marker)).toEqual([]);
  });

  it('follows TERM with KILL for a command that ignores TERM', async () => {
    const marker = uniqueSleep();
    const started = Date.now();
    const result = await exec({ shell: `trap '' TERM; ${marker}; echo survived` }, { timeoutMs: 300 });
    expect(result).toMatchObject({ code: null, failure: 'timeout', stdout: '' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await pgrepSettled(marker)).toEqual([]);
  });

  it('cancels on abort and kills the group', async () => {
    const marker = uniqueSleep();
    const controller = new AbortController();
    const run = exec({ shell: `${marker} & wait` }, { signal: controller.signal });
    await sleep(200);
    expect(pgrep(marker).length).toBe(1);
    controller.abort();
    expect(await run).toMatchObject({ code: null, failure: 'aborted' });
    expect(await pgrepSettled(marker)).toEqual([]);
  });

  it('does not start a command when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const marker = `/tmp/graceroll-local-${process.pid}-${randomInt(1e9)}`;
    const result = await exec({ argv: ['touch', marker] }, { signal: controller.signal });
    expect(result).toMatchObject({ code: null, failure: 'aborted' });
    expect(spawnSync('test', ['-e', marker]).status).toBe(1);
  });

  it('caps captured output and says how much it dropped', async () => {
    const result = await exec({ shell: `head -c ${OUTPUT_CAP_BYTES + 5000} /dev/zero | tr '\\0' a` });
    expect(result.code).toBe(0);
    expect(result.stdout.startsWith('a'.repeat(OUTPUT_CAP_BYTES))).toBe(true);
    expect(result.stdout.slice(OUTPUT_CAP_BYTES)).toBe('\n[output truncated: 5000 more bytes]');
  });
});

function uniqueSleep(): string {
  return `sleep 28.${randomInt(1e6, 1e7)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function pgrepSettled(pattern: string): Promise<string[]> {
  for (let i = 0; i < 20 && pgrep(pattern).length > 0; i++) await sleep(25);
  return pgrep(pattern);
}

/** Processes whose command line is exactly the pattern (not the sh -c that mentions it). */
function pgrep(pattern: string): string[] {
  const result = spawnSync('pgrep', ['-x', '-f', pattern], { encoding: 'utf8' });
  return result.stdout.split('\n').filter(Boolean);
}

describe('local transport limits', () => {
  it('a command line too long for the kernel (E2BIG) is a failed command, not a crash', async () => {
    const transport = createLocalTransport('local');
    const result = await transport.exec(
      { shell: `echo ${'x'.repeat(3 * 1024 * 1024)}` },
      { signal: new AbortController().signal, timeoutMs: 5000 },
    );
    expect(result.failure).toBe('transport');
    expect(result.reason).toMatch(/E2BIG/);
  });
});

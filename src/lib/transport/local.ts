import { spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable, Writable } from 'node:stream';
import type { ExecOptions, ExecResult, RemoteCommand, Transport } from './types.js';
import { timerMs } from '../config/duration.js';

/** Output kept per stream; a runaway command must not take the CLI's memory with it. */
export const OUTPUT_CAP_BYTES = 1024 * 1024;
/** Between TERM and KILL, as the remote side does with `timeout -k 2`. */
const KILL_GRACE_MS = 2000;

/** Collects a stream's bytes up to a cap, then counts what it drops (decoded once, so UTF-8 stays whole). */
export class CappedOutput {
  private readonly chunks: Buffer[] = [];
  private kept = 0;
  private dropped = 0;

  constructor(private readonly cap: number = OUTPUT_CAP_BYTES) {}

  push(chunk: Buffer | string): void {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    const room = this.cap - this.kept;
    if (room > 0) {
      const part = buffer.length > room ? buffer.subarray(0, room) : buffer;
      this.chunks.push(part);
      this.kept += part.length;
    }
    this.dropped += Math.max(0, buffer.length - Math.max(room, 0));
  }

  text(): string {
    const text = Buffer.concat(this.chunks).toString('utf8');
    return this.dropped > 0 ? `${text}\n[output truncated: ${this.dropped} more bytes]` : text;
  }
}

/**
 * Runs commands on this machine, for `local` nodes and tests. argv runs without a shell; `{ shell }`
 * runs under /bin/sh, as it would remotely. The command leads its own process group so a deadline or
 * cancellation kills everything it started, not just the shell.
 */
export function createLocalTransport(node: string): Transport {
  return {
    node,
    connect: () => Promise.resolve({ ok: true }),
    exec: (command, options) => runLocal(command, options),
    close: () => Promise.resolve(),
  };
}

function runLocal(command: RemoteCommand, options: ExecOptions): Promise<ExecResult> {
  if (options.signal.aborted) return Promise.resolve({ code: null, stdout: '', stderr: '', ...aborted() });
  const [file, args] =
    'shell' in command ? ['/bin/sh', ['-c', command.shell]] : [command.argv[0], command.argv.slice(1)];
  if (!file) throw new Error('local exec: argv is empty');

  let child: ChildProcessByStdio<Writable, Readable, Readable>;
  try {
    child = spawn(file, args, { detached: true, stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (error) {
    // spawn throws synchronously for some errors, e.g. E2BIG when a command line exceeds ARG_MAX.
    const reason = `cannot start ${file}: ${(error as Error).message}`;
    return Promise.resolve({ code: null, stdout: '', stderr: '', failure: 'transport', reason });
  }
  return runChild(child, file, options);
}

function runChild(
  child: ChildProcessByStdio<Writable, Readable, Readable>,
  file: string,
  options: ExecOptions,
): Promise<ExecResult> {
  const { signal, timeoutMs, stdin } = options;
  return new Promise((resolve) => {
    const stdout = new CappedOutput();
    const stderr = new CappedOutput();
    let failure: Pick<ExecResult, 'failure' | 'reason'> | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
    // EPIPE when the command exits without reading its stdin is not our failure.
    child.stdin.on('error', () => {});
    child.stdin.end(stdin ?? '');

    const finish = (result: Omit<ExecResult, 'stdout' | 'stderr'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      clearTimeout(killTimer);
      signal.removeEventListener('abort', onAbort);
      resolve({ ...result, stdout: stdout.text(), stderr: stderr.text() });
    };

    const killGroup = (why: Pick<ExecResult, 'failure' | 'reason'>): void => {
      if (failure || settled) return;
      failure = why;
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => {
        signalGroup(child.pid, 'SIGKILL');
        // A process that left the group (setsid) may hold our pipes open: stop waiting for them.
        killTimer = setTimeout(() => {
          child.stdout.destroy();
          child.stderr.destroy();
          finish({ code: null, ...why });
        }, 1000);
      }, KILL_GRACE_MS);
    };

    const deadline = setTimeout(
      () => killGroup({ failure: 'timeout', reason: `timed out after ${timeoutMs} ms` }),
      timerMs(timeoutMs),
    );
    const onAbort = (): void => killGroup(aborted());
    signal.addEventListener('abort', onAbort, { once: true });

    child.on('error', (error: NodeJS.ErrnoException) => {
      // Same codes a shell returns for a missing or non-executable command, so local and SSH agree.
      const code = error.code === 'ENOENT' ? 127 : error.code === 'EACCES' ? 126 : null;
      stderr.push(`${file}: ${error.message}\n`);
      finish(code === null ? { code, failure: 'transport', reason: error.message } : { code });
    });
    // 'close' waits for the pipes too, so output written just before exit is not lost.
    child.on('close', (code) => {
      clearTimeout(killTimer);
      if (failure) signalGroup(child.pid, 'SIGKILL'); // stragglers still in the group
      finish(failure ? { code: null, ...failure } : { code });
    });
  });
}

function aborted(): Pick<ExecResult, 'failure' | 'reason'> {
  return { failure: 'aborted', reason: 'cancelled' };
}

function signalGroup(pid: number | undefined, name: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, name);
  } catch {
    // ESRCH: the group is already gone.
  }
}

import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import type { Duplex } from 'node:stream';
import ssh2 from 'ssh2';
import type { Client, ClientChannel, ConnectConfig, ServerHostKeyAlgorithm } from 'ssh2';
import {
  appendKnownHost,
  checkHostKey,
  fingerprint,
  keyTypeOfBlob,
  knownKeyTypes,
  readKnownHosts,
} from './known-hosts.js';
import { CappedOutput } from './local.js';
import { commandLine, shellQuote, wrapWithTimeout } from './quote.js';
import type { ExecOptions, ExecResult, Transport } from './types.js';
import { timerMs } from '../config/duration.js';

export interface SshTransportOptions {
  node: string;
  host: string;
  port?: number;
  user: string;
  privateKeyPath?: string;
  passphrase?: string;
  /** Path of the agent socket (SSH_AUTH_SOCK). */
  agent?: string;
  knownHostsPath: string;
  hostKeyPolicy: 'strict' | 'accept-new' | 'off';
  /** Channels open at once on the connection; sshd refuses more than its MaxSessions (default 10). */
  maxSessions?: number;
  connectTimeoutMs?: number;
  /**
   * An already-open stream to the SSH server, e.g. a `forwardOut` channel through a jump host; or a function
   * called for every connection attempt, so that a reconnect gets a new stream (jump.ts). A function that
   * rejects fails the attempt with its message.
   */
  sock?: Duplex | (() => Promise<Duplex>);
  onWarning?: (message: string) => void;
}

type Stop = Pick<ExecResult, 'failure' | 'reason'>;
/** A logged-in connection, or why there is none. */
export type SshLogin = { client: Client } | { reason: string };
type Attempt = SshLogin;

/** ssh2's own order (lib/protocol/constants.js), used to put the types known_hosts has for a host first. */
const HOST_KEY_ALGORITHMS: ServerHostKeyAlgorithm[] = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];
/** How long close() waits for the server to acknowledge the end of the connection. */
const CLOSE_WAIT_MS = 2000;
/** After a kill: TERM, then `timeout -k 2` sends KILL; past that, stop waiting for the server's word. */
const STOP_WAIT_MS = 3500;
/** What sh (dash, bash, busybox ash) says when `exec timeout` finds no timeout. */
const MISSING_TIMEOUT = /exec: (line \d+: )?timeout: not found/;
/** First line the wrapper writes to stderr, so the client knows which process to kill. */
const PID_LINE = /^graceroll-pid (\d+)\n$/;

/**
 * One SSH connection per node, shared by every command on it. Host keys are checked against known_hosts
 * ourselves because ssh2 accepts any key unless told otherwise (docs/STACK.md).
 */
export function createSshTransport(opts: SshTransportOptions): Transport {
  const port = opts.port ?? 22;
  const where = `${opts.node} (${opts.host}:${port})`;
  const slots = new SessionSlots(opts.maxSessions ?? 8);
  let client: Client | null = null;
  let connecting: Promise<Attempt> | null = null;
  let closed = false;
  let everConnected = false;
  const openConnection = sshConnector(opts);

  /** The live connection, or one new attempt shared by everyone asking meanwhile. */
  function connection(): Promise<Attempt> {
    if (closed) return Promise.resolve({ reason: `connection to ${where} was closed` });
    if (client) return Promise.resolve({ client });
    connecting ??= openConnection().then((attempt) => {
      connecting = null;
      if (!('client' in attempt)) return attempt;
      const current = attempt.client;
      if (closed) {
        current.end(); // close() ran while we were logging in
        return { reason: `connection to ${where} was closed` };
      }
      client = current;
      if (everConnected) opts.onWarning?.(`the connection to ${where} was lost; reconnected`);
      everConnected = true;
      // A dropped connection is noticed here; the next exec connects again.
      current.on('close', () => {
        if (client === current) client = null;
      });
      return attempt;
    });
    return connecting;
  }

  /** Opens an exec channel, connecting first when needed; a dead connection gets one new attempt. */
  async function openChannel(line: string, stop: AbortSignal): Promise<ClientChannel | string> {
    for (let attempt = 1; ; attempt++) {
      const wasConnected = client !== null;
      const conn = await untilStopped(connection(), stop);
      if (conn === null) return 'stopped';
      if ('reason' in conn) return conn.reason;
      try {
        const opening = execChannel(conn.client, line);
        const channel = await untilStopped(opening, stop);
        if (channel) return channel;
        // Stopped while the server was opening the channel: the command starts anyway, so kill it.
        opening.then(
          (late) => void runChannel(late, undefined, stop, () => ({})),
          () => {},
        );
        return 'stopped';
      } catch (error) {
        const message = (error as Error).message;
        // 'Not connected' / 'No response from server': the connection died before we noticed. The
        // channel never opened, so nothing ran and trying once more on a new connection is safe.
        const dead = client !== conn.client || /not connected|no response/i.test(message);
        if (dead && wasConnected && attempt === 1) {
          if (client === conn.client) client = null;
          conn.client.end();
          continue;
        }
        const hint = /open failure/i.test(message)
          ? ` (sshd MaxSessions is lower than maxSessions ${opts.maxSessions ?? 8}?)`
          : '';
        return `cannot start a command on ${where}: ${message}${hint}`;
      }
    }
  }

  async function exec(command: Parameters<Transport['exec']>[0], options: ExecOptions): Promise<ExecResult> {
    const line = commandLine(command);
    const { signal, timeoutMs } = options;
    const deadline = Date.now() + timeoutMs;
    // One stop signal for the whole call: waiting for a session slot and reconnecting count too.
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort('timeout'), timerMs(timeoutMs));
    const onAbort = (): void => stop.abort('aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    const stopped = (): Stop =>
      stop.signal.reason === 'timeout'
        ? { failure: 'timeout', reason: `timed out after ${timeoutMs} ms on ${where}` }
        : { failure: 'aborted', reason: 'cancelled' };
    try {
      const release = await slots.acquire(stop.signal);
      if (!release) return { code: null, stdout: '', stderr: '', ...stopped() };
      try {
        // The remote deadline is a second later than ours, so ours fires first and says 'timeout';
        // the remote one only matters when we could not tell the server (connection gone, CLI killed).
        const remoteSeconds = Math.ceil(Math.max(deadline - Date.now(), 1) / 1000) + 1;
        const channel = await openChannel(remoteLine(line, remoteSeconds), stop.signal);
        if (typeof channel === 'string') {
          const failure: Stop = stop.signal.aborted ? stopped() : { failure: 'transport', reason: channel };
          return { code: null, stdout: '', stderr: '', ...failure };
        }
        const result = await runChannel(channel, options.stdin, stop.signal, stopped);
        if (result.code === 127 && MISSING_TIMEOUT.test(result.stderr)) {
          const reason = `${where} has no timeout(1) (coreutils or busybox), which graceroll needs to bound remote commands`;
          return { ...result, code: null, failure: 'transport', reason };
        }
        return result;
      } finally {
        release();
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * Kills remote commands by pid over a separate channel. sshd's "signal" request would be simpler, but
   * OpenSSH refuses it for root logins ("session signalling requires privilege separation", session.c),
   * and closing the channel kills nothing. Kills are batched into one channel, which bypasses the session
   * limit: keep maxSessions below sshd's MaxSessions (8 vs 10 by default) to leave room for it.
   */
  const pendingKills = new Set<number>();
  let killing: Promise<void> | null = null;
  function killRemote(pid: number): void {
    pendingKills.add(pid);
    killing ??= (async () => {
      while (pendingKills.size > 0 && client) {
        const pids = [...pendingKills];
        pendingKills.clear();
        try {
          // TERM to `timeout`, which passes it to the command's group and sends KILL 2 s later.
          const channel = await execChannel(client, `kill -TERM ${pids.join(' ')} 2>/dev/null; true`);
          await new Promise<void>((resolve) => {
            channel.on('error', () => {});
            channel.on('close', () => resolve());
            channel.resume();
            channel.stderr.resume();
            channel.end();
          });
        } catch {
          // No channel: the remote `timeout` still ends the command at its deadline.
        }
      }
      pendingKills.clear();
      killing = null;
    })();
  }

  function runChannel(
    channel: ClientChannel,
    stdin: string | undefined,
    stop: AbortSignal,
    stopped: () => Stop,
  ): Promise<ExecResult> {
    return new Promise((resolve) => {
      const stdout = new CappedOutput();
      const stderr = new CappedOutput();
      let pid: number | undefined;
      let head: Buffer | undefined = Buffer.alloc(0); // stderr until the pid line is seen
      const end = channelEnds.get(channel) ?? { exited: false, code: null };
      let giveUp: NodeJS.Timeout | undefined;
      let settled = false;
      const finish = (result: Pick<ExecResult, 'code' | 'failure' | 'reason'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(giveUp);
        stop.removeEventListener('abort', onStop);
        if (head) stderr.push(head);
        resolve({ ...result, stdout: stdout.text(), stderr: stderr.text() });
      };
      const onStop = (): void => {
        if (pid !== undefined) killRemote(pid);
        // Normally the server reports the end within moments of the kill. If it does not (connection
        // gone), give up on the channel; the remote `timeout` still ends the command.
        giveUp = setTimeout(() => {
          channel.close();
          finish({ code: null, ...stopped() });
        }, STOP_WAIT_MS);
      };
      channel.on('data', (chunk: Buffer) => stdout.push(chunk));
      channel.stderr.on('data', (chunk: Buffer) => {
        if (!head) return stderr.push(chunk);
        head = Buffer.concat([head, chunk]);
        const newline = head.indexOf(0x0a);
        if (newline === -1 && head.length < 64) return;
        const match = PID_LINE.exec(head.subarray(0, newline + 1).toString('latin1'));
        const rest = match ? head.subarray(newline + 1) : head;
        head = undefined;
        stderr.push(rest);
        if (match && Number(match[1]) > 1) {
          pid = Number(match[1]);
          if (stop.aborted) killRemote(pid);
        }
      });
      channel.on('close', () => {
        if (stop.aborted) finish({ code: null, ...stopped() });
        else if (end.exited) finish({ code: end.code });
        else {
          const why = end.error ? `: ${end.error.message}` : '';
          finish({
            code: null,
            failure: 'transport',
            reason: `connection to ${where} lost while the command ran${why}`,
          });
        }
      });
      if (stop.aborted) onStop();
      else stop.addEventListener('abort', onStop, { once: true });
      channel.end(stdin ?? '');
    });
  }

  return {
    node: opts.node,
    async connect(signal) {
      const attempt = await untilStopped(connection(), signal);
      if (attempt === null) return { ok: false, reason: `connecting to ${where} was cancelled` };
      return 'reason' in attempt ? { ok: false, reason: attempt.reason } : { ok: true };
    },
    exec,
    async close() {
      closed = true;
      const pending = connecting ? await connecting : null;
      const current = client ?? (pending && 'client' in pending ? pending.client : null);
      client = null;
      if (!current) return;
      await new Promise<void>((resolve) => {
        current.once('close', () => resolve());
        current.end();
        setTimeout(resolve, CLOSE_WAIT_MS).unref();
      });
    },
  };
}

/**
 * Logs in to one SSH server, checking its host key against known_hosts: used for a node's connection and,
 * through jump.ts, for each jump host on the way. Every call is a new attempt (a new stream from `sock`).
 */
export function sshConnector(opts: SshTransportOptions): () => Promise<SshLogin> {
  const port = opts.port ?? 22;
  const where = `${opts.node} (${opts.host}:${port})`;
  let warnedOff = false;
  return openConnection;

  async function openConnection(): Promise<Attempt> {
    const config: ConnectConfig = {
      host: opts.host,
      port,
      username: opts.user,
      agent: opts.agent,
      passphrase: opts.passphrase,
      readyTimeout: opts.connectTimeoutMs ?? 20_000,
      // Notices a peer that vanished without closing TCP (45 s), so the next exec reconnects.
      keepaliveInterval: 15_000,
      keepaliveCountMax: 3,
    };
    if (opts.privateKeyPath) {
      const path = expandHome(opts.privateKeyPath);
      try {
        config.privateKey = await readFile(path);
      } catch (error) {
        return { reason: `cannot read private key ${path} for ${where}: ${(error as Error).message}` };
      }
    }
    let refusal: string | undefined;
    if (opts.hostKeyPolicy === 'off') {
      if (!warnedOff)
        opts.onWarning?.(
          `host key checking is off for ${where}: the connection is not protected against a man in the middle`,
        );
      warnedOff = true;
    } else {
      try {
        const known = knownKeyTypes(await readKnownHosts(opts.knownHostsPath), opts.host, port);
        if (known.length > 0) config.algorithms = { serverHostKey: preferKnownTypes(known) };
      } catch (error) {
        return { reason: `cannot read ${opts.knownHostsPath}: ${(error as Error).message}` };
      }
      // Callback form, and not an async function: ssh2 takes any returned value other than undefined
      // as the verdict (lib/client.js), and a Promise is truthy. No hostHash: we want the raw key blob.
      config.hostVerifier = (key: Buffer, verify: (valid: boolean) => void): void => {
        verifyHostKey(key).then(
          (verdict) => {
            if (verdict !== true) refusal = verdict;
            verify(verdict === true);
          },
          (error: Error) => {
            refusal = `cannot check the host key of ${where}: ${error.message}`;
            verify(false);
          },
        );
      };
    }

    if (typeof opts.sock === 'function') {
      try {
        config.sock = await opts.sock();
      } catch (error) {
        return { reason: `cannot reach ${where}: ${(error as Error).message}` };
      }
    } else config.sock = opts.sock;

    return new Promise<Attempt>((resolve) => {
      const candidate = new ssh2.Client();
      let settled = false;
      const settle = (attempt: Attempt): void => {
        if (settled) return;
        settled = true;
        if ('reason' in attempt) {
          candidate.end();
          // A stream made for this attempt is ours to close, even when connect() threw before using it.
          if (typeof opts.sock === 'function') config.sock?.destroy();
        }
        resolve(attempt);
      };
      // `on`, not `once`: one failure can emit two errors, and an unheard one crashes the process.
      candidate.on('error', (error) => settle({ reason: refusal ?? describeConnectError(error) }));
      candidate.on('close', () =>
        settle({ reason: refusal ?? `connection to ${where} closed during login` }),
      );
      candidate.on('ready', () => settle({ client: candidate }));
      try {
        candidate.connect(config);
        // Without TCP_NODELAY every small SSH packet waits for the peer's delayed ACK: ~40 ms per
        // command (measured in BENCHMARKS.md). A forwarded channel (jump hosts) ignores it.
        candidate.setNoDelay(true);
      } catch (error) {
        // ssh2 parses the private key inside connect() and throws, e.g. for an encrypted key without passphrase.
        settle({ reason: describeKeyError(error as Error) });
      }
    });
  }

  async function verifyHostKey(key: Buffer): Promise<true | string> {
    const algo = keyTypeOfBlob(key);
    if (!algo) return `${where} sent a host key that cannot be parsed`;
    const path = opts.knownHostsPath;
    const check = checkHostKey(await readKnownHosts(path), opts.host, port, algo, key);
    const actual = `${algo} ${fingerprint(key)}`;
    switch (check.status) {
      case 'match':
        return true;
      case 'revoked':
        return `host key for ${where} (${actual}) is marked @revoked in ${path}:${check.line}: refusing to connect`;
      case 'changed':
        return `host key for ${where} changed: expected ${check.expectedFingerprint}, got ${check.actualFingerprint} — if the change is expected, remove the old entry from ${path} (line ${check.line}), e.g. with ssh-keygen -R`;
      case 'unknown':
        if (check.otherKeyTypes.length > 0) {
          return `host key for ${where} is ${actual}, but ${path} only has ${check.otherKeyTypes.join(', ')} keys for it: refusing a key of a new type; if it is expected, add it with ssh-keyscan`;
        }
        if (opts.hostKeyPolicy === 'strict') {
          return `host key for ${where} (${actual}) is not in ${path}; accept it with hostKeyPolicy: accept-new or add it with ssh-keyscan -p ${port} ${opts.host} >> ${path}`;
        }
        await appendKnownHost(path, opts.host, port, algo, key);
        opts.onWarning?.(`added the host key for ${where} (${actual}) to ${path}`);
        return true;
    }
  }

  function describeConnectError(error: Error & { level?: string; code?: string }): string {
    if (error.level === 'client-authentication') {
      const offered = [opts.privateKeyPath && `key ${opts.privateKeyPath}`, opts.agent && 'agent'].filter(
        Boolean,
      );
      return `authentication failed for ${opts.user}@${where} (offered: ${offered.join(', ') || 'nothing'})`;
    }
    if (error.level === 'client-timeout') {
      return `timed out connecting to ${where} after ${opts.connectTimeoutMs ?? 20_000} ms`;
    }
    if (error.code === 'ECONNREFUSED')
      return `connection to ${where} refused: is sshd listening on port ${port}?`;
    return `cannot connect to ${where}: ${error.message}`;
  }

  function describeKeyError(error: Error): string {
    const path = opts.privateKeyPath ?? 'the private key';
    if (/no passphrase/i.test(error.message)) {
      return `private key ${path} for ${where} is encrypted: give its passphrase or use an ssh-agent`;
    }
    return `cannot use private key ${path} for ${where}: ${error.message}`;
  }
}

/** What a channel reported before anyone read it: its exit status (null: killed by a signal), an error. */
interface ChannelEnd {
  exited: boolean;
  code: number | null;
  error?: Error;
}
const channelEnds = new WeakMap<ClientChannel, ChannelEnd>();

function execChannel(client: Client, line: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(line, (error, channel) => {
        if (error) return reject(error);
        // Listen at once: a short command's exit-status can come in the same read as the channel's
        // confirmation (a busy machine), and ssh2 emits it before whoever awaits this promise runs. Output
        // is buffered by the streams until read; 'exit' is a plain event and would be lost.
        const end: ChannelEnd = { exited: false, code: null };
        channelEnds.set(channel, end);
        channel.on('exit', (code: number | null) => {
          end.exited = true;
          end.code = typeof code === 'number' ? code : null;
        });
        channel.on('error', (channelError: Error) => (end.error = channelError));
        resolve(channel);
      });
    } catch (error) {
      // 'Not connected' is thrown, not passed to the callback.
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/**
 * The line sent to sshd, which runs it with the user's login shell (bash, zsh, fish, csh…): hand it all
 * to sh at once. Each `exec` keeps one process, so `$$` is the pid of `timeout`, the session's process.
 */
function remoteLine(line: string, seconds: number): string {
  return `exec sh -c ${shellQuote(`echo "graceroll-pid $$" >&2; exec ${wrapWithTimeout(line, seconds)}`)}`;
}

/** Resolves to null when stopped first; the promise itself keeps running. */
function untilStopped<T>(promise: Promise<T>, stop: AbortSignal): Promise<T | null> {
  if (stop.aborted) return Promise.resolve(null);
  return new Promise<T | null>((resolve, reject) => {
    const onStop = (): void => resolve(null);
    stop.addEventListener('abort', onStop, { once: true });
    promise.then(
      (value) => {
        stop.removeEventListener('abort', onStop);
        resolve(value);
      },
      (error: Error) => {
        stop.removeEventListener('abort', onStop);
        reject(error);
      },
    );
  });
}

function preferKnownTypes(known: string[]): ServerHostKeyAlgorithm[] {
  const wanted = new Set<string>(
    known.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])),
  );
  const first = HOST_KEY_ALGORITHMS.filter((a) => wanted.has(a));
  return [...first, ...HOST_KEY_ALGORITHMS.filter((a) => !wanted.has(a))];
}

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? homedir() + path.slice(1) : path;
}

/** A FIFO of session slots; a waiter that is stopped leaves the queue without taking a slot. */
class SessionSlots {
  private readonly waiters: Array<() => void> = [];

  constructor(private free: number) {}

  acquire(stop: AbortSignal): Promise<(() => void) | null> {
    if (stop.aborted) return Promise.resolve(null);
    if (this.free > 0) {
      this.free--;
      return Promise.resolve(this.releaser());
    }
    return new Promise((resolve) => {
      const waiter = (): void => {
        stop.removeEventListener('abort', onStop);
        resolve(this.releaser());
      };
      const onStop = (): void => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        resolve(null);
      };
      this.waiters.push(waiter);
      stop.addEventListener('abort', onStop, { once: true });
    });
  }

  private releaser(): () => void {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      if (next) next();
      else this.free++;
    };
  }
}

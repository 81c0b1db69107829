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
import { commandLine, wrapWithTimeout } from './quote.js';
import type { ExecOptions, ExecResult, Transport } from './types.js';

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
  /** An already-open stream to the SSH server, e.g. a `forwardOut` channel through a jump host. */
  sock?: Duplex;
  onWarning?: (message: string) => void;
}

type Stop = Pick<ExecResult, 'failure' | 'reason'>;
type Attempt = { client: Client } | { reason: string };

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
/** How long to wait for the server to confirm a cancelled channel closed before giving up on it. */
const CLOSE_WAIT_MS = 2000;

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
  let warnedOff = false;

  /** The live connection, or one new attempt shared by everyone asking meanwhile. */
  function connection(): Promise<Attempt> {
    if (closed) return Promise.resolve({ reason: `connection to ${where} was closed` });
    if (client) return Promise.resolve({ client });
    connecting ??= openConnection().then((attempt) => {
      connecting = null;
      if ('client' in attempt) {
        const current = attempt.client;
        client = current;
        // A dropped connection is noticed here; the next exec connects again.
        current.on('close', () => {
          if (client === current) client = null;
        });
        if (closed) current.end();
      }
      return attempt;
    });
    return connecting;
  }

  async function openConnection(): Promise<Attempt> {
    const config: ConnectConfig = {
      host: opts.host,
      port,
      username: opts.user,
      agent: opts.agent,
      passphrase: opts.passphrase,
      sock: opts.sock,
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
      if (!warnedOff) opts.onWarning?.(`host key checking is off for ${where}: the connection is not protected against a man in the middle`); // prettier-ignore
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

    return new Promise<Attempt>((resolve) => {
      const candidate = new ssh2.Client();
      let settled = false;
      const settle = (attempt: Attempt): void => {
        if (settled) return;
        settled = true;
        if ('reason' in attempt) candidate.end();
        resolve(attempt);
      };
      // `on`, not `once`: one failure can emit two errors, and an unheard one crashes the process.
      candidate.on('error', (error) => settle({ reason: refusal ?? describeConnectError(error) }));
      candidate.on('close', () => settle({ reason: refusal ?? `connection to ${where} closed during login` }));
      candidate.on('ready', () => settle({ client: candidate }));
      try {
        candidate.connect(config);
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
        return `host key for ${where} changed: expected ${check.expectedFingerprint}, got ${check.actualFingerprint} — if the change is expected, remove the old entry from ${path} (line ${check.line}), e.g. with ssh-keygen -R`; // prettier-ignore
      case 'unknown':
        if (check.otherKeyTypes.length > 0) {
          return `host key for ${where} is ${actual}, but ${path} only has ${check.otherKeyTypes.join(', ')} keys for it: refusing a key of a new type; if it is expected, add it with ssh-keyscan`; // prettier-ignore
        }
        if (opts.hostKeyPolicy === 'strict') {
          return `host key for ${where} (${actual}) is not in ${path}; accept it with hostKeyPolicy: accept-new or add it with ssh-keyscan -p ${port} ${opts.host} >> ${path}`; // prettier-ignore
        }
        await appendKnownHost(path, opts.host, port, algo, key);
        opts.onWarning?.(`added the host key for ${where} (${actual}) to ${path}`);
        return true;
    }
  }

  function describeConnectError(error: Error & { level?: string; code?: string }): string {
    if (error.level === 'client-authentication') {
      const offered = [opts.privateKeyPath && `key ${opts.privateKeyPath}`, opts.agent && 'agent'].filter(Boolean);
      return `authentication failed for ${opts.user}@${where} (offered: ${offered.join(', ') || 'nothing'})`;
    }
    if (error.level === 'client-timeout') {
      return `timed out connecting to ${where} after ${opts.connectTimeoutMs ?? 20_000} ms`;
    }
    if (error.code === 'ECONNREFUSED') return `connection to ${where} refused: is sshd listening on port ${port}?`;
    return `cannot connect to ${where}: ${error.message}`;
  }

  function describeKeyError(error: Error): string {
    const path = opts.privateKeyPath ?? 'the private key';
    if (/no passphrase/i.test(error.message)) {
      return `private key ${path} for ${where} is encrypted: give its passphrase or use an ssh-agent`;
    }
    return `cannot use private key ${path} for ${where}: ${error.message}`;
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
        // Stopped while the server was opening the channel: the command may start anyway, so stop it.
        opening.then((late) => stopChannel(late), () => {});
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
    const timer = setTimeout(() => stop.abort('timeout'), timeoutMs);
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
        const channel = await openChannel(wrapWithTimeout(line, remoteSeconds), stop.signal);
        if (typeof channel === 'string') {
          const failure: Stop = stop.signal.aborted ? stopped() : { failure: 'transport', reason: channel };
          return { code: null, stdout: '', stderr: '', ...failure };
        }
        return await runChannel(channel, options.stdin, stop.signal, stopped);
      } finally {
        release();
      }
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
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
      let code: number | null = null;
      let exited = false;
      let channelError: Error | undefined;
      let closeTimer: NodeJS.Timeout | undefined;
      let settled = false;
      const finish = (result: Pick<ExecResult, 'code' | 'failure' | 'reason'>): void => {
        if (settled) return;
        settled = true;
        clearTimeout(closeTimer);
        stop.removeEventListener('abort', onStop);
        resolve({ ...result, stdout: stdout.text(), stderr: stderr.text() });
      };
      const onStop = (): void => {
        stopChannel(channel);
        closeTimer = setTimeout(() => finish({ code: null, ...stopped() }), CLOSE_WAIT_MS);
      };
      channel.on('data', (chunk: Buffer) => stdout.push(chunk));
      channel.stderr.on('data', (chunk: Buffer) => stderr.push(chunk));
      channel.on('exit', (exitCode: number | null) => {
        exited = true;
        code = typeof exitCode === 'number' ? exitCode : null;
      });
      channel.on('error', (error: Error) => (channelError = error));
      channel.on('close', () => {
        if (stop.aborted) finish({ code: null, ...stopped() });
        else if (exited) finish({ code });
        else {
          const why = channelError ? `: ${channelError.message}` : '';
          finish({ code: null, failure: 'transport', reason: `connection to ${where} lost while the command ran${why}` }); // prettier-ignore
        }
      });
      stop.addEventListener('abort', onStop, { once: true });
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

function execChannel(client: Client, line: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(line, (error, channel) => (error ? reject(error) : resolve(channel)));
    } catch (error) {
      reject(error as Error); // 'Not connected' is thrown, not passed to the callback
    }
  });
}

/** Tells the remote `timeout` to kill its group now: closing the channel alone leaves the command running. */
function stopChannel(channel: ClientChannel): void {
  sendSignal(channel, 'TERM');
  channel.close();
}

/**
 * Sends an SSH "signal" request (RFC 4254 6.9; sshd supports it since OpenSSH 7.9). ssh2's
 * Channel.signal() does nothing once stdin has been ended, because it checks `writable`
 * (lib/Channel.js), and we end stdin at once; the protocol method has no such check.
 */
function sendSignal(channel: ClientChannel, name: string): void {
  const internal = channel as unknown as {
    outgoing?: { id: number; state: string };
    _client?: { _protocol?: { signal?: (id: number, signal: string) => void } };
  };
  const protocol = internal._client?._protocol;
  const out = internal.outgoing;
  if (out && (out.state === 'open' || out.state === 'eof') && typeof protocol?.signal === 'function') {
    protocol.signal(out.id, name);
  } else {
    channel.signal(name);
  }
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
  const wanted = new Set<string>(known.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])));
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

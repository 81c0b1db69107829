import type { Duplex } from 'node:stream';
import type { Client, ClientChannel } from 'ssh2';
import { sshConnector, type SshLogin, type SshTransportOptions } from './ssh.js';
import type { ExecResult, Transport } from './types.js';

/** One jump host on the way to a node (ProxyJump / `ssh -J`), already resolved through the ssh config. */
export interface JumpHop {
  /** As written in the jump spec or ProxyJump, for messages. */
  name: string;
  host: string;
  port: number;
  user: string;
  privateKeyPath?: string;
}

/** What every jump host login shares with the nodes' logins: known_hosts, policy, agent, timeouts. */
export type JumpPoolOptions = Pick<
  SshTransportOptions,
  'knownHostsPath' | 'hostKeyPolicy' | 'agent' | 'passphrase' | 'connectTimeoutMs' | 'onWarning'
> & {
  /** How long a jump connection no node uses stays open, so a quick reconnect reuses it (default 2 s). */
  idleMs?: number;
};

export interface JumpPool {
  /**
   * A stream to host:port through the chain (first hop first), for SshTransportOptions.sock. Each hop's
   * connection is opened once and shared by every node behind it; a dropped one is opened again on the
   * next call. Rejects with a message naming the hop that failed.
   */
  stream(chain: readonly JumpHop[], host: string, port: number): Promise<Duplex>;
  /** Jump connections open now (all hops of all chains). */
  openConnections(): number;
  close(): Promise<void>;
}

interface HopConnection {
  label: string;
  login: Promise<Client>;
  client?: Client;
  /** Channels open through this connection: nodes' connections and the next hops'. */
  users: number;
  idle?: NodeJS.Timeout;
}

const CLOSE_WAIT_MS = 2000;

/**
 * Jump hosts, which ssh2 lacks (docs/STACK.md): each hop is its own ssh2 Client whose socket is a
 * `forwardOut` channel of the previous hop, logged in by the same code as a node (sshConnector), so the
 * host key of every hop is checked against known_hosts and refused by name when unknown or changed.
 */
export function createJumpPool(options: JumpPoolOptions): JumpPool {
  const hops = new Map<string, HopConnection>();
  const connectors = new Map<string, () => Promise<SshLogin>>();
  let closed = false;

  const keyOf = (chain: readonly JumpHop[], index: number): string =>
    JSON.stringify(chain.slice(0, index + 1).map((h) => [h.user, h.host, h.port, h.privateKeyPath ?? null]));

  function hop(chain: readonly JumpHop[], index: number): HopConnection {
    const key = keyOf(chain, index);
    const existing = hops.get(key);
    if (existing) return existing;
    const { name, host, port } = chain[index];
    const label = `jump host ${name} (${host}:${port})`;
    const connection = { label, users: 0 } as HopConnection;
    connection.login = login(chain, index, key, connection);
    // A failed login is forgotten, so the next node (or the next reconnect) tries again.
    connection.login.catch(() => forget(key, connection));
    hops.set(key, connection);
    return connection;
  }

  async function login(
    chain: readonly JumpHop[],
    index: number,
    key: string,
    connection: HopConnection,
  ): Promise<Client> {
    const target = chain[index];
    let connect = connectors.get(key);
    if (!connect) {
      // One connector per hop, kept across reconnects: it warns once about hostKeyPolicy off.
      connect = sshConnector({
        ...options,
        node: `jump host ${target.name}`,
        host: target.host,
        port: target.port,
        user: target.user,
        privateKeyPath: target.privateKeyPath,
        sock: index === 0 ? undefined : () => stream(chain.slice(0, index), target.host, target.port),
      });
      connectors.set(key, connect);
    }
    const attempt = await connect();
    if ('reason' in attempt) throw new Error(attempt.reason);
    const client = attempt.client;
    if (closed) {
      client.end();
      throw new Error(`${connection.label}: the connection pool was closed`);
    }
    connection.client = client;
    client.on('close', () => forget(key, connection));
    return client;
  }

  function forget(key: string, connection: HopConnection): void {
    clearTimeout(connection.idle);
    if (hops.get(key) === connection) hops.delete(key);
  }

  function release(key: string, connection: HopConnection): void {
    connection.users--;
    if (connection.users > 0) return;
    clearTimeout(connection.idle);
    connection.idle = setTimeout(() => {
      if (connection.users > 0) return;
      forget(key, connection);
      connection.client?.end();
    }, options.idleMs ?? 2000);
    connection.idle.unref();
  }

  async function stream(chain: readonly JumpHop[], host: string, port: number): Promise<Duplex> {
    if (closed) throw new Error('the jump host connections were closed');
    if (chain.length === 0) throw new Error('no jump host given');
    const last = chain.length - 1;
    for (let attempt = 1; ; attempt++) {
      const key = keyOf(chain, last);
      const connection = hop(chain, last);
      const wasUp = connection.client !== undefined;
      // Counted before the login completes, so a concurrent idle timer cannot close it under us.
      connection.users++;
      clearTimeout(connection.idle);
      let channel: ClientChannel;
      try {
        const client = await connection.login;
        channel = await forwardOut(client, host, port, connection.label, options.connectTimeoutMs ?? 20_000);
      } catch (error) {
        release(key, connection);
        const message = (error as Error).message;
        // The connection died before its 'close' arrived: nothing was opened, so one new login is safe.
        if (wasUp && attempt === 1 && /not connected|no response/i.test(message)) {
          forget(key, connection);
          connection.client?.end();
          continue;
        }
        throw error;
      }
      channel.once('close', () => release(key, connection));
      return channel;
    }
  }

  return {
    stream,
    openConnections: () => [...hops.values()].filter((h) => h.client).length,
    async close() {
      closed = true;
      const all = [...hops.values()];
      hops.clear();
      await Promise.all(
        all.map(async (connection) => {
          clearTimeout(connection.idle);
          const client = await connection.login.catch(() => undefined);
          if (!client) return;
          await new Promise<void>((resolve) => {
            client.once('close', () => resolve());
            client.end();
            setTimeout(resolve, CLOSE_WAIT_MS).unref();
          });
        }),
      );
    },
  };
}

/** A direct-tcpip channel from the jump host to host:port, with a deadline (ssh2 has none for it). */
function forwardOut(
  client: Client,
  host: string,
  port: number,
  label: string,
  timeoutMs: number,
): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    let done = false;
    const timer = setTimeout(() => {
      done = true;
      reject(new Error(`${label} did not open a connection to ${host}:${port} within ${timeoutMs} ms`));
    }, timeoutMs);
    try {
      client.forwardOut('127.0.0.1', 0, host, port, (error, channel) => {
        if (done) {
          channel?.close(); // too late: nobody is waiting for it
          return;
        }
        done = true;
        clearTimeout(timer);
        if (error)
          reject(new Error(`${label} cannot open a connection to ${host}:${port}: ${error.message}`));
        else resolve(channel);
      });
    } catch (error) {
      // 'Not connected' is thrown, not passed to the callback.
      done = true;
      clearTimeout(timer);
      reject(new Error(`${label}: ${(error as Error).message}`));
    }
  });
}

/**
 * A transport whose options are only known after asynchronous work (the ssh config lookup, which may run
 * `ssh -G` and its `Match exec` commands): built on first use, not when the fleet is loaded, so a dry run
 * runs nothing. A failed build is a transport failure for that call and is tried again on the next one.
 */
export function createDeferredTransport(node: string, build: () => Promise<Transport>): Transport {
  let inner: Transport | undefined;
  let building: Promise<Transport | string> | undefined;
  let closed = false;

  function get(): Promise<Transport | string> {
    if (closed) return Promise.resolve(`connection to ${node} was closed`);
    if (inner) return Promise.resolve(inner);
    building ??= build().then(
      (transport) => {
        building = undefined;
        if (closed) {
          void transport.close();
          return `connection to ${node} was closed`;
        }
        return (inner = transport);
      },
      (error: Error) => {
        building = undefined;
        return `${node}: ${error.message}`;
      },
    );
    return building;
  }

  return {
    node,
    async connect(signal) {
      const transport = await untilAborted(get(), signal);
      if (transport === null) return { ok: false, reason: `connecting to ${node} was cancelled` };
      if (typeof transport === 'string') return { ok: false, reason: transport };
      return transport.connect(signal);
    },
    async exec(command, options): Promise<ExecResult> {
      const started = Date.now();
      const transport = await untilAborted(get(), options.signal);
      if (transport === null)
        return { code: null, stdout: '', stderr: '', failure: 'aborted', reason: 'cancelled' };
      if (typeof transport === 'string')
        return { code: null, stdout: '', stderr: '', failure: 'transport', reason: transport };
      // The lookup counts against the command's deadline.
      const timeoutMs = Math.max(1, options.timeoutMs - (Date.now() - started));
      return transport.exec(command, { ...options, timeoutMs });
    },
    async close() {
      closed = true;
      if (building) await building;
      await inner?.close();
    },
  };
}

function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | null> {
  if (signal.aborted) return Promise.resolve(null);
  return new Promise((resolve) => {
    const onAbort = (): void => resolve(null);
    signal.addEventListener('abort', onAbort, { once: true });
    void promise.then((value) => {
      signal.removeEventListener('abort', onAbort);
      resolve(value);
    });
  });
}

import { connect } from 'node:net';
import { fail, type Result } from '../outcome.js';
import type { Transport } from '../transport/types.js';
import { timerMs } from '../config/duration.js';

/** Sends one line to HAProxy's runtime API (management guide, section 9.3) and returns its answer. */
export type RuntimeApi = (command: string, signal: AbortSignal) => Promise<Result<string>>;

/** A unix socket path or `tcp:host:port` on this machine. */
export function directRuntimeApi(address: string, timeoutMs: number): RuntimeApi {
  return (command, signal) =>
    new Promise((resolve) => {
      const tcp = /^tcp:(.+):(\d+)$/.exec(address);
      const socket = tcp ? connect({ host: tcp[1], port: Number(tcp[2]) }) : connect({ path: address });
      const chunks: Buffer[] = [];
      let settled = false;
      const finish = (result: Result<string>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        socket.destroy();
        resolve(result);
      };
      const onAbort = () => finish(fail(`haproxy ${address}: cancelled`));
      const timer = setTimeout(
        () => finish(fail(`haproxy ${address}: no answer within ${timeoutMs}ms`)),
        timerMs(timeoutMs),
      );
      signal.addEventListener('abort', onAbort, { once: true });
      socket.on('connect', () => socket.end(`${command}\n`));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', (error) => finish(fail(`haproxy runtime API at ${address}: ${error.message}`)));
      // In non-interactive mode HAProxy answers and closes the connection.
      socket.on('close', () => finish({ ok: true, value: Buffer.concat(chunks).toString('utf8') }));
      if (signal.aborted) onAbort();
    });
}

/** A unix socket on the load balancer host, reached over that host's transport with socat. */
export function remoteRuntimeApi(transport: Transport, path: string, timeoutMs: number): RuntimeApi {
  return async (command, signal) => {
    const result = await transport.exec(
      { argv: ['socat', '-t', String(Math.ceil(timeoutMs / 1000)), 'stdio', `UNIX-CONNECT:${path}`] },
      { signal, timeoutMs, stdin: `${command}\n` },
    );
    if (result.failure) return fail(`haproxy ${transport.node}:${path}: ${result.reason ?? result.failure}`);
    if (result.code !== 0)
      return fail(`socat to ${transport.node}:${path} exited ${result.code}: ${result.stderr.trim()}`);
    return { ok: true, value: result.stdout };
  };
}

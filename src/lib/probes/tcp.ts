import { connect } from 'node:net';
import { fail, OK, type Outcome } from '../outcome.js';
import { timerMs } from '../config/duration.js';

export function tcpProbe(
  host: string,
  port: number,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket = connect({
      host,
      port,
      signal: AbortSignal.any([signal, AbortSignal.timeout(timerMs(timeoutMs))]),
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve(OK);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      socket.destroy();
      resolve(
        fail(
          `tcp ${host}:${port}: ${error.name === 'AbortError' ? `no connection within ${timeoutMs}ms` : (error.code ?? error.message)}`,
        ),
      );
    });
  });
}

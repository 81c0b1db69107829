// A short command on a busy machine: ssh2 can parse the exit-status in the same read as the channel's
// open confirmation, so 'exit' is emitted before the transport's own code runs again. The transport must
// still see it (seen in the lab under CPU load as "connection lost while the command ran").
import { describe, expect, it, vi } from 'vitest';

vi.mock('ssh2', async () => {
  // Inside the factory: vi.mock is hoisted above the imports.
  const { EventEmitter } = await import('node:events');
  class FakeChannel extends EventEmitter {
    stderr = new EventEmitter();
    end(): void {}
    close(): void {}
  }
  class Client extends EventEmitter {
    setNoDelay(): this {
      return this;
    }
    connect(): void {
      setImmediate(() => this.emit('ready'));
    }
    exec(line: string, callback: (error: Error | undefined, channel: FakeChannel) => void): void {
      const code = Number(/exit-with (\d+)/.exec(line)?.[1] ?? 0);
      setImmediate(() => {
        const channel = new FakeChannel();
        callback(undefined, channel);
        // Same read as the confirmation: the exit status comes before anyone awaited the channel.
        channel.emit('exit', code);
        setImmediate(() => {
          channel.emit('data', Buffer.from('out\n'));
          channel.emit('close');
        });
      });
    }
    end(): void {
      setImmediate(() => this.emit('close'));
    }
  }
  return { default: { Client }, Client };
});

const { createSshTransport } = await import('../../src/lib/transport/ssh.js');

describe('ssh transport: an exit status that comes with the channel confirmation', () => {
  const transport = () =>
    createSshTransport({
      node: 'web1',
      host: '192.0.2.1',
      user: 'root',
      knownHostsPath: '/nonexistent',
      hostKeyPolicy: 'off',
      onWarning: () => {},
    });

  it.each([0, 3])('is not lost (exit %i)', async (code) => {
    const t = transport();
    const result = await t.exec(
      { argv: ['sh', '-c', `echo out; exit-with ${code}`] },
      { signal: new AbortController().signal, timeoutMs: 5000 },
    );
    expect(result).toEqual({ code, stdout: 'out\n', stderr: '' });
    await t.close();
  });
});

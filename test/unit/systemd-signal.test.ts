// `systemctl kill` across systemd versions: 252 renamed --kill-who= to --kill-whom=, and older
// systemctl rejects the new name, so the graceful signal would never be sent on e.g. Ubuntu 22.04.
import { describe, expect, it } from 'vitest';
import { createSystemdManager } from '../../src/lib/service/systemd.js';
import { commandLine } from '../../src/lib/transport/quote.js';
import type { ExecResult, RemoteCommand, Transport } from '../../src/lib/transport/types.js';

/** A node whose systemctl knows only `knows` (kill-who before 252, kill-whom since). */
function systemctlNode(knows: 'kill-who' | 'kill-whom', failure?: string) {
  const lines: string[] = [];
  const transport: Transport = {
    node: 'web1',
    connect: () => Promise.resolve({ ok: true }),
    close: () => Promise.resolve(),
    exec: (command: RemoteCommand): Promise<ExecResult> => {
      lines.push(commandLine(command));
      const argv = 'argv' in command ? command.argv : [];
      const option = argv.find((a) => a.startsWith('--kill-who'))!;
      const name = option.slice(2, option.indexOf('='));
      if (name !== knows)
        return Promise.resolve({
          code: 1,
          stdout: '',
          stderr: `systemctl: unrecognized option '${option}'\n`,
        });
      if (failure) return Promise.resolve({ code: 1, stdout: '', stderr: `${failure}\n` });
      return Promise.resolve({ code: 0, stdout: '', stderr: '' });
    },
  };
  return { transport, lines };
}

const manager = createSystemdManager({
  type: 'systemd',
  unit: 'web.service',
  signal: 'USR1',
  killWhom: 'main',
  sudo: false,
});
const ctx = (transport: Transport) => ({
  transport,
  node: { name: 'web1', host: 'web1', lbServer: 'web1', vars: {} },
  signal: new AbortController().signal,
  timeoutMs: 1000,
});

describe('systemd sendSignal', () => {
  it('uses --kill-whom= where systemctl knows it (252 and later)', async () => {
    const node = systemctlNode('kill-whom');
    expect(await manager.sendSignal(ctx(node.transport), 'USR1')).toEqual({ ok: true });
    expect(node.lines).toEqual(['systemctl kill --signal=SIGUSR1 --kill-whom=main web.service']);
  });

  it('says it again with --kill-who= to a systemctl older than 252', async () => {
    const node = systemctlNode('kill-who');
    expect(await manager.sendSignal(ctx(node.transport), 'USR1')).toEqual({ ok: true });
    expect(node.lines).toEqual([
      'systemctl kill --signal=SIGUSR1 --kill-whom=main web.service',
      'systemctl kill --signal=SIGUSR1 --kill-who=main web.service',
    ]);
  });

  it('does not retry a real failure', async () => {
    const node = systemctlNode('kill-whom', 'Failed to kill unit web.service: Unit web.service not loaded.');
    const outcome = await manager.sendSignal(ctx(node.transport), 'USR1');
    expect(outcome).toMatchObject({ ok: false, reason: expect.stringMatching(/not loaded/) });
    expect(node.lines).toHaveLength(1);
  });
});

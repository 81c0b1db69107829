import type { FleetNode, ServiceConfig } from '../config/types.js';
import type { SignalName } from '../config/fields.js';
import { fail, type Outcome, type Result } from '../outcome.js';
import { fillShell, nodeValues } from '../template.js';
import { runCommand } from './run-command.js';
import type {
  ProcessIdentity,
  ServiceCommands,
  ServiceContext,
  ServiceManager,
  ServiceState,
} from './types.js';

type CommandConfig = Extract<ServiceConfig, { type: 'command' }>;

/**
 * Start time of a process from /proc/PID/stat field 22 (proc(5)). The command name in field 2 may hold
 * spaces and parentheses, so fields are counted from the last ')'.
 */
export function startTimeFromStat(stat: string): string | undefined {
  const close = stat.lastIndexOf(')');
  if (close < 0) return undefined;
  const fields = stat
    .slice(close + 2)
    .trim()
    .split(/\s+/);
  // After ')' come field 3 (state) onward; field 22 is at index 22 - 3. A zombie (Z) or dead (X)
  // process has exited even though its /proc entry lingers until it is reaped.
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
  return fields[19];
}

export function createCommandManager(config: CommandConfig): ServiceManager {
  const commands = (node: FleetNode): ServiceCommands => ({
    status: { shell: fillShell(config.status, nodeValues(node)) },
    signal: (signal: SignalName) => ({
      shell: fillShell(config.kill, nodeValues(node, { signal, pid: '<pid>' })),
    }),
    restart: { shell: fillShell(config.restart, nodeValues(node)) },
  });

  const status = async (ctx: ServiceContext): Promise<Result<ServiceState>> => {
    const result = await ctx.transport.exec(commands(ctx.node).status, {
      signal: ctx.signal,
      timeoutMs: ctx.timeoutMs,
    });
    if (result.failure) return fail(`status command: ${result.reason ?? result.failure}`);
    const pidText = result.stdout.trim().split(/\s+/)[0] ?? '';
    if (result.code !== 0 || pidText === '')
      return { ok: true, value: { running: false, detail: 'not running' } };
    if (!/^\d+$/.test(pidText))
      return fail(`status command printed ${JSON.stringify(pidText)}, expected a PID`);
    const stat = await ctx.transport.exec(
      { argv: ['cat', `/proc/${pidText}/stat`] },
      { signal: ctx.signal, timeoutMs: ctx.timeoutMs },
    );
    if (stat.failure) return fail(`reading /proc/${pidText}/stat: ${stat.reason ?? stat.failure}`);
    const startTime = stat.code === 0 ? startTimeFromStat(stat.stdout) : undefined;
    if (!startTime) return { ok: true, value: { running: false, detail: `pid ${pidText} is gone` } };
    return {
      ok: true,
      value: { running: true, identity: { pid: Number(pidText), startTime }, detail: `pid ${pidText}` },
    };
  };

  return {
    commands,
    status,
    async sendSignal(ctx: ServiceContext, signal: SignalName, identity?: ProcessIdentity): Promise<Outcome> {
      let pid = identity?.pid;
      if (pid === undefined) {
        const state = await status(ctx);
        if (!state.ok) return state;
        if (!state.value.running) return fail('the service is not running');
        pid = state.value.identity.pid;
      }
      const command = { shell: fillShell(config.kill, nodeValues(ctx.node, { signal, pid })) };
      return (await runCommand(ctx.transport, command, ctx.signal, ctx.timeoutMs)).outcome;
    },
    async restart(ctx: ServiceContext): Promise<Outcome> {
      return (await runCommand(ctx.transport, commands(ctx.node).restart, ctx.signal, ctx.timeoutMs)).outcome;
    },
  };
}

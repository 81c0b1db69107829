import type { FleetNode, ServiceConfig } from '../config/types.js';
import type { SignalName } from '../config/fields.js';
import { fail, type Outcome, type Result } from '../outcome.js';
import type { RemoteCommand } from '../transport/types.js';
import { runCommand } from './run-command.js';
import type {
  ProcessIdentity,
  ServiceCommands,
  ServiceContext,
  ServiceManager,
  ServiceState,
} from './types.js';

type SystemdConfig = Extract<ServiceConfig, { type: 'systemd' }>;

/** Properties read with `systemctl show` (systemd.exec(5), org.freedesktop.systemd1(5)). */
const PROPERTIES = ['ActiveState', 'SubState', 'MainPID', 'ExecMainStartTimestampMonotonic'];

/** What systemctl older than 252 says to --kill-whom= (getopt_long). */
const OLD_SYSTEMCTL = /unrecognized option '?--kill-whom/;

/** The same `systemctl kill` with --kill-who=, the option's name before systemd 252. */
export function legacySignal(command: RemoteCommand): RemoteCommand {
  if (!('argv' in command)) return command;
  return { argv: command.argv.map((arg) => arg.replace(/^--kill-whom=/, '--kill-who=')) };
}

export function parseSystemctlShow(text: string): Record<string, string> {
  const props: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) props[line.slice(0, eq)] = line.slice(eq + 1).trim();
  }
  return props;
}

export function serviceStateFromShow(props: Record<string, string>): ServiceState {
  const pid = Number(props.MainPID ?? 0);
  const detail = `${props.ActiveState ?? '?'}/${props.SubState ?? '?'}`;
  // A unit that is deactivating still has its main process: for drain purposes it is still running.
  if (pid > 0 && props.ActiveState !== 'inactive' && props.ActiveState !== 'failed') {
    return {
      running: true,
      identity: { pid, startTime: props.ExecMainStartTimestampMonotonic ?? '' },
      detail: `${detail} pid ${pid}`,
    };
  }
  return { running: false, detail };
}

export function createSystemdManager(config: SystemdConfig): ServiceManager {
  const systemctl = (...args: string[]): RemoteCommand => ({
    argv: config.sudo ? ['sudo', '-n', 'systemctl', ...args] : ['systemctl', ...args],
  });
  const commands = (_node: FleetNode): ServiceCommands => ({
    status: systemctl('show', ...PROPERTIES.map((p) => `--property=${p}`), config.unit),
    signal: (signal: SignalName) =>
      systemctl('kill', `--signal=SIG${signal}`, `--kill-whom=${config.killWhom}`, config.unit),
    restart: systemctl('restart', config.unit),
  });

  return {
    commands,
    async status(ctx: ServiceContext): Promise<Result<ServiceState>> {
      const result = await runCommand(ctx.transport, commands(ctx.node).status, ctx.signal, ctx.timeoutMs);
      if (!result.outcome.ok) return result.outcome;
      const props = parseSystemctlShow(result.stdout);
      if (props.ActiveState === undefined)
        return fail(`systemctl show ${config.unit} printed no ActiveState`);
      return { ok: true, value: serviceStateFromShow(props) };
    },
    async sendSignal(ctx: ServiceContext, signal: SignalName, _identity?: ProcessIdentity): Promise<Outcome> {
      // systemd targets the unit's current main process itself, so no PID from us can go stale here.
      const result = await runCommand(
        ctx.transport,
        commands(ctx.node).signal(signal),
        ctx.signal,
        ctx.timeoutMs,
      );
      if (result.outcome.ok || !OLD_SYSTEMCTL.test(result.stderr)) return result.outcome;
      // systemd before 252 only knows --kill-who= (252 renamed it): nothing was signalled, so say it again.
      return (
        await runCommand(
          ctx.transport,
          legacySignal(commands(ctx.node).signal(signal)),
          ctx.signal,
          ctx.timeoutMs,
        )
      ).outcome;
    },
    async restart(ctx: ServiceContext): Promise<Outcome> {
      return (await runCommand(ctx.transport, commands(ctx.node).restart, ctx.signal, ctx.timeoutMs)).outcome;
    },
  };
}

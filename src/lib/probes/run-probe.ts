import type { DrainProbe, FleetNode, HealthProbe } from '../config/types.js';
import { fail, OK, type Outcome } from '../outcome.js';
import { runCommand } from '../service/run-command.js';
import { fillShell, fillUrl, nodeValues } from '../template.js';
import { commandLine } from '../transport/quote.js';
import type { RemoteCommand } from '../transport/types.js';
import { httpProbe } from './http.js';
import { tcpProbe } from './tcp.js';
import type { ProbeContext } from './types.js';

export type Probe = DrainProbe | HealthProbe;

export const connectionsCommand = (port: number): RemoteCommand => ({
  argv: ['ss', '-Htn', 'state', 'established', 'sport', '=', `:${port}`],
});

/** What a probe checks, in words and with its exact command (pure; for the plan). */
export function describeProbe(probe: Probe, node: FleetNode): string {
  switch (probe.type) {
    case 'http':
      return `${probe.method} ${fillUrl(probe.url, nodeValues(node))} → ${[probe.expectStatus].flat().join('|')}${probe.json ? `, ${probe.json.path} = ${JSON.stringify(probe.json.equals)}` : ''}${probe.bodyContains ? `, body contains ${JSON.stringify(probe.bodyContains)}` : ''}`;
    case 'tcp':
      return `tcp connect ${probe.host ? fillUrl(probe.host, nodeValues(node)) : node.host}:${probe.port}`;
    case 'socket-file':
      return `${probe.path} ${probe.state} (test -e ${probe.path})`;
    case 'connections':
      return `no established connections on port ${probe.port} (${commandLine(connectionsCommand(probe.port))})`;
    case 'process-exited':
      return 'the signalled process has exited (PID + start time)';
    case 'lb-sessions':
      return 'load balancer reports 0 sessions';
    case 'command':
      return `command exits 0: ${fillShell(probe.command, nodeValues(node))}`;
  }
}

export async function runProbe(probe: Probe, ctx: ProbeContext): Promise<Outcome> {
  const exec = (command: RemoteCommand, timeoutMs = ctx.commandTimeoutMs) =>
    ctx.transport.exec(command, { signal: ctx.signal, timeoutMs });
  switch (probe.type) {
    case 'http':
      return httpProbe(probe, fillUrl(probe.url, nodeValues(ctx.node)), ctx.signal);
    case 'tcp':
      return tcpProbe(
        probe.host ? fillUrl(probe.host, nodeValues(ctx.node)) : ctx.node.host,
        probe.port,
        probe.timeout,
        ctx.signal,
      );
    case 'socket-file': {
      const result = await exec({ argv: ['test', '-e', probe.path] });
      if (result.failure) return fail(`checking ${probe.path}: ${result.reason ?? result.failure}`);
      const present = result.code === 0;
      return present === (probe.state === 'present')
        ? OK
        : fail(`${probe.path} is ${present ? 'still there' : 'absent'}`);
    }
    case 'connections': {
      const result = await runCommand(
        ctx.transport,
        connectionsCommand(probe.port),
        ctx.signal,
        ctx.commandTimeoutMs,
      );
      if (!result.outcome.ok) return result.outcome;
      const count = result.stdout.split('\n').filter((line) => line.trim()).length;
      return count === 0
        ? OK
        : fail(`${count} established connection${count > 1 ? 's' : ''} on port ${probe.port}`);
    }
    case 'process-exited': {
      if (!ctx.oldIdentity) return fail('no signalled process to watch');
      const state = await ctx.service.status({
        transport: ctx.transport,
        node: ctx.node,
        signal: ctx.signal,
        timeoutMs: ctx.commandTimeoutMs,
      });
      if (!state.ok) return state;
      if (!state.value.running) return OK;
      const now = state.value.identity;
      const same = now.pid === ctx.oldIdentity.pid && now.startTime === ctx.oldIdentity.startTime;
      return same ? fail(`pid ${now.pid} still running`) : OK;
    }
    case 'lb-sessions': {
      const state = await ctx.lb.state(ctx.node, ctx.signal);
      if (!state.ok) return state;
      if (state.value.sessions === undefined)
        return fail(`the ${ctx.lb.type} load balancer reports no session count`);
      return state.value.sessions === 0 ? OK : fail(`${state.value.sessions} sessions in the load balancer`);
    }
    case 'command':
      return (
        await runCommand(
          ctx.transport,
          { shell: fillShell(probe.command, nodeValues(ctx.node)) },
          ctx.signal,
          probe.timeout,
        )
      ).outcome;
  }
}

/** Runs every probe; passes when all pass, else names every one still failing. */
export async function runProbes(probes: readonly Probe[], ctx: ProbeContext): Promise<Outcome> {
  const results = await Promise.all(probes.map((probe) => runProbe(probe, ctx)));
  const failing = results.filter((r): r is { ok: false; reason: string } => !r.ok).map((r) => r.reason);
  return failing.length ? fail(failing.join('; ')) : OK;
}

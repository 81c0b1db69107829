import { commandLine } from '../transport/quote.js';
import type { ExecResult, RemoteCommand, Transport } from '../transport/types.js';
import type { Outcome } from '../outcome.js';

/** Runs a command and turns a failure into a reason that names the command and what it printed. */
export async function runCommand(
  transport: Transport,
  command: RemoteCommand,
  signal: AbortSignal,
  timeoutMs: number,
): Promise<ExecResult & { outcome: Outcome }> {
  const result = await transport.exec(command, { signal, timeoutMs });
  if (result.failure) {
    return {
      ...result,
      outcome: { ok: false, reason: `${commandLine(command)}: ${result.reason ?? result.failure}` },
    };
  }
  if (result.code !== 0) {
    const said = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-3).join(' | ');
    return {
      ...result,
      outcome: {
        ok: false,
        reason: `${commandLine(command)} exited ${result.code}${said ? `: ${said}` : ''}`,
      },
    };
  }
  return { ...result, outcome: { ok: true } };
}

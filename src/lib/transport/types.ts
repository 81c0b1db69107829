/**
 * A transport runs commands on one node. Commands are argv arrays: the transport quotes them for the
 * remote shell (see quote.ts), so no value from a config file reaches a shell unquoted. A command the
 * operator wrote as a shell string (custom hooks, `command` adapters) is passed as `{ shell }`, and only
 * the values templated into it are quoted.
 */
export type RemoteCommand = { argv: readonly string[] } | { shell: string };

export interface ExecOptions {
  /** Cancels the command: the remote side is killed too (commands are wrapped in `timeout`). */
  signal: AbortSignal;
  /** Deadline for this one command. */
  timeoutMs: number;
  stdin?: string;
}

export interface ExecResult {
  /** Exit code, or null when the command was killed by a signal, timed out or was cancelled. */
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the command did not run to completion: 'timeout' | 'aborted' | 'transport'. */
  failure?: 'timeout' | 'aborted' | 'transport';
  /** Human-readable reason when failure is set. */
  reason?: string;
}

export interface Transport {
  /** Node name, for messages. */
  readonly node: string;
  /** Open the connection (idempotent). Resolves to ok or a reason; never throws for expected failures. */
  connect(signal: AbortSignal): Promise<{ ok: true } | { ok: false; reason: string }>;
  exec(command: RemoteCommand, options: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

/**
 * The one exit-code table. The README documents it; only bin/commands turn these into a process exit.
 */
export const ExitCode = {
  ok: 0,
  rolloutFailed: 1,
  usage: 2,
  preflightRefused: 3,
  lockHeld: 4,
  deadline: 5,
  /** Every node is back, but a drain was forced (escalation, or the process exited before it drained). */
  forced: 6,
  interruptedHup: 129,
  interrupted: 130,
  terminated: 143,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error that the CLI reports as plain lines (no stack trace) and turns into an exit code. */
export class GracerollError extends Error {
  constructor(
    readonly problems: readonly string[],
    readonly exitCode: ExitCode,
    readonly suggestions: readonly string[] = [],
  ) {
    super(problems.join('\n'));
    this.name = 'GracerollError';
  }
}

import chalk from 'chalk';
import { ExitCode, GracerollError } from './exit-codes.js';

/**
 * Prints an error as plain lines and returns its exit code. Expected errors carry their own lines and
 * code; anything else is a bug reported in one line (the stack only with GRACEROLL_DEBUG=1), exit 1.
 * The engine has already ended the rollout by then (run-rollout.ts never throws), so no node is left
 * unnamed by an error that reaches here.
 */
export function reportError(
  error: unknown,
  stderr: NodeJS.WriteStream,
  env: NodeJS.ProcessEnv = process.env,
): ExitCode {
  if (error instanceof GracerollError) {
    for (const problem of error.problems) stderr.write(`${chalk.red('error')} ${problem}\n`);
    for (const suggestion of error.suggestions) stderr.write(`${chalk.dim('hint')}  ${suggestion}\n`);
    return error.exitCode;
  }
  // oclif's own exit (this.exit inside a command's try) passes through untouched.
  if (typeof (error as { oclif?: { exit?: unknown } } | undefined)?.oclif?.exit === 'number') throw error;
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  stderr.write(`${chalk.red('error')} unexpected error: ${message.split('\n')[0]}\n`);
  if (env.GRACEROLL_DEBUG === '1' && error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
  else
    stderr.write(
      `${chalk.dim('hint')}  this is a bug in graceroll; GRACEROLL_DEBUG=1 prints where it happened\n`,
    );
  return ExitCode.rolloutFailed;
}

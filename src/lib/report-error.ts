import chalk from 'chalk';
import { GracerollError, type ExitCode } from './exit-codes.js';

/** Prints an error as plain lines (no stack trace for expected errors) and returns its exit code. */
export function reportError(error: unknown, stderr: NodeJS.WriteStream): ExitCode {
  if (error instanceof GracerollError) {
    for (const problem of error.problems) stderr.write(`${chalk.red('error')} ${problem}\n`);
    for (const suggestion of error.suggestions) stderr.write(`${chalk.dim('hint')}  ${suggestion}\n`);
    return error.exitCode;
  }
  throw error;
}

import type { RemoteCommand } from './types.js';

/** Words that are left bare because no POSIX shell gives them a meaning (no `=`: `a=b` as a first word assigns). */
const SAFE_WORD = /^[A-Za-z0-9_/.,:@%+-]+$/;
/** A word that needs no quoting in argument position (not the first word). */
const ARGUMENT_WORD = /^[A-Za-z0-9_/.,:@%+=-]+$/;

/**
 * Reserved words are only special in command position, but quoting them everywhere is harmless and keeps
 * `['if']` a command named `if` instead of a syntax error. Includes bash's, since the login shell may be bash.
 */
// prettier-ignore
const RESERVED = new Set([
  'if', 'then', 'else', 'elif', 'fi', 'do', 'done', 'case', 'esac', 'while', 'until', 'for', 'in',
  'function', 'select', 'time', 'coproc',
]);

/**
 * Quotes one argument for a POSIX shell: inside single quotes nothing is special, and a single quote is
 * written as `'\''` (close, escaped quote, reopen). POSIX.1-2017 XCU 2.2.2.
 */
export function shellQuote(arg: string): string {
  // A NUL ends a C string: the remote shell would silently see a shorter argument.
  if (arg.includes('\0')) throw new Error('shellQuote: an argument cannot contain a NUL byte');
  if (SAFE_WORD.test(arg) && !RESERVED.has(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}

/** The shell line for a command: argv words quoted one by one; a `{ shell }` string is the operator's own. */
export function commandLine(command: RemoteCommand): string {
  if ('shell' in command) return command.shell;
  if (command.argv.length === 0) throw new Error('commandLine: argv is empty');
  // After the command name `=` means nothing to the shell, so `--signal=SIGUSR1` can stay bare.
  return command.argv.map((arg, i) => (i > 0 && ARGUMENT_WORD.test(arg) ? arg : shellQuote(arg))).join(' ');
}

/**
 * Wraps a shell line so the remote side kills it at its deadline even when nobody is listening any more:
 * without a pty, closing an SSH channel does not signal the command (sshd only closes its pipes).
 * `timeout` signals the command's whole process group, so children of `sh` die too, and `-k 2` follows
 * TERM with KILL after 2 s (coreutils timeout(1)). A TERM sent to `timeout` itself is forwarded the same way.
 */
export function wrapWithTimeout(line: string, seconds: number): string {
  if (!(seconds > 0)) throw new Error(`wrapWithTimeout: seconds must be positive, got ${seconds}`);
  return `timeout -k 2 ${Math.ceil(seconds)} sh -c ${shellQuote(line)}`;
}

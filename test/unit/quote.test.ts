import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { commandLine, shellQuote, wrapWithTimeout } from '../../src/lib/transport/quote.js';

const pwned = `/tmp/graceroll-quote-pwned-${process.pid}`;

const AWKWARD = [
  '',
  'plain',
  'with space',
  '  leading and trailing  ',
  "it's",
  "''",
  "'",
  '"double"',
  `$(touch ${pwned})`,
  `\`touch ${pwned}\``,
  '${HOME}',
  '$HOME',
  'line one\nline two\n',
  'tab\there',
  '*',
  '?',
  '[a-z]',
  '~',
  '~/x',
  'a=b',
  '-n',
  '--',
  'if',
  'done',
  '!',
  '#comment',
  'semi;colon',
  'a && b || c | d > e < f & g',
  'back\\slash\\',
  'héllo ✓ 日本',
  '\r\u0007\u001b[31m',
];

function shells(): string[] {
  return ['/bin/sh', '/bin/bash', '/bin/dash'].filter((s) => existsSync(s));
}

describe('shellQuote', () => {
  it.each(shells())('every awkward argument comes back byte-identical through %s', (shell) => {
    for (const arg of AWKWARD) {
      const out = execFileSync(shell, ['-c', `printf %s ${shellQuote(arg)}`], { encoding: 'utf8' });
      expect(out).toBe(arg);
    }
    expect(existsSync(pwned)).toBe(false);
  });

  it('leaves plain words bare and quotes everything a shell could interpret', () => {
    expect(shellQuote('systemctl')).toBe('systemctl');
    expect(shellQuote('--now')).toBe('--now');
    expect(shellQuote('/srv/app-1/current.d,x:y@z%+')).toBe('/srv/app-1/current.d,x:y@z%+');
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('a=b')).toBe("'a=b'");
    expect(shellQuote('~')).toBe("'~'");
    expect(shellQuote('if')).toBe("'if'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  it('refuses a NUL byte, which a shell argument cannot carry', () => {
    expect(() => shellQuote('a\0b')).toThrow(/NUL/);
  });
});

describe('commandLine', () => {
  it('quotes each argv element so the remote shell sees exactly that argv', () => {
    const line = commandLine({ argv: ['printf', '%s\\0', ...AWKWARD] });
    const out = execFileSync('/bin/sh', ['-c', line], { encoding: 'utf8' });
    expect(out.split('\0').slice(0, -1)).toEqual(AWKWARD);
    expect(existsSync(pwned)).toBe(false);
  });

  it('keeps a reserved word in command position a command name, not syntax', () => {
    const result = spawnSync('/bin/sh', ['-c', commandLine({ argv: ['if', 'x'] })], { encoding: 'utf8' });
    expect(result.stderr).not.toMatch(/syntax error/i);
    expect(result.status).toBe(127);
  });

  it('passes an operator-written shell string through untouched', () => {
    expect(commandLine({ shell: 'systemctl reload nginx && echo "$HOSTNAME"' })).toBe(
      'systemctl reload nginx && echo "$HOSTNAME"',
    );
  });

  it('refuses an empty argv', () => {
    expect(() => commandLine({ argv: [] })).toThrow(/empty/);
  });
});

describe('wrapWithTimeout', () => {
  it('survives a second level of quoting: argv still arrives byte-identical', () => {
    const line = wrapWithTimeout(commandLine({ argv: ['printf', '%s\\0', ...AWKWARD] }), 5);
    const out = execFileSync('/bin/sh', ['-c', line], { encoding: 'utf8' });
    expect(out.split('\0').slice(0, -1)).toEqual(AWKWARD);
  });

  it('runs an operator shell string under sh with its exit code', () => {
    const line = wrapWithTimeout('echo "$((6 * 7))"; exit 3', 5);
    const result = spawnSync('/bin/sh', ['-c', line], { encoding: 'utf8' });
    expect(result.stdout).toBe('42\n');
    expect(result.status).toBe(3);
  });

  it('kills the command and its children at the deadline even when nobody stops it', async () => {
    const marker = `sleep 29.${randomInt(1e6, 1e7)}`;
    const started = Date.now();
    // Detached with ignored stdio: the same as an SSH channel that went away.
    const child = spawn('/bin/sh', ['-c', wrapWithTimeout(`${marker}; echo never`, 1)], { stdio: 'ignore' });
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(pgrep(marker)).not.toEqual([]);
    const code = await new Promise((resolve) => child.once('exit', resolve));
    expect(code).toBe(124); // timeout(1): the command timed out
    expect(Date.now() - started).toBeLessThan(3000);
    expect(await pgrepSettled(marker)).toEqual([]);
  });

  it('rounds sub-second deadlines up and refuses non-positive ones', () => {
    expect(wrapWithTimeout('true', 0.2)).toBe('timeout -k 2 1 sh -c true');
    expect(() => wrapWithTimeout('true', 0)).toThrow(/positive/);
  });
});

/** Processes matching, once signalled ones had a moment to be reaped. */
async function pgrepSettled(pattern: string): Promise<string[]> {
  for (let i = 0; i < 20 && pgrep(pattern).length > 0; i++) await new Promise((r) => setTimeout(r, 25));
  return pgrep(pattern);
}

function pgrep(pattern: string): string[] {
  const result = spawnSync('pgrep', ['-f', pattern], { encoding: 'utf8' });
  return result.stdout.split('\n').filter(Boolean);
}

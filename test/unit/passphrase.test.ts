import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { keyNeedsPassphrase } from '../../src/lib/passphrase.js';
import { tempDir } from '../helpers/cli.js';

describe('encrypted keys', () => {
  const dir = tempDir();
  const key = (name: string, passphrase: string) => {
    const path = join(dir, name);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', passphrase, '-f', path]);
    return path;
  };
  it('an encrypted key needs a passphrase; a plain key and a missing file do not', () => {
    expect(keyNeedsPassphrase(key('locked', 'secret words'))).toBe(true);
    expect(keyNeedsPassphrase(key('open', ''))).toBe(false);
    expect(keyNeedsPassphrase(join(dir, 'missing'))).toBe(false);
  });
});

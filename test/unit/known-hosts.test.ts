import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  appendKnownHost,
  checkHostKey,
  fingerprint,
  keyTypeOfBlob,
  knownKeyTypes,
  parseKnownHosts,
  readKnownHosts,
} from '../../src/lib/transport/known-hosts.js';

const run = promisify(execFile);

interface Key {
  type: string;
  base64: string;
  blob: Buffer;
  /** As `ssh-keygen -l` prints it. */
  sshKeygenFingerprint: string;
}

let dir: string;
let ed: Key;
let other: Key;
let ecdsa: Key;

async function makeKey(name: string, type: string): Promise<Key> {
  const path = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', type, '-N', '', '-f', path]);
  const [keyType, base64] = (await readFile(`${path}.pub`, 'utf8')).split(' ');
  const { stdout } = await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${path}.pub`]);
  return {
    type: keyType,
    base64,
    blob: Buffer.from(base64, 'base64'),
    sshKeygenFingerprint: stdout.split(' ')[1],
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graceroll-known-hosts-'));
  [ed, other, ecdsa] = await Promise.all([
    makeKey('ed', 'ed25519'),
    makeKey('other', 'ed25519'),
    makeKey('ecdsa', 'ecdsa'),
  ]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const check = (text: string, host: string, port: number, key: Key) =>
  checkHostKey(parseKnownHosts(text), host, port, key.type, key.blob);

describe('fingerprints and key blobs', () => {
  it('prints SHA256 fingerprints exactly like ssh-keygen -l', () => {
    for (const key of [ed, other, ecdsa]) expect(fingerprint(key.blob)).toBe(key.sshKeygenFingerprint);
  });

  it('reads the key type from inside the blob', () => {
    expect(keyTypeOfBlob(ed.blob)).toBe('ssh-ed25519');
    expect(keyTypeOfBlob(ecdsa.blob)).toBe('ecdsa-sha2-nistp256');
    expect(keyTypeOfBlob(Buffer.from('junk'))).toBeNull();
  });
});

describe('checkHostKey', () => {
  it('matches a plain entry and an entry in a comma list, case-insensitively', () => {
    expect(check(`web1 ${ed.type} ${ed.base64}\n`, 'web1', 22, ed)).toEqual({ status: 'match' });
    expect(check(`alpha,WEB1,10.0.0.1 ${ed.type} ${ed.base64} c\n`, 'web1', 22, ed)).toEqual({
      status: 'match',
    });
    expect(check(`alpha,10.0.0.1 ${ed.type} ${ed.base64}\n`, '10.0.0.1', 22, ed)).toEqual({
      status: 'match',
    });
  });

  it('uses [host]:port for other ports and plain names only for port 22', () => {
    const text = `[10.0.0.3]:2222 ${ed.type} ${ed.base64}\n`;
    expect(check(text, '10.0.0.3', 2222, ed)).toEqual({ status: 'match' });
    expect(check(text, '10.0.0.3', 22, ed).status).toBe('unknown');
    expect(check(`10.0.0.3 ${ed.type} ${ed.base64}\n`, '10.0.0.3', 2222, ed).status).toBe('unknown');
    expect(check(`[10.0.0.3]:22 ${ed.type} ${ed.base64}\n`, '10.0.0.3', 22, ed).status).toBe('unknown');
  });

  it('matches entries hashed by the real ssh-keygen -H, for port 22 and other ports', async () => {
    const path = join(dir, 'hashed');
    await writeFile(path, `web1 ${ed.type} ${ed.base64}\n[10.0.0.3]:2222 ${ecdsa.type} ${ecdsa.base64}\n`);
    await run('ssh-keygen', ['-H', '-f', path]);
    const text = await readFile(path, 'utf8');
    expect(text).not.toMatch(/web1|10\.0\.0\.3/);
    expect(text.match(/^\|1\|/gm)).toHaveLength(2);
    const entries = parseKnownHosts(text);
    expect(checkHostKey(entries, 'web1', 22, ed.type, ed.blob)).toEqual({ status: 'match' });
    expect(checkHostKey(entries, '10.0.0.3', 2222, ecdsa.type, ecdsa.blob)).toEqual({ status: 'match' });
    expect(checkHostKey(entries, 'web2', 22, ed.type, ed.blob).status).toBe('unknown');
    expect(checkHostKey(entries, '10.0.0.3', 22, ecdsa.type, ecdsa.blob).status).toBe('unknown');
  });

  it('reports a changed key with both fingerprints and the offending line', () => {
    const text = `# fleet\nweb1 ${ed.type} ${ed.base64}\n`;
    expect(check(text, 'web1', 22, other)).toEqual({
      status: 'changed',
      expectedFingerprint: ed.sshKeygenFingerprint,
      actualFingerprint: other.sshKeygenFingerprint,
      line: 2,
    });
  });

  it('accepts any of several keys listed for a host', () => {
    const text = `web1 ${ed.type} ${ed.base64}\nweb1 ${other.type} ${other.base64}\n`;
    expect(check(text, 'web1', 22, other)).toEqual({ status: 'match' });
  });

  it('reports an unknown host, and which key types are known when the type differs', () => {
    expect(check(`web1 ${ed.type} ${ed.base64}\n`, 'web2', 22, ed)).toEqual({
      status: 'unknown',
      otherKeyTypes: [],
    });
    expect(check(`web1 ${ed.type} ${ed.base64}\n`, 'web1', 22, ecdsa)).toEqual({
      status: 'unknown',
      otherKeyTypes: ['ssh-ed25519'],
    });
    expect(checkHostKey([], 'web1', 22, ed.type, ed.blob).status).toBe('unknown');
  });

  it('refuses a @revoked key even when a plain line accepts it', () => {
    const text = `web1 ${ed.type} ${ed.base64}\n@revoked * ${ed.type} ${ed.base64}\n`;
    expect(check(text, 'web1', 22, ed)).toEqual({
      status: 'revoked',
      fingerprint: ed.sshKeygenFingerprint,
      line: 2,
    });
    expect(check(text, 'web1', 22, other).status).toBe('changed');
  });

  it('ignores @cert-authority lines, comments, blank lines, unknown markers and garbage', () => {
    const text = [
      '# comment',
      '',
      `@cert-authority web1 ${ed.type} ${ed.base64}`,
      `@bogus web1 ${ed.type} ${ed.base64}`,
      'web1 ssh-ed25519 not-base64-at-all',
      `web1 ssh-rsa ${ed.base64}`, // type on the line disagrees with the blob
      'web1',
      `   web2 ${ed.type} ${ed.base64}   `,
    ].join('\n');
    const entries = parseKnownHosts(text);
    expect(entries.map((e) => [e.marker, e.line])).toEqual([
      ['cert-authority', 3],
      [null, 8],
    ]);
    expect(checkHostKey(entries, 'web1', 22, ed.type, ed.blob).status).toBe('unknown');
    expect(checkHostKey(entries, 'web2', 22, ed.type, ed.blob).status).toBe('match');
  });

  it('honours wildcards and negation as OpenSSH match_hostname does', () => {
    const text = `*.example.com,!db.example.com,web? ${ed.type} ${ed.base64}\n`;
    expect(check(text, 'app.example.com', 22, ed).status).toBe('match');
    expect(check(text, 'web7', 22, ed).status).toBe('match');
    expect(check(text, 'db.example.com', 22, ed).status).toBe('unknown');
    expect(check(text, 'example.com', 22, ed).status).toBe('unknown');
    expect(check(text, 'appXexampleYcom', 22, ed).status).toBe('unknown'); // dots are literal
  });

  it('treats rsa-sha2-* as the ssh-rsa key type', () => {
    const blob = Buffer.concat([Buffer.from([0, 0, 0, 7]), Buffer.from('ssh-rsa'), Buffer.alloc(8, 1)]);
    const text = `web1 ssh-rsa ${blob.toString('base64')}\n`;
    expect(checkHostKey(parseKnownHosts(text), 'web1', 22, 'rsa-sha2-512', blob)).toEqual({
      status: 'match',
    });
  });

  it('lists the key types known for a host', () => {
    const text = `web1 ${ed.type} ${ed.base64}\nweb1,web2 ${ecdsa.type} ${ecdsa.base64}\nweb3 ${ed.type} ${ed.base64}\n`;
    expect(knownKeyTypes(parseKnownHosts(text), 'web1', 22)).toEqual(['ssh-ed25519', 'ecdsa-sha2-nistp256']);
    expect(knownKeyTypes(parseKnownHosts(text), 'web2', 22)).toEqual(['ecdsa-sha2-nistp256']);
  });
});

describe('appendKnownHost', () => {
  it('creates the file and writes an entry the real ssh-keygen -F finds', async () => {
    const path = join(dir, 'new', 'deeper', 'known_hosts');
    await appendKnownHost(path, '127.0.0.1', 2222, ed.type, ed.blob);
    await appendKnownHost(path, 'web1', 22, ecdsa.type, ecdsa.blob, { hashed: true });
    expect(await readFile(path, 'utf8')).toMatch(
      /^\[127\.0\.0\.1\]:2222 ssh-ed25519 \S+\n\|1\|\S+ ecdsa-sha2-nistp256 \S+\n$/,
    );
    const plain = await run('ssh-keygen', ['-F', '[127.0.0.1]:2222', '-f', path]);
    expect(plain.stdout).toContain(ed.base64);
    const hashed = await run('ssh-keygen', ['-F', 'web1', '-f', path]);
    expect(hashed.stdout).toContain(ecdsa.base64);
    const entries = await readKnownHosts(path);
    expect(checkHostKey(entries, '127.0.0.1', 2222, ed.type, ed.blob)).toEqual({ status: 'match' });
    expect(checkHostKey(entries, 'web1', 22, ecdsa.type, ecdsa.blob)).toEqual({ status: 'match' });
  });

  it('starts a new line when the file does not end with one', async () => {
    const path = join(dir, 'no-newline');
    await writeFile(path, `web1 ${ed.type} ${ed.base64}`);
    await appendKnownHost(path, 'web2', 22, other.type, other.blob);
    const entries = await readKnownHosts(path);
    expect(entries.map((e) => e.line)).toEqual([1, 2]);
    expect(checkHostKey(entries, 'web1', 22, ed.type, ed.blob).status).toBe('match');
    expect(checkHostKey(entries, 'web2', 22, other.type, other.blob).status).toBe('match');
  });

  it('reads a missing file as no entries', async () => {
    expect(await readKnownHosts(join(dir, 'does-not-exist'))).toEqual([]);
  });
});

import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { appendFile, mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * OpenSSH known_hosts, as sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes it:
 *   [@revoked|@cert-authority] hostpatterns keytype base64-key [comment]
 * hostpatterns is a comma list of patterns (`*`, `?`, `!` negation), with `[host]:port` for ports other
 * than 22, or one hashed name `|1|base64(salt)|base64(HMAC-SHA1(salt, name))` (HashKnownHosts).
 */
export interface KnownHostEntry {
  marker: 'revoked' | 'cert-authority' | null;
  hosts: { kind: 'patterns'; patterns: string[] } | { kind: 'hashed'; salt: Buffer; hash: Buffer };
  keyType: string;
  keyBlob: Buffer;
  /** 1-based line number, for "offending line" messages. */
  line: number;
}

export type HostKeyCheck =
  | { status: 'match' }
  /** otherKeyTypes: the host is known, but only with keys of other types (OpenSSH warns about this). */
  | { status: 'unknown'; otherKeyTypes: string[] }
  | { status: 'changed'; expectedFingerprint: string; actualFingerprint: string; line: number }
  | { status: 'revoked'; fingerprint: string; line: number };

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split('\n').forEach((raw, index) => {
    const entry = parseLine(raw.trim(), index + 1);
    if (entry) entries.push(entry);
  });
  return entries;
}

/** A missing file is an empty list: every host is then unknown. */
export async function readKnownHosts(path: string): Promise<KnownHostEntry[]> {
  try {
    return parseKnownHosts(await readFile(path, 'utf8'));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** The name OpenSSH looks up and writes: `host` on port 22, `[host]:port` otherwise (sshd(8)). */
export function knownHostName(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

/** `SHA256:` + unpadded base64 of the SHA-256 of the key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The key type named inside an SSH public key blob (RFC 4253 6.6: string type, then key data). */
export function keyTypeOfBlob(keyBlob: Buffer): string | null {
  if (keyBlob.length < 4) return null;
  const length = keyBlob.readUInt32BE(0);
  if (length === 0 || length > 64 || 4 + length > keyBlob.length) return null;
  return keyBlob.toString('latin1', 4, 4 + length);
}

export function checkHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  keyAlgo: string,
  keyBlob: Buffer,
): HostKeyCheck {
  const name = knownHostName(host, port);
  const keyType = normalizeKeyType(keyAlgo);
  // Certificates are not supported: a @cert-authority line neither accepts nor refuses a plain key.
  const forHost = entries.filter((e) => e.marker !== 'cert-authority' && hostMatches(e, name));

  const revoked = forHost.find((e) => e.marker === 'revoked' && e.keyBlob.equals(keyBlob));
  if (revoked) return { status: 'revoked', fingerprint: fingerprint(keyBlob), line: revoked.line };

  const plain = forHost.filter((e) => e.marker === null);
  if (plain.some((e) => e.keyType === keyType && e.keyBlob.equals(keyBlob))) return { status: 'match' };
  const sameType = plain.find((e) => e.keyType === keyType);
  if (sameType) {
    return {
      status: 'changed',
      expectedFingerprint: fingerprint(sameType.keyBlob),
      actualFingerprint: fingerprint(keyBlob),
      line: sameType.line,
    };
  }
  return { status: 'unknown', otherKeyTypes: [...new Set(plain.map((e) => e.keyType))] };
}

/** Key types known for a host, so the client can prefer them in key exchange as OpenSSH does. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const name = knownHostName(host, port);
  const types = entries.filter((e) => e.marker === null && hostMatches(e, name)).map((e) => e.keyType);
  return [...new Set(types)];
}

/** Appends one entry (accept-new). Creates the file 0600 and its directory 0700 when missing. */
export async function appendKnownHost(
  path: string,
  host: string,
  port: number,
  algo: string,
  blob: Buffer,
  options: { hashed?: boolean } = {},
): Promise<void> {
  const name = knownHostName(host, port);
  const field = options.hashed ? hashHostName(name) : name;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const line = `${field} ${normalizeKeyType(algo)} ${blob.toString('base64')}\n`;
  await appendFile(path, (await endsWithoutNewline(path)) ? `\n${line}` : line, { mode: 0o600 });
}

export function hashHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const hash = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${hash.toString('base64')}`;
}

function parseLine(line: string, lineNumber: number): KnownHostEntry | null {
  if (line === '' || line.startsWith('#')) return null;
  const fields = line.split(/\s+/);
  let marker: KnownHostEntry['marker'] = null;
  if (fields[0].startsWith('@')) {
    const word = fields.shift();
    if (word === '@revoked') marker = 'revoked';
    else if (word === '@cert-authority') marker = 'cert-authority';
    else return null; // OpenSSH skips lines with an unknown marker
  }
  const [hostField, keyType, base64Key] = fields;
  if (!hostField || !keyType || !base64Key) return null;
  const keyBlob = Buffer.from(base64Key, 'base64');
  // Buffer.from ignores invalid base64: make sure the blob is a key of the type the line claims.
  if (keyTypeOfBlob(keyBlob) !== keyType) return null;
  const hosts = parseHosts(hostField);
  if (!hosts) return null;
  return { marker, hosts, keyType, keyBlob, line: lineNumber };
}

function parseHosts(field: string): KnownHostEntry['hosts'] | null {
  if (field.startsWith('|')) {
    const [, magic, salt, hash] = field.split('|');
    if (magic !== '1' || !salt || !hash) return null;
    return { kind: 'hashed', salt: Buffer.from(salt, 'base64'), hash: Buffer.from(hash, 'base64') };
  }
  return { kind: 'patterns', patterns: field.toLowerCase().split(',').filter(Boolean) };
}

function hostMatches(entry: KnownHostEntry, name: string): boolean {
  const { hosts } = entry;
  if (hosts.kind === 'hashed') {
    const actual = createHmac('sha1', hosts.salt).update(name).digest();
    return actual.length === hosts.hash.length && timingSafeEqual(actual, hosts.hash);
  }
  // match_hostname() in OpenSSH match.c: any negated match vetoes the line.
  let matched = false;
  for (const pattern of hosts.patterns) {
    const negated = pattern.startsWith('!');
    if (globMatches(negated ? pattern.slice(1) : pattern, name)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatches(pattern: string, text: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${source}$`, 's').test(text);
}

/** RSA keys are stored as `ssh-rsa` whichever signature algorithm (rsa-sha2-256/512) was negotiated. */
function normalizeKeyType(algo: string): string {
  return algo.startsWith('rsa-sha2-') ? 'ssh-rsa' : algo;
}

async function endsWithoutNewline(path: string): Promise<boolean> {
  try {
    if ((await stat(path)).size === 0) return false;
    const text = await readFile(path);
    return text[text.length - 1] !== 0x0a;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

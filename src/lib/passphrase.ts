import { readFileSync } from 'node:fs';
import ssh2 from 'ssh2';
import type { Fleet } from './config/types.js';
import { expandHome } from './home.js';

/** True when the key file exists and is encrypted (ssh2 cannot parse it without a passphrase). */
export function keyNeedsPassphrase(path: string): boolean {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch {
    return false; // a missing key is reported when connecting, with the node's name
  }
  const parsed = ssh2.utils.parseKey(data);
  return parsed instanceof Error && /passphrase/i.test(parsed.message);
}

/** Reads a line from the terminal without echoing it. */
export function readHidden(
  prompt: string,
  stdin: NodeJS.ReadStream,
  stderr: NodeJS.WriteStream,
): Promise<string> {
  return new Promise((resolve, reject) => {
    stderr.write(prompt);
    let text = '';
    stdin.setRawMode(true);
    stdin.resume();
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      stderr.write('\n');
      if (error) reject(error);
      else resolve(text);
    };
    const onData = (chunk: Buffer) => {
      for (const char of chunk.toString('utf8')) {
        if (char === '\r' || char === '\n') return done();
        if (char === '\u0003') return done(new Error('cancelled'));
        if (char === '\u007f' || char === '\b') text = text.slice(0, -1);
        else text += char;
      }
    };
    stdin.on('data', onData);
  });
}

/**
 * The passphrase of the fleet's key: from `transport.passphraseEnv`, else asked for on a terminal when
 * the key is encrypted. Without a terminal the connection reports the encrypted key by node name.
 */
export async function askPassphraseIfNeeded(
  fleet: Fleet,
  stdin: NodeJS.ReadStream,
  stderr: NodeJS.WriteStream,
): Promise<string | undefined> {
  const ssh = fleet.transport.type === 'ssh' ? fleet.transport : undefined;
  if (!ssh?.identityFile) return undefined;
  if (ssh.passphraseEnv && process.env[ssh.passphraseEnv] !== undefined)
    return process.env[ssh.passphraseEnv];
  const path = expandHome(ssh.identityFile);
  if (!stdin.isTTY || !keyNeedsPassphrase(path)) return undefined;
  return readHidden(`Passphrase for ${path}: `, stdin, stderr);
}

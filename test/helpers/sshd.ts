import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const CLIENT_KEY_PASSPHRASE = 'correct horse battery staple';

export interface Sshd {
  port: number;
  dir: string;
  /** Unencrypted ed25519 key authorized for the current user. */
  clientKeyPath: string;
  /** Authorized too, encrypted with CLIENT_KEY_PASSPHRASE. */
  encryptedClientKeyPath: string;
  /** `ssh-ed25519 AAAA… comment`, the current host key (ssh2's first choice). */
  hostPubKeyLine: string;
  /** The server's second host key, `ecdsa-sha2-nistp256 AAAA… comment`. */
  ecdsaHostPubKeyLine: string;
  /** Holds `[127.0.0.1]:port <host key>`, written at start (not updated by rotateHostKey). */
  knownHostsPath: string;
  /** New host key, sshd restarted on the same port; returns the new public key line. */
  rotateHostKey(): Promise<string>;
  /** Kills sshd and every connection it serves, then starts it again on the same port. */
  restart(): Promise<void>;
  /** Kills sshd and every connection it serves, as a crashed host would; restart() brings it back. */
  kill(): Promise<void>;
  /** sshd's own log (-e), for failing tests. */
  log(): string;
  /** kill(), then removes the keys and config. */
  stop(): Promise<void>;
}

/**
 * A real OpenSSH server on 127.0.0.1 running as the current user, with throwaway keys. sshd(8) needs
 * root for privilege separation and /run/sshd to exist.
 */
export async function startSshd(options: { extraConfig?: string[] } = {}): Promise<Sshd> {
  const dir = await mkdtemp(join(tmpdir(), 'graceroll-sshd-'));
  await mkdir('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const clientKeyPath = join(dir, 'client_ed25519');
  const encryptedClientKeyPath = join(dir, 'client_encrypted');
  const ecdsaHostKey = join(dir, 'host_ecdsa');
  await keygen(hostKey, '');
  await keygen(ecdsaHostKey, '', 'ecdsa');
  await keygen(clientKeyPath, '');
  await keygen(encryptedClientKeyPath, CLIENT_KEY_PASSPHRASE);
  const authorized = await Promise.all(
    [clientKeyPath, encryptedClientKeyPath].map((k) => readFile(`${k}.pub`, 'utf8')),
  );
  await writeFile(join(dir, 'authorized_keys'), authorized.join(''));
  const port = await freePort();
  const configPath = join(dir, 'sshd_config');
  await writeFile(
    configPath,
    [
      'ListenAddress 127.0.0.1',
      `HostKey ${hostKey}`,
      `HostKey ${ecdsaHostKey}`,
      `PidFile ${join(dir, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'MaxSessions 10',
      'MaxStartups 100',
      'LogLevel VERBOSE',
      ...(options.extraConfig ?? []),
      '',
    ].join('\n'),
  );
  let hostPubKeyLine = (await readFile(`${hostKey}.pub`, 'utf8')).trim();
  const ecdsaHostPubKeyLine = (await readFile(`${ecdsaHostKey}.pub`, 'utf8')).trim();
  const knownHostsPath = join(dir, 'known_hosts');
  await writeFile(knownHostsPath, `[127.0.0.1]:${port} ${hostPubKeyLine}\n`);

  let log = '';
  const onLog = (text: string): void => {
    log = (log + text).slice(-100_000);
  };
  let daemon = await launch(configPath, port, onLog);

  const kill = async (): Promise<void> => {
    const pid = daemon.pid;
    if (pid === undefined || exited(daemon)) return;
    // Connections are served by forked children (and their children) that outlive the listener.
    const pids = [pid, ...(await descendants(pid))];
    const gone = new Promise((resolve) => daemon.once('exit', resolve));
    for (const p of pids) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await gone;
  };

  return {
    port,
    dir,
    clientKeyPath,
    encryptedClientKeyPath,
    get hostPubKeyLine() {
      return hostPubKeyLine;
    },
    ecdsaHostPubKeyLine,
    knownHostsPath,
    async rotateHostKey() {
      await kill();
      await rm(hostKey);
      await rm(`${hostKey}.pub`);
      await keygen(hostKey, '');
      hostPubKeyLine = (await readFile(`${hostKey}.pub`, 'utf8')).trim();
      daemon = await launch(configPath, port, onLog);
      return hostPubKeyLine;
    },
    async restart() {
      await kill();
      daemon = await launch(configPath, port, onLog);
    },
    kill,
    log: () => log,
    async stop() {
      await kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** exitCode stays null for a process killed by a signal. */
function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

async function keygen(path: string, passphrase: string, type = 'ed25519'): Promise<void> {
  await run('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', 'graceroll-test', '-f', path]);
}

async function launch(
  configPath: string,
  port: number,
  onLog: (text: string) => void,
): Promise<ChildProcess> {
  // sshd re-executes itself and insists on an absolute path.
  const daemon = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', configPath, '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  daemon.stderr?.on('data', (chunk: Buffer) => {
    log = (log + chunk.toString()).slice(-20_000);
    onLog(chunk.toString());
  });
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (exited(daemon)) throw new Error(`sshd exited (${daemon.exitCode ?? daemon.signalCode}):\n${log}`);
    if (await greets(port)) return daemon;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  daemon.kill('SIGKILL');
  throw new Error(`sshd did not start on port ${port}:\n${log}`);
}

/** True when something on the port sends an SSH identification string (RFC 4253 4.2). */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (data: Buffer) => done(data.toString().startsWith('SSH-')));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        address && typeof address === 'object' ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Every process below pid, from /proc (ps may be missing in slim images). */
export async function descendants(pid: number): Promise<number[]> {
  const parents = new Map<number, number[]>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = await readFile(`/proc/${name}/stat`, 'utf8');
      // Field 4 is the parent pid; field 2 (comm) may contain spaces, so count from the last ')'.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(name)]);
    } catch {
      // the process exited while we looked
    }
  }
  const found: number[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of parents.get(queue.shift()!) ?? []) {
      found.push(child);
      queue.push(child);
    }
  }
  return found;
}

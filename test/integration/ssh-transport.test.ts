import { execFile, spawnSync } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createSshTransport, type SshTransportOptions } from '../../src/lib/transport/ssh.js';
import type { ExecOptions, ExecResult, RemoteCommand, Transport } from '../../src/lib/transport/types.js';
import { CLIENT_KEY_PASSPHRASE, startSshd, type Sshd } from '../helpers/sshd.js';

const run = promisify(execFile);

let sshd: Sshd;
let scratch: string;
const open: Transport[] = [];

beforeAll(async () => {
  sshd = await startSshd();
  scratch = await mkdtemp(join(tmpdir(), 'graceroll-ssh-test-'));
});

afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

afterAll(async () => {
  await sshd?.stop();
  await rm(scratch, { recursive: true, force: true });
});

function transport(overrides: Partial<SshTransportOptions> = {}): Transport {
  const t = createSshTransport({
    node: 'node3',
    host: '127.0.0.1',
    port: sshd.port,
    user: 'root',
    privateKeyPath: sshd.clientKeyPath,
    knownHostsPath: sshd.knownHostsPath,
    hostKeyPolicy: 'strict',
    connectTimeoutMs: 5000,
    ...overrides,
  });
  open.push(t);
  return t;
}

const exec = (
  t: Transport,
  command: RemoteCommand,
  options: Partial<ExecOptions> = {},
): Promise<ExecResult> =>
  t.exec(command, { signal: new AbortController().signal, timeoutMs: 10_000, ...options });

const connect = (t: Transport) => t.connect(new AbortController().signal);

async function hostFingerprint(): Promise<string> {
  const path = join(scratch, `host-${randomInt(1e9)}.pub`);
  await writeFile(path, `${sshd.hostPubKeyLine}\n`);
  return (await run('ssh-keygen', ['-l', '-E', 'sha256', '-f', path])).stdout.split(' ')[1];
}

describe('ssh transport: commands', () => {
  it('runs argv and returns exit code, stdout and stderr', async () => {
    const t = transport();
    const result = await exec(t, { argv: ['sh', '-c', 'echo out; echo err >&2; exit 3'] });
    expect(result).toEqual({ code: 3, stdout: 'out\n', stderr: 'err\n' });
  });

  it('delivers awkward argv byte-identical through the remote shells', async () => {
    const args = ['', 'a b', "it's", '$(id)', '`id`', 'line\nbreak', '*', '~', 'a=b', 'héllo ✓'];
    const result = await exec(transport(), { argv: ['printf', '%s\\0', ...args] });
    expect(result.code).toBe(0);
    expect(result.stdout.split('\0').slice(0, -1)).toEqual(args);
  });

  it('runs an operator shell string under sh', async () => {
    const result = await exec(transport(), { shell: 'x=6; echo "$((x * 7))" && exit 5' });
    expect(result).toEqual({ code: 5, stdout: '42\n', stderr: '' });
  });

  it('feeds stdin and closes it, so a reader terminates', async () => {
    const t = transport();
    expect((await exec(t, { argv: ['cat'] }, { stdin: 'hello\nworld' })).stdout).toBe('hello\nworld');
    expect(await exec(t, { argv: ['cat'] })).toEqual({ code: 0, stdout: '', stderr: '' });
  });

  it('reuses one connection for every command; connect() is idempotent', async () => {
    const t = transport();
    expect(await connect(t)).toEqual({ ok: true });
    expect(await connect(t)).toEqual({ ok: true });
    const seen = await Promise.all([1, 2, 3].map(() => exec(t, { shell: 'echo "$SSH_CONNECTION"' })));
    const clientPorts = new Set(seen.map((r) => r.stdout.split(' ')[1]));
    expect(clientPorts.size).toBe(1);
  });

  it('runs 20 commands through maxSessions 4 without exceeding it', async () => {
    const t = transport({ maxSessions: 4 });
    const dir = join(scratch, `slots-${randomInt(1e9)}`);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        exec(t, {
          shell: `mkdir -p ${dir}; touch ${dir}/${i}; sleep 0.2; ls ${dir} | wc -l; rm ${dir}/${i}; echo ${i}`,
        }),
      ),
    );
    for (const [i, result] of results.entries()) {
      expect(result.code, result.reason ?? result.stderr).toBe(0);
      expect(result.stdout.trim().split('\n')[1]).toBe(String(i));
    }
    const peaks = results.map((r) => Number(r.stdout.split('\n')[0]));
    expect(Math.max(...peaks)).toBeLessThanOrEqual(4);
    expect(Math.max(...peaks)).toBeGreaterThanOrEqual(2);
  });

  it('needs the limit: above sshd MaxSessions (10) channels are refused', async () => {
    const t = transport({ maxSessions: 20 });
    const results = await Promise.all(Array.from({ length: 20 }, () => exec(t, { argv: ['sleep', '0.5'] })));
    const refused = results.filter((r) => r.failure === 'transport');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused[0].reason).toMatch(/open failure.*MaxSessions/i);
  });

  it('caps captured output', async () => {
    const result = await exec(transport(), { shell: `head -c 1100000 /dev/zero | tr '\\0' a` });
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^a{1048576}\n\[output truncated: 51424 more bytes\]$/);
  });

  it('says so when the node has no timeout(1), instead of a bare exit 127', async () => {
    const bin = join(scratch, `bin-${randomInt(1e9)}`);
    await mkdir(bin);
    await symlink('/bin/sh', join(bin, 'sh'));
    const bare = await startSshd({ extraConfig: [`SetEnv PATH=${bin}`] });
    try {
      const t = transport({
        port: bare.port,
        privateKeyPath: bare.clientKeyPath,
        knownHostsPath: bare.knownHostsPath,
      });
      expect(await exec(t, { argv: ['true'] })).toMatchObject({
        code: null,
        failure: 'transport',
        reason: expect.stringMatching(/^node3 \(127\.0\.0\.1:\d+\) has no timeout\(1\)/),
      });
    } finally {
      await bare.stop();
    }
  });
});

describe('ssh transport: deadlines and cancellation', () => {
  it('kills the remote command at the deadline, children included', async () => {
    const marker = uniqueSleep();
    const started = Date.now();
    const pending = exec(transport(), { shell: `${marker} & ${marker}; echo never` }, { timeoutMs: 1500 });
    await sleep(800);
    expect(pgrep(marker)).toHaveLength(2);
    const result = await pending;
    expect(result).toMatchObject({ code: null, failure: 'timeout', stdout: '' });
    expect(result.reason).toMatch(/1500 ms on node3/);
    expect(Date.now() - started).toBeLessThan(2500);
    // Gone at once, not when the remote `timeout` backstop (a second later) would fire.
    expect(await pgrepSettled(marker, 400)).toEqual([]);
  });

  it('cancels on abort and the remote command dies', async () => {
    const marker = uniqueSleep();
    const controller = new AbortController();
    const pending = exec(
      transport(),
      { shell: `${marker}; echo never` },
      { signal: controller.signal, timeoutMs: 60_000 },
    );
    await sleep(800);
    expect(pgrep(marker)).toHaveLength(1);
    const abortedAt = Date.now();
    controller.abort();
    expect(await pending).toMatchObject({ code: null, failure: 'aborted' });
    expect(Date.now() - abortedAt).toBeLessThan(1000);
    expect(await pgrepSettled(marker, 500)).toEqual([]);
  });

  it('cancels a command still waiting for a session slot without running it', async () => {
    const t = transport({ maxSessions: 1 });
    const flag = join(scratch, `queued-${randomInt(1e9)}`);
    const first = exec(t, { argv: ['sleep', '1'] });
    const controller = new AbortController();
    const queued = exec(t, { argv: ['touch', flag] }, { signal: controller.signal });
    await sleep(200);
    controller.abort();
    expect(await queued).toMatchObject({ failure: 'aborted' });
    expect((await first).code).toBe(0);
    await expect(readFile(flag)).rejects.toThrow(/ENOENT/);
  });

  it('counts time spent waiting for a slot against the deadline', async () => {
    const t = transport({ maxSessions: 1 });
    const first = exec(t, { argv: ['sleep', '1.5'] });
    const queued = await exec(t, { argv: ['true'] }, { timeoutMs: 300 });
    expect(queued).toMatchObject({ code: null, failure: 'timeout' });
    expect((await first).code).toBe(0);
  });
});

describe('ssh transport: host keys', () => {
  it('refuses an unknown host key under strict, saying how to accept it', async () => {
    const knownHostsPath = join(scratch, `empty-${randomInt(1e9)}`);
    await writeFile(knownHostsPath, '');
    const t = transport({ knownHostsPath });
    const result = await connect(t);
    expect(result.ok).toBe(false);
    const reason = result.ok ? '' : result.reason;
    expect(reason).toContain(`host key for node3 (127.0.0.1:${sshd.port})`);
    expect(reason).toContain(await hostFingerprint());
    expect(reason).toContain(
      `is not in ${knownHostsPath}; accept it with hostKeyPolicy: accept-new or add it with ssh-keyscan`,
    );
    const failed = await exec(t, { argv: ['true'] });
    expect(failed).toMatchObject({ code: null, failure: 'transport', reason });
  });

  it('accept-new records an unknown key, and strict then trusts the entry', async () => {
    const knownHostsPath = join(scratch, `dir-${randomInt(1e9)}`, 'known_hosts');
    const warnings: string[] = [];
    const t = transport({ knownHostsPath, hostKeyPolicy: 'accept-new', onWarning: (m) => warnings.push(m) });
    expect(await connect(t)).toEqual({ ok: true });
    const [keyType, base64] = sshd.hostPubKeyLine.split(' ');
    expect(await readFile(knownHostsPath, 'utf8')).toBe(`[127.0.0.1]:${sshd.port} ${keyType} ${base64}\n`);
    expect(warnings).toEqual([expect.stringMatching(/^added the host key for node3/)]);
    const strict = transport({ knownHostsPath });
    expect((await exec(strict, { argv: ['echo', 'ok'] })).stdout).toBe('ok\n');
  });

  it('refuses a changed host key, under strict and accept-new alike', async () => {
    const oldLine = sshd.hostPubKeyLine;
    const knownHostsPath = join(scratch, `rotated-${randomInt(1e9)}`);
    await writeFile(knownHostsPath, `[127.0.0.1]:${sshd.port} ${oldLine}\n`);
    const expected = await hostFingerprint();
    await sshd.rotateHostKey();
    const actual = await hostFingerprint();
    expect(actual).not.toBe(expected);
    for (const hostKeyPolicy of ['strict', 'accept-new'] as const) {
      const result = await connect(transport({ knownHostsPath, hostKeyPolicy }));
      expect(result).toEqual({
        ok: false,
        reason: `host key for node3 (127.0.0.1:${sshd.port}) changed: expected ${expected}, got ${actual} — if the change is expected, remove the old entry from ${knownHostsPath} (line 1), e.g. with ssh-keygen -R`,
      });
    }
    // accept-new must not have added the new key.
    expect(await readFile(knownHostsPath, 'utf8')).toBe(`[127.0.0.1]:${sshd.port} ${oldLine}\n`);
    // Put the fixture back in order for the other tests.
    await writeFile(sshd.knownHostsPath, `[127.0.0.1]:${sshd.port} ${sshd.hostPubKeyLine}\n`);
  });

  it('refuses a key marked @revoked', async () => {
    const knownHostsPath = join(scratch, `revoked-${randomInt(1e9)}`);
    await writeFile(
      knownHostsPath,
      `[127.0.0.1]:${sshd.port} ${sshd.hostPubKeyLine}\n@revoked * ${sshd.hostPubKeyLine}\n`,
    );
    const result = await connect(transport({ knownHostsPath }));
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(/@revoked in .*:2/) });
  });

  it('prefers the key type known_hosts has for the host, as OpenSSH does', async () => {
    const knownHostsPath = join(scratch, `ecdsa-only-${randomInt(1e9)}`);
    await writeFile(knownHostsPath, `[127.0.0.1]:${sshd.port} ${sshd.ecdsaHostPubKeyLine}\n`);
    // Without the preference ssh2 picks ssh-ed25519 first, finds no such entry, and strict refuses.
    expect(await connect(transport({ knownHostsPath }))).toEqual({ ok: true });
  });

  it('refuses a key of a type not recorded for a host known by other types, even under accept-new', async () => {
    const rsa = join(scratch, `rsa-${randomInt(1e9)}`);
    await run('ssh-keygen', ['-q', '-t', 'rsa', '-b', '2048', '-N', '', '-f', rsa]);
    const knownHostsPath = join(scratch, `rsa-only-${randomInt(1e9)}`);
    const line = `[127.0.0.1]:${sshd.port} ${(await readFile(`${rsa}.pub`, 'utf8')).trim()}\n`;
    await writeFile(knownHostsPath, line);
    const result = await connect(transport({ knownHostsPath, hostKeyPolicy: 'accept-new' }));
    expect(result).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/only has ssh-rsa keys for it/),
    });
    expect(await readFile(knownHostsPath, 'utf8')).toBe(line);
  });

  it('policy off connects to anything and warns once', async () => {
    const warnings: string[] = [];
    const t = transport({
      knownHostsPath: join(scratch, 'never-written'),
      hostKeyPolicy: 'off',
      onWarning: (m) => warnings.push(m),
    });
    expect(await connect(t)).toEqual({ ok: true });
    await sshd.restart(); // forces a second connection
    expect((await exec(t, { argv: ['true'] })).code).toBe(0);
    // The host key warning once; the reconnection after the restart is reported too.
    expect(warnings).toEqual([
      expect.stringMatching(/host key checking is off for node3/),
      expect.stringMatching(/the connection to node3 .* was lost; reconnected/),
    ]);
    await expect(readFile(join(scratch, 'never-written'))).rejects.toThrow(/ENOENT/);
  });
});

describe('ssh transport: login failures', () => {
  it('reports an unauthorized key as an authentication failure', async () => {
    const key = join(scratch, `stranger-${randomInt(1e9)}`);
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', key]);
    const result = await connect(transport({ privateKeyPath: key }));
    expect(result).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^authentication failed for root@node3/),
    });
  });

  it('reports an encrypted key without passphrase instead of throwing, and uses it with one', async () => {
    const without = await connect(transport({ privateKeyPath: sshd.encryptedClientKeyPath }));
    expect(without).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/is encrypted: give its passphrase/),
    });
    const withPassphrase = transport({
      privateKeyPath: sshd.encryptedClientKeyPath,
      passphrase: CLIENT_KEY_PASSPHRASE,
    });
    expect(await connect(withPassphrase)).toEqual({ ok: true });
  });

  it('reports a missing key file', async () => {
    const result = await connect(transport({ privateKeyPath: '~/graceroll-no-such-key' }));
    expect(result).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/cannot read private key \/.*graceroll-no-such-key/),
    });
  });

  it('reports a refused connection', async () => {
    const result = await connect(transport({ port: 1 }));
    expect(result).toEqual({
      ok: false,
      reason: 'connection to node3 (127.0.0.1:1) refused: is sshd listening on port 1?',
    });
  });

  it('connect() returns when its signal aborts, without waiting for the handshake timeout', async () => {
    const { createServer } = await import('node:net');
    const silent = createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const started = Date.now();
      const result = await transport({ port, connectTimeoutMs: 10_000 }).connect(AbortSignal.timeout(200));
      expect(result).toEqual({ ok: false, reason: `connecting to node3 (127.0.0.1:${port}) was cancelled` });
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      silent.close();
    }
  });

  it('reports a handshake timeout', async () => {
    const { createServer } = await import('node:net');
    const silent = createServer(() => {}); // accepts and never speaks
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const result = await connect(transport({ port, connectTimeoutMs: 300 }));
      expect(result).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/timed out connecting to node3 .* after 300 ms/),
      });
    } finally {
      silent.close();
    }
  });
});

describe('ssh transport: dropped connections', () => {
  it('reconnects when sshd restarted between two commands', async () => {
    const t = transport();
    const before = await exec(t, { shell: 'echo "$SSH_CONNECTION"' });
    expect(before.code).toBe(0);
    await sshd.restart();
    const after = await exec(t, { shell: 'echo "$SSH_CONNECTION"' });
    expect(after).toMatchObject({ code: 0 });
    expect(after.stdout).not.toBe(before.stdout); // a new client port: a new connection
  });

  it('returns a transport failure while sshd is gone, and recovers when it is back', async () => {
    const t = transport();
    expect((await exec(t, { argv: ['true'] })).code).toBe(0);
    await sshd.kill();
    try {
      const result = await exec(t, { argv: ['true'] });
      expect(result).toMatchObject({
        code: null,
        failure: 'transport',
        reason: expect.stringMatching(/refused/),
      });
    } finally {
      await sshd.restart();
    }
    expect((await exec(t, { argv: ['true'] })).code).toBe(0);
  });

  it('reports a connection lost while a command runs', async () => {
    const t = transport();
    const pending = exec(t, { argv: ['sleep', '5'] });
    await sleep(500);
    await sshd.restart();
    expect(await pending).toMatchObject({
      code: null,
      failure: 'transport',
      reason: expect.stringMatching(/connection to node3 .* lost while the command ran/),
    });
  });

  it('close() ends the connection; later commands fail instead of reconnecting', async () => {
    const t = transport();
    const { stdout } = await exec(t, { shell: 'echo "$SSH_CONNECTION"' });
    const clientPort = stdout.split(' ')[1];
    await t.close();
    expect(await exec(t, { argv: ['true'] })).toMatchObject({
      failure: 'transport',
      reason: expect.stringMatching(/closed/),
    });
    const established = spawnSync('ss', ['-Htn', 'state', 'established', `( sport = :${clientPort} )`], {
      encoding: 'utf8',
    });
    if (established.status === 0) expect(established.stdout.trim()).toBe('');
  });
});

function uniqueSleep(): string {
  return `sleep 27.${randomInt(1e6, 1e7)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function pgrepSettled(pattern: string, withinMs: number): Promise<string[]> {
  const until = Date.now() + withinMs;
  while (Date.now() < until && pgrep(pattern).length > 0) await sleep(25);
  return pgrep(pattern);
}

/** Processes whose command line is exactly the pattern (sshd runs as the same user on this machine). */
function pgrep(pattern: string): string[] {
  const result = spawnSync('pgrep', ['-x', '-f', pattern], { encoding: 'utf8' });
  return result.stdout.split('\n').filter(Boolean);
}

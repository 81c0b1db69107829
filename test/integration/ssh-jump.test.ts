// Jump hosts, ssh config and ssh-agent against real sshd. The nodes behind the jump host really are
// unreachable from here: each sshd runs in its own network namespace, chained by veth pairs, with no
// forwarding anywhere:
//
//   this process ── 10.214.S.0/29 ── j1 ── 10.214.S.8/29 ── j2 ── 10.214.S.16/29 ── deep
//     .1                              .2 | .9                .10 | .17                .18
//
// This process routes 10.214.S.8/29 and .16/29 to j1 (so nothing leaves the machine), and j1 drops them.
// j1 is the jump host. j2 runs two sshd (22 and 2200): two nodes only j1 reaches, and the second hop
// of a chain to `deep`, which only j2 reaches. Needs root, iproute2 and OpenSSH's sshd; everything it
// creates is named grj<pid>… and removed afterwards (or by the next run when this one was killed).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseFleet } from '../../src/lib/config/load-config.js';
import type { RolloutEvent } from '../../src/lib/engine/events.js';
import { buildFleetParts, type FleetParts } from '../../src/lib/fleet-parts.js';
import { createJumpPool, type JumpHop, type JumpPool } from '../../src/lib/transport/jump.js';
import { createSshTransport, type SshTransportOptions } from '../../src/lib/transport/ssh.js';
import type { ExecResult, RemoteCommand, Transport } from '../../src/lib/transport/types.js';
import { descendants, startSshd } from '../helpers/sshd.js';

const run = promisify(execFile);
const PREFIX = `grj${process.pid}`;

function missing(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (network namespaces, sshd)';
  if (spawnSync('ip', ['netns', 'list']).status !== 0) return 'needs iproute2 with netns support';
  if (!existsSync('/usr/sbin/sshd')) return 'needs OpenSSH sshd (apt-get install openssh-server)';
  return undefined;
}
const why = missing();
if (why) console.warn(`ssh-jump tests skipped: ${why}`);

interface NsSshd {
  name: string;
  ip: string;
  port: number;
  hostPubKeyLine: string;
  /** Logins accepted since start ("Accepted publickey" in sshd's own log). */
  logins(): number;
  /** Kills sshd and every connection it serves, then starts it again. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

let dir: string;
let subnet: string;
let clientKey: string;
let knownHosts: string;
let j1: NsSshd;
let n1: NsSshd; // in j2's namespace, port 22: also the second hop
let n2: NsSshd; // in j2's namespace, port 2200
let deep: NsSshd;
const toClose: Array<{ close(): Promise<void> }> = [];

beforeAll(async () => {
  if (why) return;
  await removeStale();
  process.once('exit', teardownSync);
  dir = await mkdtemp(join(tmpdir(), 'graceroll-jump-'));
  subnet = await freeSubnet();
  await createNetwork();
  clientKey = join(dir, 'client_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'graceroll-test', '-f', clientKey]);
  await writeFile(join(dir, 'authorized_keys'), await readFile(`${clientKey}.pub`));
  [j1, n1, n2, deep] = await Promise.all([
    startNsSshd('j1', `${PREFIX}-j1`, ip(2), 22),
    startNsSshd('n1', `${PREFIX}-j2`, ip(10), 22),
    startNsSshd('n2', `${PREFIX}-j2`, ip(10), 2200),
    startNsSshd('deep', `${PREFIX}-t`, ip(18), 22),
  ]);
  knownHosts = join(dir, 'known_hosts');
  await writeFile(knownHosts, [j1, n1, n2, deep].map(knownHostsLine).join(''));
});

afterEach(async () => {
  await Promise.all(toClose.splice(0).map((t) => t.close()));
});

afterAll(async () => {
  if (why) return;
  await Promise.all([j1, n1, n2, deep].map((s) => s?.stop()));
  teardownSync();
  process.removeListener('exit', teardownSync);
  await rm(dir, { recursive: true, force: true });
});

const ip = (host: number): string => `${subnet}.${host}`;

const hop = (sshd: NsSshd, extra: Partial<JumpHop> = {}): JumpHop => ({
  name: sshd.name,
  host: sshd.ip,
  port: sshd.port,
  user: 'root',
  privateKeyPath: clientKey,
  ...extra,
});

function pool(overrides: Partial<Parameters<typeof createJumpPool>[0]> = {}): JumpPool {
  const p = createJumpPool({
    knownHostsPath: knownHosts,
    hostKeyPolicy: 'strict',
    connectTimeoutMs: 5000,
    ...overrides,
  });
  toClose.push(p);
  return p;
}

/** A node behind `chain`, built the way fleet-parts builds one. */
function behind(
  jumps: JumpPool,
  chain: JumpHop[],
  node: NsSshd,
  overrides: Partial<SshTransportOptions> = {},
) {
  return transport({
    node: node.name,
    host: node.ip,
    port: node.port,
    sock: () => jumps.stream(chain, node.ip, node.port),
    ...overrides,
  });
}

function transport(options: Partial<SshTransportOptions> & { node: string; host: string }): Transport {
  const t = createSshTransport({
    user: 'root',
    privateKeyPath: clientKey,
    knownHostsPath: knownHosts,
    hostKeyPolicy: 'strict',
    connectTimeoutMs: 5000,
    ...options,
  });
  toClose.push(t);
  return t;
}

const exec = (t: Transport, command: RemoteCommand): Promise<ExecResult> =>
  t.exec(command, { signal: new AbortController().signal, timeoutMs: 10_000 });
const connect = (t: Transport) => t.connect(new AbortController().signal);
/** `client-ip client-port server-ip server-port` as the node sees the connection. */
const seenBy = async (t: Transport): Promise<string[]> => {
  const result = await exec(t, { shell: 'echo "$SSH_CONNECTION"' });
  expect(result, result.reason ?? result.stderr).toMatchObject({ code: 0 });
  return result.stdout.trim().split(' ');
};

describe.skipIf(why)('jump hosts (real sshd in network namespaces)', () => {
  it('the nodes cannot be reached directly, nor from the jump host further than its own network', async () => {
    const direct = await connect(transport({ node: 'n1', host: n1.ip, port: 22, connectTimeoutMs: 1500 }));
    expect(direct).toMatchObject({ ok: false, reason: expect.stringMatching(/timed out|EHOSTUNREACH/) });
    // j1 has no route to deep's network: only j2 has.
    const viaJ1 = await connect(behind(pool(), [hop(j1)], deep));
    expect(viaJ1).toMatchObject({
      ok: false,
      reason: expect.stringMatching(
        new RegExp(
          `^cannot reach deep \\(${deep.ip}:22\\): jump host j1 \\(${j1.ip}:22\\) cannot open a connection to ${deep.ip}:22: `,
        ),
      ),
    });
  });

  it('through the jump host the node answers, and sees the connection come from the jump host', async () => {
    const [clientIp, , serverIp, serverPort] = await seenBy(behind(pool(), [hop(j1)], n1));
    expect([clientIp, serverIp, serverPort]).toEqual([ip(9), n1.ip, '22']);
  });

  it('one jump connection serves every node behind it', async () => {
    const jumps = pool();
    const before = j1.logins();
    const nodes = [behind(jumps, [hop(j1)], n1), behind(jumps, [hop(j1)], n2)];
    const seen = await Promise.all(nodes.map(seenBy));
    expect(seen.map((s) => s[3])).toEqual(['22', '2200']);
    await Promise.all(nodes.map(seenBy)); // again, on the same connections
    expect(j1.logins() - before).toBe(1);
    expect(jumps.openConnections()).toBe(1);
  });

  it('a dropped jump connection is opened again on the next reconnect', async () => {
    const jumps = pool();
    const node = behind(jumps, [hop(j1)], n1);
    const before = j1.logins();
    const first = await seenBy(node);
    await j1.restart(); // kills the jump connection, and with it the node's connection through it
    const second = await seenBy(node);
    expect(second[1]).not.toBe(first[1]); // a new connection to the node…
    expect(j1.logins() - before).toBe(2); // …through a new connection to the jump host
  });

  it('a 2-hop chain reaches a node only the second jump host can reach', async () => {
    const jumps = pool();
    const [clientIp, , serverIp] = await seenBy(behind(jumps, [hop(j1), hop(n1, { name: 'j2' })], deep));
    expect([clientIp, serverIp]).toEqual([ip(17), deep.ip]);
    expect(jumps.openConnections()).toBe(2);
  });

  it('refuses an unknown host key at the jump host, naming it, and under accept-new records it', async () => {
    const partial = join(dir, 'known_hosts-no-j1');
    await writeFile(partial, [n1, n2, deep].map(knownHostsLine).join(''));
    const refused = await connect(
      behind(pool({ knownHostsPath: partial }), [hop(j1)], n1, { knownHostsPath: partial }),
    );
    expect(refused).toMatchObject({
      ok: false,
      reason: expect.stringMatching(
        new RegExp(
          `^cannot reach n1 \\(${n1.ip}:22\\): host key for jump host j1 \\(${j1.ip}:22\\) \\(ssh-ed25519 SHA256:\\S+\\) is not in ${partial}`,
        ),
      ),
    });
    const acceptNew = pool({ knownHostsPath: partial, hostKeyPolicy: 'accept-new' });
    const node = behind(acceptNew, [hop(j1)], n1, { knownHostsPath: partial });
    expect(await connect(node)).toEqual({ ok: true });
    expect(await readFile(partial, 'utf8')).toContain(
      `${j1.ip} ${j1.hostPubKeyLine.split(' ').slice(0, 2).join(' ')}\n`,
    );
  });

  it('refuses a changed host key at the second hop, and an unknown one at the node, each by name', async () => {
    const stranger = join(dir, 'stranger');
    await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', stranger]);
    const strangerLine = (await readFile(`${stranger}.pub`, 'utf8')).trim();
    const wrongJ2 = join(dir, 'known_hosts-wrong-j2');
    await writeFile(wrongJ2, `${knownHostsLine(j1)}${n1.ip} ${strangerLine}\n${knownHostsLine(deep)}`);
    const chain = [hop(j1), hop(n1, { name: 'j2' })];
    const changed = await connect(
      behind(pool({ knownHostsPath: wrongJ2 }), chain, deep, { knownHostsPath: wrongJ2 }),
    );
    expect(changed).toMatchObject({
      ok: false,
      reason: expect.stringMatching(
        new RegExp(
          `^cannot reach deep \\(${deep.ip}:22\\): host key for jump host j2 \\(${n1.ip}:22\\) changed: `,
        ),
      ),
    });
    const noDeep = join(dir, 'known_hosts-no-deep');
    await writeFile(noDeep, [j1, n1].map(knownHostsLine).join(''));
    const unknown = await connect(
      behind(pool({ knownHostsPath: noDeep }), chain, deep, { knownHostsPath: noDeep }),
    );
    expect(unknown).toMatchObject({
      ok: false,
      reason: expect.stringMatching(new RegExp(`^host key for deep \\(${deep.ip}:22\\) \\(ssh-ed25519 `)),
    });
  });
});

describe.skipIf(why)('ssh config and jump hosts through the fleet file', () => {
  let configPath: string;
  beforeAll(async () => {
    if (why) return;
    // IdentityFile tokens: %r is the remote user, %h the HostName.
    await mkdir(join(dir, 'keys'));
    await copyFile(clientKey, join(dir, 'keys', 'bastion-root'));
    await copyFile(clientKey, join(dir, 'keys', `${n1.ip}.key`));
    await copyFile(clientKey, join(dir, 'keys', `${deep.ip}.key`));
    await mkdir(join(dir, 'conf.d'));
    configPath = join(dir, 'ssh_config');
    await writeFile(
      configPath,
      `Include ${dir}/conf.d/*.conf
Host bastion
  HostName ${j1.ip}
  IdentityFile ${dir}/keys/bastion-%r
`,
    );
    await writeFile(
      join(dir, 'conf.d', '10-nodes.conf'),
      `Host app-nobody
  User graceroll-nobody
Host app-* !app-direct
  ProxyJump bastion
Host app-*
  HostName ${n1.ip}
  User root
  IdentityFile ${dir}/keys/%h.key
Host app-2
  Port 2200
`,
    );
    // Sorted after 10-nodes.conf; deep goes through bastion, then app-1 (whose own ProxyJump does not count).
    await writeFile(
      join(dir, 'conf.d', '20-deep.conf'),
      `Host deep
  HostName ${deep.ip}
  IdentityFile ${dir}/keys/%h.key
  ProxyJump bastion,app-1
`,
    );
  });

  function fleetParts(
    nodes: object[],
    transport: object = {},
  ): { parts: FleetParts; events: RolloutEvent[] } {
    const fleet = parseFleet(
      {
        transport: {
          type: 'ssh',
          sshConfig: configPath,
          knownHosts,
          hostKeyPolicy: 'strict',
          agent: false,
          connectTimeout: '5s',
          ...transport,
        },
        service: { type: 'command', status: 'true', restart: 'true' },
        nodes,
      },
      'test',
    );
    const events: RolloutEvent[] = [];
    const parts = buildFleetParts(fleet, (e) => events.push(e));
    toClose.push(parts);
    return { parts, events };
  }

  for (const engine of ['ssh -G', 'the parser (no ssh binary)'] as const) {
    it(`Host patterns, HostName, User, Port, IdentityFile, ProxyJump and Include apply, via ${engine}`, async () => {
      const path = process.env.PATH;
      if (engine !== 'ssh -G') process.env.PATH = '/nonexistent-graceroll-path';
      try {
        const { parts, events } = fleetParts([
          { name: 'app-1' },
          { name: 'app-2' },
          { name: 'deep' },
          { name: 'nobody', host: 'app-nobody' },
          { name: 'rooted', host: 'app-nobody', user: 'root' }, // the fleet file's user wins
          { name: 'app2-on-22', host: 'app-2', port: 22 }, // and its port
        ]);
        const byName = new Map(parts.fleet.nodes.map((n) => [n.name, parts.transportFor(n)]));
        const before = j1.logins();
        const seen = async (name: string) => seenBy(byName.get(name)!);
        expect(await seen('app-1')).toEqual([ip(9), expect.any(String), n1.ip, '22']);
        expect(await seen('app-2')).toEqual([ip(9), expect.any(String), n2.ip, '2200']);
        expect(await seen('deep')).toEqual([ip(17), expect.any(String), deep.ip, '22']);
        expect(await seen('rooted')).toEqual([ip(9), expect.any(String), n1.ip, '22']);
        expect((await seen('app2-on-22'))[3]).toBe('22');
        expect(await byName.get('nobody')!.connect(new AbortController().signal)).toEqual({
          ok: false,
          reason: `authentication failed for graceroll-nobody@nobody (${n1.ip}:22) (offered: key ${dir}/keys/${n1.ip}.key)`,
        });
        expect(j1.logins() - before).toBe(1); // every node shares the one connection to the bastion
        expect(events.filter((e) => e.kind === 'warning')).toEqual([]);
      } finally {
        process.env.PATH = path;
      }
    });
  }

  it('transport.jump in the fleet file replaces ProxyJump; jump: none goes direct', async () => {
    const { parts } = fleetParts([{ name: 'n2', host: n2.ip, port: 2200 }], {
      sshConfig: false,
      jump: `root@${j1.ip}:22`,
      identityFile: clientKey,
    });
    expect((await seenBy(parts.transportFor(parts.fleet.nodes[0])))[0]).toBe(ip(9));
    const direct = fleetParts([{ name: 'app-1' }], { jump: 'none', connectTimeout: '1500ms' });
    expect(
      await direct.parts.transportFor(direct.parts.fleet.nodes[0]).connect(new AbortController().signal),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/timed out|EHOSTUNREACH/),
    });
  });

  it('a broken ssh config fails the node with OpenSSH’s own message, nothing else', async () => {
    const broken = join(dir, 'broken_config');
    await writeFile(broken, 'Host *\n  Port banana\n');
    const { parts } = fleetParts([{ name: 'app-1' }], { sshConfig: broken });
    expect(
      await parts.transportFor(parts.fleet.nodes[0]).connect(new AbortController().signal),
    ).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/^app-1: ssh -G app-1 failed: .*line 2: Bad port/),
    });
  });
});

describe.skipIf(why)('ssh-agent', () => {
  let agent: ChildProcess;
  let socket: string;
  beforeAll(async () => {
    if (why) return;
    socket = join(dir, 'agent.sock');
    agent = spawn('ssh-agent', ['-D', '-a', socket], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    await run('ssh-add', [clientKey], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    const listed = await run('ssh-add', ['-l'], { env: { ...process.env, SSH_AUTH_SOCK: socket } });
    expect(listed.stdout).toContain('graceroll-test');
  });
  afterAll(() => {
    agent?.kill();
  });

  it('logs in with a key held only by the agent (no identity file)', async () => {
    const sshd = await startSshd();
    try {
      // The helper's sshd authorizes its own key: add ours, which only the agent holds.
      await writeFile(join(sshd.dir, 'authorized_keys'), await readFile(`${clientKey}.pub`), { flag: 'a' });
      const options = {
        node: 'local',
        host: '127.0.0.1',
        port: sshd.port,
        knownHostsPath: sshd.knownHostsPath,
      };
      const withAgent = transport({ ...options, privateKeyPath: undefined, agent: socket });
      expect((await exec(withAgent, { argv: ['echo', 'ok'] })).stdout).toBe('ok\n');
      const without = transport({ ...options, privateKeyPath: undefined });
      expect(await connect(without)).toEqual({
        ok: false,
        reason: `authentication failed for root@local (127.0.0.1:${sshd.port}) (offered: nothing)`,
      });
    } finally {
      await sshd.stop();
    }
  });

  it('the agent serves every hop of a 2-hop chain', async () => {
    const jumps = pool({ agent: socket });
    const chain = [
      hop(j1, { privateKeyPath: undefined }),
      hop(n1, { name: 'j2', privateKeyPath: undefined }),
    ];
    const node = behind(jumps, chain, deep, { privateKeyPath: undefined, agent: socket });
    expect((await seenBy(node))[0]).toBe(ip(17));
  });
});

function knownHostsLine(sshd: NsSshd): string {
  const name = sshd.port === 22 ? sshd.ip : `[${sshd.ip}]:${sshd.port}`;
  return `${name} ${sshd.hostPubKeyLine}\n`;
}

/** A 10.214.S.0/24 nobody on this machine uses (the e2e lab uses 10.213.N.0/24). */
async function freeSubnet(): Promise<string> {
  const { stdout } = await run('ip', ['-o', '-4', 'addr', 'show']);
  for (let s = 1 + (process.pid % 200); s < 1 + (process.pid % 200) + 254; s++) {
    const candidate = `10.214.${(s % 254) + 1}`;
    if (!stdout.includes(` ${candidate}.`)) return candidate;
  }
  throw new Error('no free 10.214.x.0/24 subnet');
}

async function createNetwork(): Promise<void> {
  const script = `set -euo pipefail
ip netns add ${PREFIX}-j1
ip netns add ${PREFIX}-j2
ip netns add ${PREFIX}-t
ip link add ${PREFIX}h type veth peer name eth0 netns ${PREFIX}-j1
ip addr add ${ip(1)}/29 dev ${PREFIX}h
ip link set ${PREFIX}h up
# The hidden networks are routed to j1, which does not forward: packets stay on this machine, and a
# direct attempt fails at j1 (the routes go away with the link).
ip route add ${ip(8)}/29 via ${ip(2)} dev ${PREFIX}h
ip route add ${ip(16)}/29 via ${ip(2)} dev ${PREFIX}h
ip -n ${PREFIX}-j1 link add eth1 type veth peer name eth0 netns ${PREFIX}-j2
ip -n ${PREFIX}-j2 link add eth1 type veth peer name eth0 netns ${PREFIX}-t
ip -n ${PREFIX}-j1 addr add ${ip(2)}/29 dev eth0
ip -n ${PREFIX}-j1 addr add ${ip(9)}/29 dev eth1
ip -n ${PREFIX}-j2 addr add ${ip(10)}/29 dev eth0
ip -n ${PREFIX}-j2 addr add ${ip(17)}/29 dev eth1
ip -n ${PREFIX}-t addr add ${ip(18)}/29 dev eth0
for ns in j1 j2 t; do
  ip netns exec ${PREFIX}-$ns sysctl -qw net.ipv4.ip_forward=0
  for dev in lo eth0 eth1; do ip -n ${PREFIX}-$ns link set $dev up 2>/dev/null || true; done
done
`;
  await run('bash', ['-c', script]);
}

async function startNsSshd(name: string, netns: string, address: string, port: number): Promise<NsSshd> {
  const base = join(dir, `${name}`);
  await mkdir(base);
  const hostKey = join(base, 'host_ed25519');
  await run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', hostKey]);
  const config = join(base, 'sshd_config');
  await writeFile(
    config,
    [
      `ListenAddress ${address}:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${join(base, 'sshd.pid')}`,
      `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
      'UsePAM no',
      'StrictModes no',
      'PermitRootLogin prohibit-password',
      'PasswordAuthentication no',
      'KbdInteractiveAuthentication no',
      'AllowTcpForwarding yes',
      'MaxStartups 100',
      'LogLevel VERBOSE',
      '',
    ].join('\n'),
  );
  let log = '';
  let daemon: ChildProcess;
  const launch = async (): Promise<void> => {
    const from = log.length;
    // sshd(8) refuses to start without its privilege-separation directory; a fresh machine has none.
    await mkdir('/run/sshd', { recursive: true });
    // `ip netns exec` execs sshd in place: the child's pid is sshd's.
    daemon = spawn('ip', ['netns', 'exec', netns, '/usr/sbin/sshd', '-D', '-e', '-f', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    daemon.stderr?.on('data', (chunk: Buffer) => (log += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (!log.slice(from).includes('Server listening on')) {
      if (daemon.exitCode !== null || Date.now() > deadline)
        throw new Error(`sshd ${name} did not start in ${netns}:\n${log.slice(from)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const kill = async (): Promise<void> => {
    const pid = daemon.pid;
    if (pid === undefined || daemon.exitCode !== null || daemon.signalCode !== null) return;
    const gone = new Promise((resolve) => daemon.once('exit', resolve));
    for (const p of [pid, ...(await descendants(pid))]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await gone;
  };
  await launch();
  return {
    name,
    ip: address,
    port,
    hostPubKeyLine: (await readFile(`${hostKey}.pub`, 'utf8')).trim(),
    logins: () => log.split('\n').filter((l) => l.includes('Accepted publickey')).length,
    async restart() {
      await kill();
      await launch();
    },
    stop: kill,
  };
}

/** Namespaces and links of this run; sshd processes in them are killed first (a netns lives while they do). */
function teardownSync(): void {
  for (const ns of ['j1', 'j2', 't'].map((n) => `${PREFIX}-${n}`)) removeNetns(ns);
  spawnSync('ip', ['link', 'del', `${PREFIX}h`], { stdio: 'ignore' });
}

function removeNetns(ns: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '';
  for (const pid of pids.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // gone
    }
  }
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
}

/** Leftovers of a run that was killed before its clean-up: its pid is gone. */
async function removeStale(): Promise<void> {
  const { stdout } = await run('ip', ['netns', 'list']);
  for (const line of stdout.split('\n')) {
    const match = /^(grj(\d+))-\S+/.exec(line);
    if (!match || existsSync(`/proc/${match[2]}`)) continue;
    removeNetns(match[0]);
    spawnSync('ip', ['link', 'del', `${match[1]}h`], { stdio: 'ignore' });
  }
}

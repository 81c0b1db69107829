// The end-to-end lab: a real fleet on one machine. N nodes, each a real systemd (systemd-nspawn
// --boot) with real sshd and the service under test as web.service, behind a real HAProxy in its
// own node. See test/lab/README.md and shared/lab/LAB.md for the why of each choice.
//
//   const lab = await startLab({ nodes: 5 });
//   ... graceroll against lab.nodes / lab.lb / lab.ssh ...
//   await lab.stop();
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ADMIN_TCP_PORT,
  BACKEND,
  HAPROXY_DROP_IN,
  LB_ADMIN_DIR,
  haproxyCommand,
  haproxyConfig,
  serverStatuses,
} from './haproxy.js';
import { createBridge, createNetns, labNet, MAX_NODES } from './network.js';
import { mountRoot, prepareUpper } from './node-root.js';
import { boot, execIn, leaderPid } from './nspawn.js';
import { runOk, waitFor } from './proc.js';
import { diagnose, waitReady } from './ready.js';
import { RUN_DIR, cgroupRoots, claimPrefix, cleanupStaleLabs, teardown, teardownSync } from './registry.js';
import type { Lab, LabLb, LabNode, LabOptions, LabSsh, Machine, ServiceMode } from './types.js';
import { NODE_STATE_DIR, sshConfig, webUnit } from './units.js';

export { leftovers, cleanupStaleLabs } from './registry.js';
export type { Lab, LabLb, LabNode, LabOptions, LabSsh, ServiceMode } from './types.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const SERVICE_SCRIPT = path.resolve(HERE, '../fixtures/service/server.js');

/** Whether this machine can run the lab; tests skip with `reason` when it cannot. */
export function labAvailable(): { ok: boolean; reason: string } {
  const missing: string[] = [];
  if (process.platform !== 'linux') return { ok: false, reason: 'the lab needs Linux' };
  if (process.getuid?.() !== 0)
    return { ok: false, reason: 'the lab needs root (network namespaces, mounts)' };
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin', '/bin'];
  const tools: Record<string, string> = {
    'systemd-nspawn': 'systemd-container',
    haproxy: 'haproxy',
    sshd: 'openssh-server',
    ssh: 'openssh-client',
    'ssh-keygen': 'openssh-client',
    ip: 'iproute2',
    nsenter: 'util-linux',
    findmnt: 'util-linux',
  };
  for (const [tool, pkg] of Object.entries(tools)) {
    if (!dirs.some((d) => d && fs.existsSync(path.join(d, tool)))) missing.push(`${tool} (${pkg})`);
  }
  if (!['/lib/systemd/systemd', '/usr/lib/systemd/systemd'].some((p) => fs.existsSync(p)))
    missing.push('systemd');
  if (missing.length) return { ok: false, reason: `missing: ${missing.join(', ')}; apt-get install them` };
  if (cgroupRoots().length === 0)
    return { ok: false, reason: 'no systemd or unified cgroup hierarchy mounted' };
  return { ok: true, reason: '' };
}

export async function startLab(options: LabOptions = {}): Promise<Lab> {
  const t0 = Date.now();
  const nodeCount = options.nodes ?? 3;
  const servicePort = options.servicePort ?? 8080;
  const httpPort = options.lbHttpPort ?? 80;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > MAX_NODES) {
    throw new Error(`lab: nodes must be 1..${MAX_NODES}`);
  }
  const available = labAvailable();
  if (!available.ok) throw new Error(`lab unavailable: ${available.reason}`);

  await cleanupStaleLabs();
  const { prefix, index } = claimPrefix();
  // Safety net: if the test process exits without stop(), the lab still goes.
  const onExit = () => teardownSync(prefix);
  process.on('exit', onExit);

  const base = path.join(RUN_DIR, prefix);
  const lnet = labNet(prefix, index);
  const machine = (name: string, ip: string, veth: string): Machine => ({
    name,
    ip,
    veth,
    dir: path.join(base, name),
    netns: `${prefix}-${name}`,
  });
  const lbMachine = machine('lb', lnet.lbIp, `${prefix}vlb`);
  const nodeMachines = Array.from({ length: nodeCount }, (_, i) =>
    machine(`node${i + 1}`, lnet.nodeIp(i + 1), `${prefix}v${i + 1}`),
  );
  const machines = [lbMachine, ...nodeMachines];
  const modeOf = (name: string): ServiceMode =>
    typeof options.serviceMode === 'string' ? options.serviceMode : (options.serviceMode?.[name] ?? 'normal');

  const ssh: LabSsh = {
    user: 'root',
    privateKeyPath: path.join(base, 'ssh/id_ed25519'),
    publicKey: '',
    knownHostsPath: path.join(base, 'ssh/known_hosts'),
    configPath: path.join(base, 'ssh/config'),
  };
  const nodes: LabNode[] = nodeMachines.map((m) => ({
    name: m.name,
    ip: m.ip,
    sshPort: 22,
    stateDir: path.join(m.dir, 'state'),
    mode: modeOf(m.name),
    url: `http://${m.ip}:${servicePort}`,
  }));
  const lb: LabLb = {
    name: 'lb',
    ip: lnet.lbIp,
    sshPort: 22,
    httpPort,
    url: `http://${lnet.lbIp}${httpPort === 80 ? '' : `:${httpPort}`}/`,
    adminSocket: path.join(lbMachine.dir, 'admin/admin.sock'),
    adminTcp: `${lnet.lbIp}:${ADMIN_TCP_PORT}`,
    backend: BACKEND,
    serverName: (node) => (typeof node === 'string' ? node : node.name),
  };

  const leader = async (name: string): Promise<number> => {
    const m = machines.find((x) => x.name === name);
    if (!m?.nspawnPid) throw new Error(`lab: no node named ${name}`);
    m.leader ??= await waitFor(`init of ${name}`, () => leaderPid(m.nspawnPid!), 10_000, 20);
    return m.leader;
  };
  let stopped = false;
  const lab: Lab = {
    prefix,
    hostIp: lnet.hostIp,
    servicePort,
    nodes,
    lb,
    ssh,
    startMs: 0,
    exec: async (name, cmd, opts) => execIn(await leader(name), cmd, opts?.timeoutMs ?? 120_000),
    haproxy: (command) => haproxyCommand(lb.adminSocket, command),
    serverStatuses: () => serverStatuses(lb.adminSocket, BACKEND),
    stop: async () => {
      if (stopped) return;
      await teardown(prefix);
      // Only once it worked: if teardown failed, the exit safety net tries again.
      stopped = true;
      process.off('exit', onExit);
    },
  };

  try {
    // One tmpfs holds every upper layer, key and log: not part of the overlays' lower layer (the
    // host's /), and unmounting it removes every file the lab wrote.
    fs.mkdirSync(base, { recursive: true });
    await runOk('mount', ['-t', 'tmpfs', '-o', 'mode=0700', `graceroll-lab-${prefix}`, base]);
    fs.mkdirSync(path.join(base, 'ssh'));
    const keygen = [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      `graceroll-lab-${prefix}`,
      '-f',
      ssh.privateKeyPath,
    ];
    await runOk('ssh-keygen', keygen);
    ssh.publicKey = fs.readFileSync(`${ssh.privateKeyPath}.pub`, 'utf8').trim();

    await createBridge(lnet);
    await Promise.all(machines.map((m) => createNetns(lnet, m.netns, m.veth, m.ip)));

    const hosts = machines.map((m) => `${m.ip} ${m.name}\n`).join('') + `${lnet.hostIp} host\n`;
    const hostKeys = await Promise.all(
      machines.map(async (m) => {
        const isLb = m === lbMachine;
        const hostKey = await prepareUpper({
          hostname: m.name,
          dir: m.dir,
          authorizedKey: `${ssh.publicKey}\n`,
          hosts,
          units: isLb
            ? {}
            : { 'web.service': webUnit(SERVICE_SCRIPT, m.name, modeOf(m.name), servicePort, options) },
          wants: [isLb ? 'haproxy.service' : 'web.service'],
          files: isLb
            ? {
                '/etc/haproxy/haproxy.cfg': haproxyConfig(
                  lnet.lbIp,
                  httpPort,
                  nodeMachines.map((n) => ({ name: n.name, addr: `${n.ip}:${servicePort}` })),
                ),
                '/etc/systemd/system/haproxy.service.d/graceroll-lab.conf': HAPROXY_DROP_IN,
              }
            : {},
        });
        const lock = await mountRoot(m.dir);
        fs.writeFileSync(path.join(m.dir, 'nspawn.lock'), lock);
        const extraArgs = isLb ? [`--bind=${path.join(m.dir, 'admin')}:${LB_ADMIN_DIR}`] : nodeBinds(m);
        fs.mkdirSync(path.join(m.dir, isLb ? 'admin' : 'state'), { recursive: true });
        m.nspawnPid = boot({ prefix, name: m.name, dir: m.dir, netns: m.netns, extraArgs });
        return `${m.ip} ${hostKey}\n`;
      }),
    );
    fs.writeFileSync(ssh.knownHostsPath, hostKeys.join(''));
    fs.writeFileSync(
      ssh.configPath,
      sshConfig(
        machines.map((m) => m.ip),
        ssh,
      ),
    );

    await waitReady(lab, machines, readyTimeoutMs);
    lab.startMs = Date.now() - t0;
    return lab;
  } catch (err) {
    const diagnostics = await diagnose(lab, machines).catch(
      (e: Error) => `(diagnostics failed: ${e.message})`,
    );
    await lab.stop().catch(() => {});
    throw new Error(`${(err as Error).message}\n--- lab diagnostics ---\n${diagnostics}`, { cause: err });
  }
}

function nodeBinds(m: Machine): string[] {
  // The service script and the node binary are bound in explicitly, so the lab works wherever the
  // repo and node live (another filesystem, e.g. /home, is not part of the overlay's lower layer).
  return [
    `--bind-ro=${path.dirname(SERVICE_SCRIPT)}`,
    `--bind-ro=${fs.realpathSync(process.execPath)}`,
    `--bind=${path.join(m.dir, 'state')}:${NODE_STATE_DIR}`,
  ];
}

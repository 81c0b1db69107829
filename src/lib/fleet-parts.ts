import type { Fleet, FleetNode } from './config/types.js';
import type { EmitEvent } from './engine/events.js';
import type { EngineParts } from './engine/types.js';
import { createLoadBalancer } from './lb/index.js';
import { createServiceManager } from './service/index.js';
import { createDeferredTransport, createJumpPool } from './transport/jump.js';
import { createLocalTransport } from './transport/local.js';
import { createSshConfigResolver, resolveSshTarget } from './transport/ssh-config.js';
import { createSshTransport } from './transport/ssh.js';
import type { Transport } from './transport/types.js';
import { expandHome } from './home.js';
import { lockHost } from './plan/where.js';

export { expandHome };

export interface FleetParts extends EngineParts {
  /** Where the rollout lock lives: lock.host, else the load balancer host over SSH, else this machine. */
  lockTransport(): Transport;
  close(): Promise<void>;
}

/**
 * Builds the adapters for a fleet. Nothing here opens a connection: transports connect on first use, so
 * the same parts serve the dry run (which never uses them) and the real rollout.
 */
export function buildFleetParts(
  fleet: Fleet,
  emit: EmitEvent,
  secrets: { passphrase?: string } = {},
): FleetParts {
  const transports = new Map<string, Transport>();
  const warn = (node: string) => (message: string) => emit({ kind: 'warning', node, message });

  // Shared by every SSH connection of the fleet: one ssh config lookup per host, one connection per jump host.
  const ssh = fleet.transport.type === 'ssh' ? fleet.transport : undefined;
  const sshConfig = createSshConfigResolver({
    configPath: ssh?.sshConfig,
    onWarning: (message) => emit({ kind: 'warning', message }),
  });
  const login = ssh && {
    passphrase: secrets.passphrase ?? (ssh.passphraseEnv ? process.env[ssh.passphraseEnv] : undefined),
    agent: ssh.agent ? process.env.SSH_AUTH_SOCK : undefined,
    knownHostsPath: expandHome(ssh.knownHosts),
    hostKeyPolicy: ssh.hostKeyPolicy,
    connectTimeoutMs: ssh.connectTimeout,
  };
  const jumps =
    login && createJumpPool({ ...login, onWarning: (message) => emit({ kind: 'warning', message }) });

  /**
   * A node's transport. The ssh config is applied to `host` (HostName, User, Port, IdentityFile, ProxyJump)
   * on first use; the fleet file's own port/user/identityFile/jump win over it where set (ssh-config.ts).
   */
  const open = (name: string, host: string, port?: number, user?: string): Transport => {
    const config = fleet.transport;
    if (config.type === 'local' || !login || !jumps) return createLocalTransport(name);
    const jump =
      typeof config.jump === 'string' && config.jump !== 'none' ? config.jump.split(',') : config.jump;
    return createDeferredTransport(name, async () => {
      const target = await resolveSshTarget(sshConfig, {
        host,
        port: port ?? config.port,
        user: user ?? config.user,
        identityFile: config.identityFile && expandHome(config.identityFile),
        jump,
      });
      target.warnings.forEach(warn(name));
      const chain = target.jumps;
      return createSshTransport({
        ...login,
        node: name,
        host: target.host,
        port: target.port,
        user: target.user,
        privateKeyPath: target.privateKeyPath,
        maxSessions: config.maxSessions,
        sock: chain.length > 0 ? () => jumps.stream(chain, target.host, target.port) : undefined,
        onWarning: warn(name),
      });
    });
  };
  const cached = (key: string, make: () => Transport) => {
    let transport = transports.get(key);
    if (!transport) transports.set(key, (transport = make()));
    return transport;
  };
  const transportFor = (node: FleetNode) =>
    cached(`node:${node.name}`, () => open(node.name, node.host, node.port, node.user));
  const lb = createLoadBalancer(fleet.loadBalancer, {
    local: cached('controller', () => createLocalTransport('controller')),
    transportTo: (host) => cached(`lb:${host}`, () => open(host, host)),
    timeoutMs: fleet.deadlines.command,
  });
  const controller = cached('controller', () => createLocalTransport('controller'));
  const lockAt = lockHost(fleet);
  return {
    fleet,
    service: createServiceManager(fleet.service),
    lb,
    transportFor,
    emit,
    controller,
    lockTransport: () =>
      lockAt && fleet.transport.type === 'ssh'
        ? cached(`lb:${lockAt}`, () => open(lockAt, lockAt))
        : controller,
    async close() {
      await lb.close();
      await Promise.all([...transports.values()].map((t) => t.close()));
      await jumps?.close();
    },
  };
}

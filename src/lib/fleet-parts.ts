import { existsSync } from 'node:fs';
import { homedir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { Fleet, FleetNode } from './config/types.js';
import type { EmitEvent } from './engine/events.js';
import type { EngineParts } from './engine/types.js';
import { createLoadBalancer } from './lb/index.js';
import { createServiceManager } from './service/index.js';
import { createLocalTransport } from './transport/local.js';
import { createSshTransport } from './transport/ssh.js';
import type { Transport } from './transport/types.js';

export const expandHome = (path: string): string =>
  path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;

/** OpenSSH's default identities, in its order (ssh(1) -i). */
const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];

export interface FleetParts extends EngineParts {
  /** Where the rollout lock lives: lock.host, else the HAProxy host over SSH, else this machine. */
  lockTransport(): Transport;
  close(): Promise<void>;
}

/**
 * Builds the adapters for a fleet. Nothing here opens a connection: transports connect on first use, so
 * the same parts serve the dry run (which never uses them) and the real rollout.
 */
export function buildFleetParts(fleet: Fleet, emit: EmitEvent): FleetParts {
  const transports = new Map<string, Transport>();
  const warn = (node: string) => (message: string) => emit({ kind: 'warning', node, message });

  const open = (name: string, host: string, port?: number, user?: string): Transport => {
    const config = fleet.transport;
    if (config.type === 'local') return createLocalTransport(name);
    const identity =
      config.identityFile ?? DEFAULT_KEYS.map((k) => `~/.ssh/${k}`).find((k) => existsSync(expandHome(k)));
    return createSshTransport({
      node: name,
      host,
      port: port ?? config.port,
      user: user ?? config.user ?? userInfo().username,
      privateKeyPath: identity ? expandHome(identity) : undefined,
      passphrase: config.passphraseEnv ? process.env[config.passphraseEnv] : undefined,
      agent: config.agent ? process.env.SSH_AUTH_SOCK : undefined,
      knownHostsPath: expandHome(config.knownHosts),
      hostKeyPolicy: config.hostKeyPolicy,
      maxSessions: config.maxSessions,
      connectTimeoutMs: config.connectTimeout,
      onWarning: warn(name),
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
  const lockHost =
    fleet.lock.host ?? (fleet.loadBalancer.type === 'haproxy' ? fleet.loadBalancer.host : undefined);
  return {
    fleet,
    service: createServiceManager(fleet.service),
    lb,
    transportFor,
    emit,
    controller,
    lockTransport: () =>
      lockHost && fleet.transport.type === 'ssh'
        ? cached(`lb:${lockHost}`, () => open(lockHost, lockHost))
        : controller,
    async close() {
      await lb.close();
      await Promise.all([...transports.values()].map((t) => t.close()));
    },
  };
}

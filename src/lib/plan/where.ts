import type { Fleet, FleetNode } from '../config/types.js';

export const THIS_MACHINE = 'this machine';

function jumpChain(fleet: Fleet): string[] {
  if (fleet.transport.type !== 'ssh') return [];
  const { jump } = fleet.transport;
  if (jump === undefined || jump === 'none') return [];
  return typeof jump === 'string' ? jump.split(',') : jump;
}

/**
 * Where a host's commands run, from the config alone (the plan opens no connection and reads no ssh
 * config): `ssh deploy@10.0.0.11:22 via bastion`. What the fleet file leaves to the OpenSSH config (user,
 * port, jump hosts) is said to come from there.
 */
export function sshWhere(fleet: Fleet, host: string, port?: number, user?: string): string {
  if (fleet.transport.type !== 'ssh') return THIS_MACHINE;
  const t = fleet.transport;
  const who = user ?? t.user;
  const portNumber = port ?? t.port ?? (t.sshConfig === false ? 22 : undefined);
  const jumps = jumpChain(fleet);
  const fromConfig =
    t.sshConfig !== false && (who === undefined || portNumber === undefined || t.jump === undefined);
  return [
    `ssh ${who ? `${who}@` : ''}${host}${portNumber ? `:${portNumber}` : ''}`,
    jumps.length ? ` via ${jumps.join(' → ')}` : '',
    fromConfig ? ' (rest from the ssh config)' : '',
  ].join('');
}

export const nodeWhere = (fleet: Fleet, node: FleetNode): string =>
  sshWhere(fleet, node.host, node.port, node.user);

/** Where the load balancer's commands run: its own host over SSH, or this machine (HTTP APIs too). */
export function lbWhere(fleet: Fleet): string {
  const lb = fleet.loadBalancer;
  return 'host' in lb && lb.host ? sshWhere(fleet, lb.host) : THIS_MACHINE;
}

/** The host the rollout lock is held on (lock.host, else a load balancer reached over SSH); the plan and fleet-parts.ts both use it. */
export function lockHost(fleet: Fleet): string | undefined {
  return fleet.lock.host ?? ('host' in fleet.loadBalancer ? fleet.loadBalancer.host : undefined);
}

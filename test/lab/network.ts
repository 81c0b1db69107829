// The lab network: one bridge on the host, one network namespace + veth pair per machine, in a
// private /24 that exists only inside namespaces the lab creates. No default route and no
// forwarding anywhere: traffic never leaves the lab. The host side of the bridge gets .1, so the
// host (graceroll, the load generator) reaches every machine directly.
import { bash, shq } from './proc.js';

export interface LabNet {
  bridge: string;
  hostIp: string;
  lbIp: string;
  nodeIp(k: number): string;
}

export const MAX_NODES = 200;

export function labNet(prefix: string, index: number): LabNet {
  const net = `10.213.${index}`;
  return {
    bridge: `${prefix}-br`,
    hostIp: `${net}.1`,
    lbIp: `${net}.2`,
    nodeIp: (k) => `${net}.${10 + k}`,
  };
}

export async function createBridge(net: LabNet): Promise<void> {
  const br = shq(net.bridge);
  await bash(`ip link add ${br} type bridge
ip addr add ${net.hostIp}/24 dev ${br}
ip link set ${br} up`);
}

/** Creates namespace `netns` with eth0 = `ip`/24, its peer `veth` (host side) on the bridge. */
export async function createNetns(net: LabNet, netns: string, veth: string, ip: string): Promise<void> {
  const ns = shq(netns);
  await bash(`ip netns add ${ns}
ip link add ${shq(veth)} type veth peer name eth0 netns ${ns}
ip link set ${shq(veth)} master ${shq(net.bridge)} up
ip -n ${ns} addr add ${ip}/24 dev eth0
ip -n ${ns} link set eth0 up
ip -n ${ns} link set lo up`);
}

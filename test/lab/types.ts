// The lab's public shapes (startLab() in lab.ts builds them).
import type { RunResult } from './proc.js';

export type ServiceMode = 'normal' | 'ignore-signal' | 'unhealthy-after-restart' | 'queue';

export interface LabOptions {
  /** Number of service nodes (node1…nodeN). Default 3. */
  nodes?: number;
  /** One mode for all nodes, or a map by node name (nodes not in the map run 'normal'). */
  serviceMode?: ServiceMode | Partial<Record<string, ServiceMode>>;
  /** Port web.service listens on in every node. Default 8080. */
  servicePort?: number;
  /** HAProxy frontend port. Default 80. */
  lbHttpPort?: number;
  /** web.service TimeoutStopSec. Default 30. */
  serviceStopTimeoutSec?: number;
  /** How long startLab waits for ssh, health and HAProxy. Default 60 s. */
  readyTimeoutMs?: number;
}

export interface LabNode {
  name: string;
  ip: string;
  sshPort: number;
  /** Host path of the node's /var/lib/svc (starts, enqueued.log, processed.log, queue.sock). */
  stateDir: string;
  mode: ServiceMode;
  /** http://ip:servicePort */
  url: string;
}

export interface LabLb {
  name: 'lb';
  ip: string;
  sshPort: number;
  httpPort: number;
  /** http://ip[:httpPort]/ (the frontend) */
  url: string;
  /** Host path of HAProxy's runtime API socket (level admin). */
  adminSocket: string;
  /** The same runtime API on TCP, "ip:9999". */
  adminTcp: string;
  backend: string;
  serverName(node: string | LabNode): string;
}

export interface LabSsh {
  user: 'root';
  privateKeyPath: string;
  publicKey: string;
  /** Plain (unhashed) entries for every node and the LB. */
  knownHostsPath: string;
  /** An ssh_config for all lab addresses: `ssh -F configPath IP cmd` just works. */
  configPath: string;
}

export interface Lab {
  prefix: string;
  /** The host's address on the lab bridge (where graceroll and the load generator run). */
  hostIp: string;
  servicePort: number;
  nodes: LabNode[];
  lb: LabLb;
  ssh: LabSsh;
  /** How long startLab took until everything was ready. */
  startMs: number;
  /** Runs a shell command inside a node ('node1'… or 'lb') through nsenter, as root. */
  exec(nodeName: string, shellCmd: string, opts?: { timeoutMs?: number }): Promise<RunResult>;
  /** One runtime API command through the admin socket. */
  haproxy(command: string): Promise<string>;
  /** Server name → HAProxy status (UP, DOWN, MAINT, DRAIN, "UP 1/2"…) for the web backend. */
  serverStatuses(): Promise<Record<string, string>>;
  /** Tears everything down; idempotent. */
  stop(): Promise<void>;
}

/** One booted machine (the LB or a node), as the lab tracks it internally. */
export interface Machine {
  name: string;
  ip: string;
  dir: string;
  netns: string;
  veth: string;
  nspawnPid?: number;
  leader?: number;
}

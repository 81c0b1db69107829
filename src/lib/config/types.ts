import type { FleetParsed } from './schema.js';

export type { DrainProbe, HealthProbe, HttpProbe, FleetInput } from './schema.js';

export interface FleetNode {
  name: string;
  host: string;
  port?: number;
  user?: string;
  /** Name of this node's server in the load balancer. */
  lbServer: string;
  vars: Record<string, string | number>;
}

/** A validated, normalized fleet config: every default filled in, durations in milliseconds. */
export type Fleet = Omit<FleetParsed, 'nodes' | '$schema'> & {
  nodes: FleetNode[];
  /** Where the config came from, for messages and the lock/journal identity. */
  source: string;
  /** SHA-256 of the config's text: a journal is resumed only with the config it was written for. */
  sourceDigest: string;
};

export type ServiceConfig = Fleet['service'];
export type LoadBalancerConfig = Fleet['loadBalancer'];
export type TransportConfig = Fleet['transport'];

/** Flags that override the file. */
export interface FleetOverrides {
  nodes?: string[];
  batchSize?: string;
}

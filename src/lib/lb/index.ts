import type { LoadBalancerConfig } from '../config/types.js';
import type { Transport } from '../transport/types.js';
import { createAwsTargetGroupLoadBalancer } from './aws.js';
import { createCaddyLoadBalancer } from './caddy.js';
import { createCommandLoadBalancer } from './command.js';
import { createHaproxyLoadBalancer } from './haproxy.js';
import { directRuntimeApi, remoteRuntimeApi } from './haproxy-runtime.js';
import { createHttpLoadBalancer } from './http-api.js';
import { createNginxLoadBalancer } from './nginx.js';
import { createNoLoadBalancer } from './none.js';
import type { LoadBalancer } from './types.js';

export interface LoadBalancerParts {
  /** Runs commands on the controller (command load balancer). */
  local: Transport;
  /** Opens a transport to a named host (the HAProxy host when its socket is remote). */
  transportTo(host: string): Transport;
  timeoutMs: number;
}

export function createLoadBalancer(config: LoadBalancerConfig, parts: LoadBalancerParts): LoadBalancer {
  switch (config.type) {
    case 'none':
      return createNoLoadBalancer();
    case 'command':
      return createCommandLoadBalancer(config, parts.local, parts.timeoutMs);
    case 'haproxy': {
      if (config.host) {
        const transport = parts.transportTo(config.host);
        return createHaproxyLoadBalancer(
          config,
          remoteRuntimeApi(transport, config.socket, parts.timeoutMs),
          () => transport.close(),
        );
      }
      return createHaproxyLoadBalancer(config, directRuntimeApi(config.socket, parts.timeoutMs), () =>
        Promise.resolve(),
      );
    }
    case 'nginx': {
      if (config.host) {
        const transport = parts.transportTo(config.host);
        return createNginxLoadBalancer(config, transport, parts.timeoutMs, () => transport.close());
      }
      return createNginxLoadBalancer(config, parts.local, parts.timeoutMs, () => Promise.resolve());
    }
    case 'caddy':
      return createCaddyLoadBalancer(config);
    case 'http':
      return createHttpLoadBalancer(config);
    case 'aws-target-group':
      return createAwsTargetGroupLoadBalancer(config, parts.timeoutMs);
  }
}

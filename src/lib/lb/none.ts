import type { LoadBalancer } from './types.js';

/** No load balancer: every node counts as in rotation, deregistering is a no-op. */
export function createNoLoadBalancer(): LoadBalancer {
  return {
    type: 'none',
    describe: () => ({ deregister: [], register: [], state: [] }),
    state: () => Promise.resolve({ ok: true, value: { state: 'up', detail: 'no load balancer' } }),
    deregister: () => Promise.resolve({ ok: true }),
    register: () => Promise.resolve({ ok: true }),
    close: () => Promise.resolve(),
  };
}

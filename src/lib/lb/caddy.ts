import type { FleetNode, LoadBalancerConfig } from '../config/types.js';
import { fail, OK, type Outcome, type Result } from '../outcome.js';
import { nodeValues } from '../template.js';
import { moveUpstream, parkingId, parseUpstreamCounts, upstreamPlace } from './caddy-config.js';
import { fillText, oneAtATime, requireValues } from './fill-text.js';
import { firstLine, httpRequest } from './http-request.js';
import type { LbServerState, LoadBalancer } from './types.js';

type CaddyConfig = Extract<LoadBalancerConfig, { type: 'caddy' }>;

const SERVERS = '/config/apps/http/servers';
/** Another writer changed the config between our read and our write (If-Match): read again. */
const CONFLICT_RETRIES = 5;

/**
 * Caddy through its admin API (https://caddyserver.com/docs/api): the node's upstream moves between the
 * reverse_proxy handler (by its "@id") and a parking route (see caddy-config.ts) in one config change,
 * guarded by the config's ETag (If-Match, Caddy ≥ 2.6). State and sessions come from
 * GET /reverse_proxy/upstreams (`num_requests`: requests in flight to that dial address).
 */
export function createCaddyLoadBalancer(config: CaddyConfig): LoadBalancer {
  const admin = config.admin.replace(/\/$/, '');
  const exclusive = oneAtATime();
  const dialOf = (node: FleetNode) => fillText(config.dial, nodeValues(node));
  const call = async (method: string, path: string, signal: AbortSignal, body?: string, ifMatch?: string) => {
    const headers: Record<string, string> = {};
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (ifMatch) headers['if-match'] = ifMatch;
    const answer = await httpRequest(`${admin}${path}`, {
      method,
      headers,
      body,
      signal,
      timeoutMs: config.timeout,
    });
    return answer.ok ? answer : fail(`caddy ${method} ${admin}${path}: ${answer.reason}`);
  };

  const readServers = async (signal: AbortSignal): Promise<Result<{ servers: unknown; etag?: string }>> => {
    const answer = await call('GET', SERVERS, signal);
    if (!answer.ok) return answer;
    const { status, body, headers, trailers } = answer.value;
    if (status !== 200) return fail(`caddy GET ${SERVERS}: HTTP ${status} ${firstLine(body)}`);
    try {
      // Caddy 2.6 sends the ETag as a trailer, since it hashes the body while writing it.
      const etag = trailers.etag ?? headers.etag;
      return { ok: true, value: { servers: JSON.parse(body) as unknown, etag } };
    } catch {
      return fail(`caddy GET ${SERVERS}: the answer is not JSON`);
    }
  };

  const move = (node: FleetNode, out: boolean, signal: AbortSignal): Promise<Outcome> =>
    exclusive(async () => {
      const values = requireValues(config.dial, nodeValues(node), 'loadBalancer.dial');
      if (!values.ok) return values;
      for (let attempt = 1; ; attempt++) {
        const current = await readServers(signal);
        if (!current.ok) return current;
        const moved = moveUpstream(current.value.servers, config.handlerId, dialOf(node), out);
        if (!moved.ok) return fail(`caddy ${admin}: ${moved.reason}`);
        if (!moved.value.changed) return OK;
        const answer = await call(
          'PATCH',
          SERVERS,
          signal,
          JSON.stringify(moved.value.servers),
          current.value.etag,
        );
        if (!answer.ok) return answer;
        if (answer.value.status === 200) return OK;
        if (answer.value.status !== 412 || attempt >= CONFLICT_RETRIES)
          return fail(`caddy PATCH ${SERVERS}: HTTP ${answer.value.status} ${firstLine(answer.value.body)}`);
      }
    });

  return {
    type: 'caddy',
    describe(node) {
      const dial = dialOf(node);
      return {
        deregister: [
          `caddy ${admin}: PATCH ${SERVERS}: move upstream ${dial} from "@id": "${config.handlerId}" to the parking route "${parkingId(config.handlerId)}"`,
        ],
        register: [
          `caddy ${admin}: PATCH ${SERVERS}: move upstream ${dial} back to "@id": "${config.handlerId}"`,
        ],
        state: [`caddy ${admin}: GET ${SERVERS}`, `caddy ${admin}: GET /reverse_proxy/upstreams (${dial})`],
      };
    },
    async state(node, signal): Promise<Result<LbServerState>> {
      const values = requireValues(config.dial, nodeValues(node), 'loadBalancer.dial');
      if (!values.ok) return values;
      const dial = dialOf(node);
      const current = await readServers(signal);
      if (!current.ok) return current;
      const place = upstreamPlace(current.value.servers, config.handlerId, dial);
      if (!place.ok) return fail(`caddy ${admin}: ${place.reason}`);
      if (place.value === 'absent')
        return {
          ok: true,
          value: { state: 'absent', detail: `no upstream ${dial} in "${config.handlerId}"` },
        };
      const answer = await call('GET', '/reverse_proxy/upstreams', signal);
      if (!answer.ok) return answer;
      if (answer.value.status !== 200)
        return fail(
          `caddy GET /reverse_proxy/upstreams: HTTP ${answer.value.status} ${firstLine(answer.value.body)}`,
        );
      const counts = parseUpstreamCounts(answer.value.body);
      if (!counts.ok) return counts;
      const count = counts.value.find((u) => u.address === dial);
      const sessions = count?.num_requests ?? 0;
      return {
        ok: true,
        value: {
          // Caddy 2.6's upstream list has no health flag: in the handler's list is as "up" as it reports.
          state: place.value === 'live' ? 'up' : 'maint',
          sessions,
          detail: `${place.value === 'live' ? 'in rotation' : 'parked'}, ${sessions} requests in flight, ${count?.fails ?? 0} recent fails`,
        },
      };
    },
    deregister: (node, signal) => move(node, true, signal),
    register: (node, signal) => move(node, false, signal),
    close: () => Promise.resolve(),
  };
}

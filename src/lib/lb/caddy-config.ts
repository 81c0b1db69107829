import { fail, type Result } from '../outcome.js';

/**
 * Pure edits of Caddy's `apps.http.servers` config (JSON, as GET /config/apps/http/servers returns it).
 *
 * A node out of rotation is not deleted: its upstream object moves, in the same config change, to a
 * "parking" route that never matches (`"match": [{"expression": "false"}]`, @id `graceroll-parked-<id>`),
 * and moves back on register. Why not delete it: Caddy keeps upstream hosts in a reference-counted pool
 * keyed by dial address (reverseproxy/hosts.go), and /reverse_proxy/upstreams lists that pool. Deleted
 * from the config, the address leaves the pool at once even while requests to it are still in flight
 * (seen with Caddy 2.6.2: 4 requests in flight, the address gone from the list right after the PATCH), so
 * its num_requests could never be watched down to 0. Parked, it stays referenced, and the in-flight
 * requests of the old config count on the same pooled host until they finish.
 */

type JsonObject = Record<string, unknown>;
type Path = (string | number)[];

export interface CaddyUpstreamCount {
  address: string;
  num_requests: number;
  fails: number;
}

const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export const parkingId = (handlerId: string): string => `graceroll-parked-${handlerId}`;

function findById(root: unknown, id: string, path: Path = []): { node: JsonObject; path: Path } | undefined {
  if (Array.isArray(root)) {
    for (let i = 0; i < root.length; i++) {
      const found = findById(root[i], id, [...path, i]);
      if (found) return found;
    }
  } else if (isObject(root)) {
    if (root['@id'] === id) return { node: root, path };
    for (const [key, value] of Object.entries(root)) {
      const found = findById(value, id, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}

interface Located {
  /** The reverse_proxy handler's upstream list. */
  live: JsonObject[];
  /** The parking handler's upstream list, if the parking route exists. */
  parked?: JsonObject[];
  parkingPath?: Path;
  /** Name of the server that holds the handler. */
  server: string;
}

function locate(servers: unknown, handlerId: string): Result<Located> {
  const handler = findById(servers, handlerId);
  if (!handler) return fail(`no object with "@id": "${handlerId}" in apps.http.servers`);
  if (handler.node.handler !== 'reverse_proxy')
    return fail(
      `"@id": "${handlerId}" is not a reverse_proxy handler (handler: ${JSON.stringify(handler.node.handler)})`,
    );
  const upstreams = handler.node.upstreams ?? [];
  if (!Array.isArray(upstreams) || !upstreams.every(isObject))
    return fail(`the handler "${handlerId}" has no static "upstreams" list`);
  if (!handler.node.upstreams) handler.node.upstreams = upstreams;
  const located: Located = { live: upstreams, server: String(handler.path[0]) };
  const parking = findById(servers, parkingId(handlerId));
  if (parking) {
    const inner = (parking.node.handle as unknown[] | undefined)?.[0];
    if (!isObject(inner) || !Array.isArray(inner.upstreams))
      return fail(`the route "${parkingId(handlerId)}" is not graceroll's parking route`);
    located.parked = inner.upstreams as JsonObject[];
    located.parkingPath = parking.path;
  }
  return { ok: true, value: located };
}

/** Where the node's dial address is: in rotation, parked by graceroll, or unknown to Caddy. */
export function upstreamPlace(
  servers: unknown,
  handlerId: string,
  dial: string,
): Result<'live' | 'parked' | 'absent'> {
  const found = locate(servers, handlerId);
  if (!found.ok) return found;
  if (found.value.live.some((u) => u.dial === dial)) return { ok: true, value: 'live' };
  if (found.value.parked?.some((u) => u.dial === dial)) return { ok: true, value: 'parked' };
  return { ok: true, value: 'absent' };
}

/**
 * Moves the node's upstream out of rotation (to the parking route, created if needed) or back (to the
 * end of the handler's list; the parking route goes when it is empty). Returns a new servers object.
 */
export function moveUpstream(
  servers: unknown,
  handlerId: string,
  dial: string,
  out: boolean,
): Result<{ servers: unknown; changed: boolean }> {
  const copy: unknown = structuredClone(servers);
  const found = locate(copy, handlerId);
  if (!found.ok) return found;
  const { live, parked, parkingPath, server } = found.value;
  const from = out ? live : (parked ?? []);
  const moving = from.filter((u) => u.dial === dial);
  if (moving.length === 0) {
    if ((out ? (parked ?? []) : live).some((u) => u.dial === dial))
      return { ok: true, value: { servers, changed: false } };
    const known = [...live, ...(parked ?? [])].map((u) => String(u.dial)).join(', ') || 'none';
    return fail(`the handler "${handlerId}" has no upstream with dial "${dial}" (it has: ${known})`);
  }
  from.splice(0, from.length, ...from.filter((u) => u.dial !== dial));
  if (!out) {
    live.push(...moving);
    if (parked?.length === 0 && parkingPath) {
      const routes = parkingPath.slice(0, -1).reduce<unknown>((at, key) => (at as JsonObject)[key], copy);
      (routes as unknown[]).splice(Number(parkingPath[parkingPath.length - 1]), 1);
    }
  } else if (parked) {
    parked.push(...moving);
  } else {
    const serverConfig = (copy as JsonObject)[server] as JsonObject;
    const routes = (serverConfig.routes ??= []) as unknown[];
    routes.push({
      '@id': parkingId(handlerId),
      match: [{ expression: 'false' }],
      handle: [{ handler: 'reverse_proxy', upstreams: moving }],
    });
  }
  return { ok: true, value: { servers: copy, changed: true } };
}

/** Parses GET /reverse_proxy/upstreams. */
export function parseUpstreamCounts(body: string): Result<CaddyUpstreamCount[]> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return fail('/reverse_proxy/upstreams did not answer JSON');
  }
  if (!Array.isArray(parsed)) return fail('/reverse_proxy/upstreams did not answer a list');
  return {
    ok: true,
    value: parsed.filter(isObject).map((u) => ({
      address: String(u.address),
      num_requests: Number(u.num_requests ?? 0),
      fails: Number(u.fails ?? 0),
    })),
  };
}

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import type { FleetNode } from '../../src/lib/config/types.js';
import { createCaddyLoadBalancer } from '../../src/lib/lb/caddy.js';
import { moveUpstream, parseUpstreamCounts, upstreamPlace } from '../../src/lib/lb/caddy-config.js';

const servers = () => ({
  web: {
    listen: [':443'],
    routes: [
      {
        match: [{ host: ['example.com'] }],
        handle: [
          {
            handler: 'subroute',
            routes: [
              {
                handle: [
                  {
                    '@id': 'web-upstreams',
                    handler: 'reverse_proxy',
                    upstreams: [{ dial: '10.0.0.1:8080' }, { dial: '10.0.0.2:8080', max_requests: 100 }],
                  },
                ],
              },
            ],
          },
        ],
      },
    ],
  },
});

const PARKING = {
  '@id': 'graceroll-parked-web-upstreams',
  match: [{ expression: 'false' }],
  handle: [{ handler: 'reverse_proxy', upstreams: [{ dial: '10.0.0.2:8080', max_requests: 100 }] }],
};

describe('Caddy config edits', () => {
  it('parks an upstream (whole object) in a route that never matches, created on the same server', () => {
    const moved = moveUpstream(servers(), 'web-upstreams', '10.0.0.2:8080', true);
    if (!moved.ok) throw new Error(moved.reason);
    const expected = servers();
    expected.web.routes[0].handle[0].routes[0].handle[0].upstreams = [{ dial: '10.0.0.1:8080' }];
    (expected.web.routes as unknown[]).push(PARKING);
    expect(moved.value).toEqual({ changed: true, servers: expected });
    expect(upstreamPlace(moved.value.servers, 'web-upstreams', '10.0.0.2:8080')).toEqual({
      ok: true,
      value: 'parked',
    });
  });

  it('puts it back and removes the empty parking route, leaving the input untouched', () => {
    const input = servers();
    const out = moveUpstream(input, 'web-upstreams', '10.0.0.2:8080', true);
    if (!out.ok) throw new Error(out.reason);
    expect(input).toEqual(servers());
    const back = moveUpstream(out.value.servers, 'web-upstreams', '10.0.0.2:8080', false);
    expect(back).toEqual({ ok: true, value: { changed: true, servers: servers() } });
  });

  it('parks a second node next to the first', () => {
    const one = moveUpstream(servers(), 'web-upstreams', '10.0.0.2:8080', true);
    if (!one.ok) throw new Error(one.reason);
    const two = moveUpstream(one.value.servers, 'web-upstreams', '10.0.0.1:8080', true);
    if (!two.ok) throw new Error(two.reason);
    const routes = (two.value.servers as ReturnType<typeof servers>).web
      .routes as unknown as (typeof PARKING)[];
    expect(routes).toHaveLength(2);
    expect(routes[1].handle[0].upstreams.map((u) => u.dial)).toEqual(['10.0.0.2:8080', '10.0.0.1:8080']);
  });

  it('changes nothing when the node is already where it should be', () => {
    const config = servers();
    expect(moveUpstream(config, 'web-upstreams', '10.0.0.1:8080', false)).toEqual({
      ok: true,
      value: { changed: false, servers: config },
    });
  });

  it('names what it found when the node, the @id or the handler is wrong', () => {
    expect(moveUpstream(servers(), 'web-upstreams', '10.0.0.9:8080', true)).toEqual({
      ok: false,
      reason:
        'the handler "web-upstreams" has no upstream with dial "10.0.0.9:8080" (it has: 10.0.0.1:8080, 10.0.0.2:8080)',
    });
    expect(upstreamPlace(servers(), 'api', '10.0.0.1:8080')).toEqual({
      ok: false,
      reason: 'no object with "@id": "api" in apps.http.servers',
    });
    const wrong = { web: { routes: [{ '@id': 'x', handle: [] }] } };
    expect(upstreamPlace(wrong, 'x', 'a:1')).toMatchObject({
      ok: false,
      reason: /not a reverse_proxy handler/,
    });
    expect(upstreamPlace(servers(), 'web-upstreams', '10.0.0.9:8080')).toEqual({ ok: true, value: 'absent' });
  });

  it('parses /reverse_proxy/upstreams', () => {
    expect(
      parseUpstreamCounts(
        '[{"address":"10.0.0.1:8080","num_requests":4,"fails":1},{"address":"10.0.0.2:8080"}]',
      ),
    ).toEqual({
      ok: true,
      value: [
        { address: '10.0.0.1:8080', num_requests: 4, fails: 1 },
        { address: '10.0.0.2:8080', num_requests: 0, fails: 0 },
      ],
    });
    expect(parseUpstreamCounts('not json')).toMatchObject({ ok: false });
  });
});

describe('Caddy load balancer config', () => {
  it('fills the defaults and refuses an admin address with a path', () => {
    const yaml = (lb: string) => `service: { type: systemd, unit: web.service }
loadBalancer: ${lb}
nodes: [{ name: web1, vars: { port: 8080 } }]
`;
    expect(parseFleetYaml(yaml('{ type: caddy, handlerId: web-upstreams }'), 'f.yaml').loadBalancer).toEqual({
      type: 'caddy',
      admin: 'http://localhost:2019',
      handlerId: 'web-upstreams',
      dial: '{host}:{vars.port}',
      timeout: 10_000,
    });
    expect(() =>
      parseFleetYaml(yaml('{ type: caddy, handlerId: w, admin: "http://localhost:2019/config/" }'), 'f.yaml'),
    ).toThrow(/loadBalancer\.admin: expected the admin API address/);
  });
});

/**
 * A stand-in for Caddy's admin API with its ETag rules: GET returns the ETag as a trailer, a change with a
 * stale If-Match is refused with 412. The real Caddy is in test/e2e/lb-caddy.test.ts.
 */
async function fakeAdmin(options: { conflicts?: number } = {}) {
  let config: unknown = servers();
  let version = 1;
  let conflicts = options.conflicts ?? 0;
  const requests: { method: string; url: string; ifMatch?: string }[] = [];
  const body = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      let text = '';
      req.on('data', (c: Buffer) => (text += c.toString()));
      req.on('end', () => resolve(text));
    });
  const server: Server = createServer((req, res) => {
    void (async () => {
      const text = await body(req);
      requests.push({ method: req.method!, url: req.url!, ifMatch: req.headers['if-match'] });
      const etag = `"/config/apps/http/servers v${version}"`;
      if (req.url === '/reverse_proxy/upstreams') {
        res.end('[{"address":"10.0.0.1:8080","num_requests":3,"fails":0}]');
      } else if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json', trailer: 'ETag' });
        res.write(JSON.stringify(config));
        res.addTrailers({ etag });
        res.end();
      } else if (req.headers['if-match'] !== etag || conflicts-- > 0) {
        version++; // someone else changed it
        res.writeHead(412).end('{"error":"precondition failed"}');
      } else {
        config = JSON.parse(text);
        version++;
        res.end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const admin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { admin, requests, config: () => config, close: () => new Promise((r) => server.close(r)) };
}

const web1: FleetNode = { name: 'web1', host: '10.0.0.1', lbServer: 'web1', vars: { port: 8080 } };
const signal = new AbortController().signal;
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await Promise.all(cleanup.splice(0).map((c) => c()));
});

describe('Caddy load balancer', () => {
  const lbFor = (admin: string) =>
    createCaddyLoadBalancer({
      type: 'caddy',
      admin,
      handlerId: 'web-upstreams',
      dial: '{host}:{vars.port}',
      timeout: 5000,
    });

  it('moves the node out with If-Match and reports it parked with its requests in flight', async () => {
    const fake = await fakeAdmin();
    cleanup.push(fake.close);
    const lb = lbFor(fake.admin);
    expect(await lb.state(web1, signal)).toEqual({
      ok: true,
      value: { state: 'up', sessions: 3, detail: 'in rotation, 3 requests in flight, 0 recent fails' },
    });
    expect(await lb.deregister(web1, signal)).toEqual({ ok: true });
    expect(fake.requests.filter((r) => r.method === 'PATCH')).toEqual([
      { method: 'PATCH', url: '/config/apps/http/servers', ifMatch: '"/config/apps/http/servers v1"' },
    ]);
    expect(upstreamPlace(fake.config(), 'web-upstreams', '10.0.0.1:8080')).toEqual({
      ok: true,
      value: 'parked',
    });
    expect(await lb.state(web1, signal)).toMatchObject({ ok: true, value: { state: 'maint', sessions: 3 } });
    expect(await lb.register(web1, signal)).toEqual({ ok: true });
    expect(await lb.state(web1, signal)).toMatchObject({ ok: true, value: { state: 'up' } });
  });

  it('reads the config again when another writer got in between (412)', async () => {
    const fake = await fakeAdmin({ conflicts: 2 });
    cleanup.push(fake.close);
    expect(await lbFor(fake.admin).deregister(web1, signal)).toEqual({ ok: true });
    expect(fake.requests.map((r) => r.method)).toEqual(['GET', 'PATCH', 'GET', 'PATCH', 'GET', 'PATCH']);
  });

  it('says which admin API did not answer', async () => {
    const fake = await fakeAdmin();
    await fake.close();
    expect(await lbFor(fake.admin).state(web1, signal)).toEqual({
      ok: false,
      reason: `caddy GET ${fake.admin}/config/apps/http/servers: ECONNREFUSED`,
    });
  });
});

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import type { FleetNode, LoadBalancerConfig } from '../../src/lib/config/types.js';
import { GracerollError } from '../../src/lib/exit-codes.js';
import { createHttpLoadBalancer, parseStateAnswer } from '../../src/lib/lb/http-api.js';

type HttpLbConfig = Extract<LoadBalancerConfig, { type: 'http' }>;
const SECRET = 's3cr3t-token-value';

interface Seen {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

let server: Server;
let base: string;
const seen: Seen[] = [];
/** What the fake API answers next, by path. */
const answers = new Map<string, { status: number; body: string }>();

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      const path = req.url!.split('?')[0];
      const answer = answers.get(path) ?? { status: 204, body: '' };
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise((resolve) => server.close(resolve)));

const node: FleetNode = {
  name: 'web1',
  host: '10.0.0.1',
  lbServer: 'web 1/a',
  vars: { port: 8080, pool: 'blue' },
};
const signal = new AbortController().signal;

function config(overrides: Partial<HttpLbConfig> = {}): HttpLbConfig {
  return {
    type: 'http',
    deregister: {
      method: 'POST',
      url: `${base}/pools/{vars.pool}/members/{lbServer}/disable`,
      body: { address: '{host}:{vars.port}', reason: 'graceroll' },
      headers: {},
      headersFromEnv: {},
    },
    register: {
      method: 'POST',
      url: `${base}/pools/{vars.pool}/members/{lbServer}/enable`,
      headers: {},
      headersFromEnv: {},
      expectStatus: [200, 204],
    },
    state: {
      method: 'GET',
      url: `${base}/pools/{vars.pool}/members/{lbServer}`,
      headers: {},
      headersFromEnv: {},
      jsonPath: 'member.status',
      values: { ENABLED: 'up', DISABLED: 'maint', DRAINING: 'drain' },
      sessionsPath: 'member.connections',
      absentStatus: 404,
    },
    headers: { 'X-Team': 'ops' },
    headersFromEnv: { Authorization: 'LB_TOKEN' },
    insecure: false,
    timeout: 5000,
    ...overrides,
  };
}

describe('HTTP API load balancer', () => {
  it('sends the templated request with the secret header from the environment', async () => {
    vi.stubEnv('LB_TOKEN', `Bearer ${SECRET}`);
    seen.length = 0;
    expect(await createHttpLoadBalancer(config()).deregister(node, signal)).toEqual({ ok: true });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({
      method: 'POST',
      url: '/pools/blue/members/web%201%2Fa/disable',
      body: '{"address":"10.0.0.1:8080","reason":"graceroll"}',
      headers: { authorization: `Bearer ${SECRET}`, 'x-team': 'ops', 'content-type': 'application/json' },
    });
    vi.unstubAllEnvs();
  });

  it('never shows the secret: describe() redacts it', () => {
    vi.stubEnv('LB_TOKEN', `Bearer ${SECRET}`);
    const described = createHttpLoadBalancer(config()).describe(node);
    expect(described.deregister).toEqual([
      `POST ${base}/pools/blue/members/web%201%2Fa/disable {"address":"10.0.0.1:8080","reason":"graceroll"} (X-Team: ops; Authorization: <redacted>)`,
    ]);
    expect(JSON.stringify(described)).not.toContain(SECRET);
    vi.unstubAllEnvs();
  });

  it('scrubs the secret from a failure even when the API echoes it back', async () => {
    vi.stubEnv('LB_TOKEN', `Bearer ${SECRET}`);
    answers.set('/pools/blue/members/web%201%2Fa/enable', {
      status: 401,
      body: `bad token Bearer ${SECRET}`,
    });
    const result = await createHttpLoadBalancer(config()).register(node, signal);
    expect(result).toEqual({
      ok: false,
      reason: `POST ${base}/pools/blue/members/web%201%2Fa/enable: HTTP 401: bad token <redacted>`,
    });
    answers.clear();
    vi.unstubAllEnvs();
  });

  it('names the missing environment variable and sends nothing', async () => {
    vi.stubEnv('LB_TOKEN', '');
    seen.length = 0;
    expect(await createHttpLoadBalancer(config()).deregister(node, signal)).toEqual({
      ok: false,
      reason: `POST ${base}/pools/blue/members/web%201%2Fa/disable: the environment variable LB_TOKEN (for the Authorization header) is not set`,
    });
    expect(seen).toHaveLength(0);
    vi.unstubAllEnvs();
  });

  it('reads state and sessions through the value map, and 404 as absent', async () => {
    vi.stubEnv('LB_TOKEN', 'x');
    const lb = createHttpLoadBalancer(config());
    answers.set('/pools/blue/members/web%201%2Fa', {
      status: 200,
      body: '{"member":{"status":"DRAINING","connections":4}}',
    });
    expect(await lb.state(node, signal)).toEqual({
      ok: true,
      value: { state: 'drain', sessions: 4, detail: 'member.status: "DRAINING"' },
    });
    answers.set('/pools/blue/members/web%201%2Fa', { status: 404, body: '{"error":"no such member"}' });
    expect(await lb.state(node, signal)).toEqual({
      ok: true,
      value: { state: 'absent', detail: 'HTTP 404' },
    });
    answers.clear();
    vi.unstubAllEnvs();
  });

  it('names a placeholder without a value instead of sending it', async () => {
    const lb = createHttpLoadBalancer(config({ headersFromEnv: {} }));
    expect(await lb.state({ ...node, vars: {} }, signal)).toEqual({
      ok: false,
      reason: `${base}/pools/{vars.pool}/members/{lbServer}: {vars.pool} has no value`,
    });
  });
});

describe('HTTP API state answers', () => {
  const state = config().state;
  it.each([
    ['{"member":{"status":"ENABLED","connections":0}}', { state: 'up', sessions: 0 }],
    ['{"member":{"status":"DISABLED","connections":"2"}}', { state: 'maint', sessions: 2 }],
  ])('%s', (body, expected) =>
    expect(parseStateAnswer(state, 200, body)).toMatchObject({ ok: true, value: expected }),
  );

  it('refuses a word it was not told about, a bad session count, an unexpected status', () => {
    expect(parseStateAnswer(state, 200, '{"member":{"status":"WEIRD"}}')).toEqual({
      ok: false,
      reason: 'member.status is "WEIRD"; expected one of ENABLED, DISABLED, DRAINING',
    });
    expect(parseStateAnswer(state, 200, '{"member":{"status":"ENABLED","connections":-1}}')).toMatchObject({
      ok: false,
      reason: /expected a session count/,
    });
    expect(parseStateAnswer(state, 500, 'oops')).toEqual({ ok: false, reason: 'HTTP 500: oops' });
    expect(parseStateAnswer(state, 200, '<html>')).toMatchObject({ ok: false, reason: /not JSON/ });
  });

  it('with upPath/upValue: the value means up, anything else out of rotation', () => {
    const byValue = {
      ...state,
      jsonPath: undefined,
      values: undefined,
      sessionsPath: undefined,
      upPath: 'enabled',
      upValue: true,
    };
    expect(parseStateAnswer(byValue, 200, '{"enabled":true}')).toMatchObject({ value: { state: 'up' } });
    expect(parseStateAnswer(byValue, 200, '{"enabled":false}')).toMatchObject({ value: { state: 'maint' } });
  });

  it('without a map, the field must hold one of graceroll’s own state names', () => {
    const plain = { ...state, values: undefined, sessionsPath: undefined, jsonPath: 'state' };
    expect(parseStateAnswer(plain, 200, '{"state":"DRAIN"}')).toMatchObject({ value: { state: 'drain' } });
    expect(parseStateAnswer(plain, 200, '{"state":"ready"}')).toMatchObject({ ok: false });
  });
});

describe('HTTP API load balancer config', () => {
  const problems = (state: string): string[] => {
    try {
      parseFleetYaml(
        `service: { type: systemd, unit: web.service }
loadBalancer:
  type: http
  deregister: { url: "https://lb/{lbServer}/off" }
  register: { url: "https://lb/{lbServer}/on" }
  state: ${state}
nodes: [{ name: web1 }]
`,
        'f.yaml',
      );
      return [];
    } catch (error) {
      if (error instanceof GracerollError) return [...error.problems];
      throw error;
    }
  };

  it('fills methods: POST to change, GET to read', () => {
    const fleet = parseFleetYaml(
      `service: { type: systemd, unit: web.service }
loadBalancer:
  type: http
  deregister: { url: "https://lb/{lbServer}/off" }
  register: { url: "https://lb/{lbServer}/on" }
  state: { url: "https://lb/{lbServer}", jsonPath: state }
nodes: [{ name: web1 }]
`,
      'f.yaml',
    );
    expect(fleet.loadBalancer).toMatchObject({
      deregister: { method: 'POST' },
      register: { method: 'POST' },
      state: { method: 'GET', jsonPath: 'state' },
      timeout: 10_000,
    });
  });

  it('needs exactly one way to read the state', () => {
    expect(problems('{ url: "https://lb/x" }')).toEqual([
      expect.stringMatching(/loadBalancer\.state: give jsonPath, or upPath and upValue/),
    ]);
    expect(problems('{ url: "https://lb/x", jsonPath: a, upPath: b, upValue: 1 }')).toEqual([
      expect.stringMatching(/loadBalancer\.state\.jsonPath: give jsonPath or upPath\/upValue, not both/),
    ]);
    expect(problems('{ url: "https://lb/x", upPath: b }')).toEqual([
      expect.stringMatching(/loadBalancer\.state\.upValue: upPath and upValue go together/),
    ]);
  });

  it('refuses a header taken from something that is not a variable name', () => {
    expect(
      problems('{ url: "https://lb/x", jsonPath: a, headersFromEnv: { Authorization: "$TOKEN" } }'),
    ).toEqual([
      expect.stringMatching(/headersFromEnv\.Authorization: expected an environment variable name/),
    ]);
  });
});

import { describe, expect, it } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import type { FleetNode, LoadBalancerConfig } from '../../src/lib/config/types.js';
import { createNginxLoadBalancer, ssArgv } from '../../src/lib/lb/nginx.js';
import { markServer, parseWorkers, readUpstream, splitAddress } from '../../src/lib/lb/nginx-upstream.js';
import { commandLine } from '../../src/lib/transport/quote.js';
import type { ExecOptions, ExecResult, RemoteCommand, Transport } from '../../src/lib/transport/types.js';

const UPSTREAM = `# managed by hand, graceroll only adds or removes "down"
upstream web {
    zone web 64k;
    server 10.0.0.1:8080 weight=2;   # web1
    server 10.0.0.2:8080 max_fails=3 fail_timeout=5s;
    server "10.0.0.3:8080" backup;
    keepalive 16;
}

upstream api { server 10.0.0.1:8080; }
`;

describe('nginx upstream file', () => {
  it('reads every server of the named upstream with its parameters', () => {
    expect(readUpstream(UPSTREAM, 'web')).toEqual({
      ok: true,
      value: [
        { address: '10.0.0.1:8080', down: false, params: ['weight=2'] },
        { address: '10.0.0.2:8080', down: false, params: ['max_fails=3', 'fail_timeout=5s'] },
        { address: '10.0.0.3:8080', down: false, params: ['backup'] },
      ],
    });
  });

  it('marks one server down by inserting " down", leaving every other byte as written', () => {
    const edit = markServer(UPSTREAM, 'web', '10.0.0.1:8080', true);
    expect(edit).toEqual({
      ok: true,
      value: { changed: true, text: UPSTREAM.replace('weight=2;', 'weight=2 down;') },
    });
    // The same address in another upstream is not touched.
    expect(edit.ok && readUpstream(edit.value.text, 'api')).toMatchObject({ value: [{ down: false }] });
  });

  it('removes the mark again and gives back the original file', () => {
    const down = markServer(UPSTREAM, 'web', '10.0.0.2:8080', true);
    if (!down.ok) throw new Error(down.reason);
    expect(down.value.text).toContain('fail_timeout=5s down;');
    expect(markServer(down.value.text, 'web', '10.0.0.2:8080', false)).toEqual({
      ok: true,
      value: { changed: true, text: UPSTREAM },
    });
  });

  it('is idempotent: a server already down (or up) is left alone', () => {
    const text = UPSTREAM.replace('backup;', 'backup down;');
    expect(markServer(text, 'web', '10.0.0.3:8080', true)).toEqual({
      ok: true,
      value: { changed: false, text },
    });
    expect(markServer(UPSTREAM, 'web', '10.0.0.3:8080', false)).toEqual({
      ok: true,
      value: { changed: false, text: UPSTREAM },
    });
  });

  it('keeps a comment or line break that sits before "down"', () => {
    const text = 'upstream web {\n  server 10.0.0.1:8080 # primary\n    down;\n}\n';
    expect(markServer(text, 'web', '10.0.0.1:8080', false)).toEqual({
      ok: true,
      value: { changed: true, text: 'upstream web {\n  server 10.0.0.1:8080 # primary\n;\n}\n' },
    });
  });

  it('finds the upstream inside a whole nginx.conf (http { … })', () => {
    const conf = `events {}\nhttp {\n  upstream web { server unix:/run/web.sock; }\n  server { listen 80; location / { proxy_pass http://web; } }\n}\n`;
    expect(readUpstream(conf, 'web')).toMatchObject({ value: [{ address: 'unix:/run/web.sock' }] });
  });

  it('says which servers exist when the node is not one of them', () => {
    expect(markServer(UPSTREAM, 'web', '10.0.0.9:8080', true)).toEqual({
      ok: false,
      reason:
        'upstream web has no server 10.0.0.9:8080 (it has: 10.0.0.1:8080, 10.0.0.2:8080, 10.0.0.3:8080)',
    });
    expect(readUpstream(UPSTREAM, 'nope')).toEqual({ ok: false, reason: 'no "upstream nope { … }" block' });
  });

  it('refuses a file it cannot parse instead of guessing', () => {
    expect(readUpstream('upstream web {\n server a:1;\n', 'web')).toMatchObject({
      ok: false,
      reason: /not closed/,
    });
    expect(readUpstream('upstream web { server "a:1; }', 'web')).toMatchObject({
      ok: false,
      reason: /unterminated/,
    });
    expect(readUpstream('upstream web { server a:1 }', 'web')).toMatchObject({ ok: false });
  });

  it.each([
    ['10.0.0.1:8080', { host: '10.0.0.1', port: 8080 }],
    ['[::1]:8080', { host: '::1', port: 8080 }],
    ['web1.internal', { host: 'web1.internal', port: 80 }],
    ['unix:/run/web.sock', undefined],
  ])('splits %s for ss', (address, expected) => expect(splitAddress(address)).toEqual(expected));

  it('builds one ss filter over every address of a name', () => {
    expect(ssArgv(['10.0.0.1', '::1'], 8080)).toEqual([
      'ss',
      '-Htn',
      'state',
      'established',
      '(',
      'dst',
      '10.0.0.1:8080',
      'or',
      'dst',
      '[::1]:8080',
      ')',
    ]);
  });

  it('reads worker processes from ps, telling old (shutting down) ones apart', () => {
    const ps =
      ' 2761 nginx: worker process is shutting down\n 2790 nginx: worker process\n 2791 nginx: cache manager process\n';
    expect(parseWorkers(ps)).toEqual([
      { pid: 2761, shuttingDown: true },
      { pid: 2790, shuttingDown: false },
    ]);
  });
});

describe('nginx load balancer config', () => {
  it('fills the defaults', () => {
    const fleet = parseFleetYaml(
      `service: { type: systemd, unit: web.service }
loadBalancer: { type: nginx, upstreamFile: /etc/nginx/conf.d/web-upstream.conf, upstream: web }
nodes: [{ name: web1, vars: { port: 8080 } }]
`,
      'fleet.yaml',
    );
    expect(fleet.loadBalancer).toEqual({
      type: 'nginx',
      upstreamFile: '/etc/nginx/conf.d/web-upstream.conf',
      upstream: 'web',
      server: '{host}:{vars.port}',
      test: 'nginx -t',
      reload: 'nginx -s reload',
      pidFile: '/run/nginx.pid',
      sudo: false,
    });
  });
});

/**
 * A transport that plays an nginx host: a file system of one upstream file and a PID file, a master
 * whose workers are replaced on reload, and ss answers. Records every command.
 */
function fakeNginxHost(options: { testFails?: boolean; connections?: number } = {}) {
  const files = new Map([
    ['/etc/nginx/conf.d/web.conf', UPSTREAM],
    ['/run/nginx.pid', '100\n'],
  ]);
  let workers = [201, 202];
  let old: number[] = [];
  const commands: string[] = [];
  const answer = (stdout: string, code = 0, stderr = ''): ExecResult => ({ code, stdout, stderr });
  const exec = (command: RemoteCommand, options_: ExecOptions): Promise<ExecResult> => {
    const line = commandLine(command);
    commands.push(line);
    const argv = 'argv' in command ? command.argv : [];
    if (argv[0] === 'cat')
      return Promise.resolve(answer(files.get(argv[2]) ?? '', files.has(argv[2]) ? 0 : 1));
    if (argv[0] === 'sh') {
      files.set(argv[4], options_.stdin ?? '');
      return Promise.resolve(answer(''));
    }
    if (argv[0] === 'ps') {
      const rows = [
        ...old.map((p) => `${p} nginx: worker process is shutting down`),
        ...workers.map((p) => `${p} nginx: worker process`),
      ];
      old = []; // the old workers finish between two looks
      return Promise.resolve(answer(rows.join('\n')));
    }
    if (argv[0] === 'ss')
      return Promise.resolve(answer('0 0 10.0.0.5:40000 10.0.0.1:8080\n'.repeat(options.connections ?? 0)));
    if (line.startsWith('nginx -t'))
      return Promise.resolve(
        options.testFails ? answer('', 1, 'nginx: [emerg] invalid parameter') : answer(''),
      );
    if (line.startsWith('nginx -s reload')) {
      old = workers;
      workers = workers.map((p) => p + 100);
      return Promise.resolve(answer(''));
    }
    return Promise.resolve(answer('', 127, `unexpected command ${line}`));
  };
  const transport: Transport = {
    node: 'lb1',
    connect: () => Promise.resolve({ ok: true }),
    exec,
    close: () => Promise.resolve(),
  };
  return { transport, files, commands };
}

const nginxConfig = {
  type: 'nginx',
  upstreamFile: '/etc/nginx/conf.d/web.conf',
  upstream: 'web',
  host: 'lb1',
  server: '{host}:{vars.port}',
  test: 'nginx -t',
  reload: 'nginx -s reload',
  pidFile: '/run/nginx.pid',
  sudo: false,
} satisfies LoadBalancerConfig;
const web1: FleetNode = { name: 'web1', host: '10.0.0.1', lbServer: 'web1', vars: { port: 8080 } };
const signal = new AbortController().signal;

describe('nginx load balancer', () => {
  it('deregisters: edits the file, tests, reloads, and waits for the old workers to stop', async () => {
    const host = fakeNginxHost({ connections: 2 });
    const lb = createNginxLoadBalancer(nginxConfig, host.transport, 5000, () => Promise.resolve());
    expect(await lb.deregister(web1, signal)).toEqual({ ok: true });
    expect(host.files.get('/etc/nginx/conf.d/web.conf')).toBe(
      UPSTREAM.replace('weight=2;', 'weight=2 down;'),
    );
    expect(host.commands.map((c) => c.split(' ')[0])).toEqual([
      'cat',
      'cat',
      'ps',
      'sh',
      'nginx',
      'nginx',
      'cat',
      'ps',
    ]);
    expect(await lb.state(web1, signal)).toEqual({
      ok: true,
      value: { state: 'maint', sessions: 2, detail: 'server 10.0.0.1:8080 down, 2 connections' },
    });
    expect(host.commands.at(-1)).toBe("ss -Htn state established '(' dst 10.0.0.1:8080 ')'");
    expect(await lb.register(web1, signal)).toEqual({ ok: true });
    expect(host.files.get('/etc/nginx/conf.d/web.conf')).toBe(UPSTREAM);
    expect(await lb.state(web1, signal)).toMatchObject({ ok: true, value: { state: 'up' } });
  });

  it('puts the file back and reports nginx -t when the test fails, without reloading', async () => {
    const host = fakeNginxHost({ testFails: true });
    const lb = createNginxLoadBalancer(nginxConfig, host.transport, 5000, () => Promise.resolve());
    const result = await lb.deregister(web1, signal);
    expect(result).toEqual({
      ok: false,
      reason: expect.stringMatching(
        /nginx config test failed: .*invalid parameter; \/etc\/nginx\/conf.d\/web.conf restored$/,
      ),
    });
    expect(host.files.get('/etc/nginx/conf.d/web.conf')).toBe(UPSTREAM);
    expect(host.commands.some((c) => c.includes('reload'))).toBe(false);
  });

  it('reports a node missing from the upstream as absent, and refuses to deregister it', async () => {
    const host = fakeNginxHost();
    const lb = createNginxLoadBalancer(nginxConfig, host.transport, 5000, () => Promise.resolve());
    const stranger = { ...web1, host: '10.9.9.9' };
    expect(await lb.state(stranger, signal)).toMatchObject({ ok: true, value: { state: 'absent' } });
    expect(await lb.deregister(stranger, signal)).toMatchObject({
      ok: false,
      reason: /has no server 10.9.9.9:8080/,
    });
    expect(host.commands.some((c) => c.startsWith('sh'))).toBe(false);
  });

  it('names a placeholder the node has no value for', async () => {
    const lb = createNginxLoadBalancer(nginxConfig, fakeNginxHost().transport, 5000, () => Promise.resolve());
    expect(await lb.state({ ...web1, vars: {} }, signal)).toEqual({
      ok: false,
      reason: 'loadBalancer.server "{host}:{vars.port}": {vars.port} has no value',
    });
  });

  it('describes the edit, the test and the reload for the plan', () => {
    const lb = createNginxLoadBalancer({ ...nginxConfig, sudo: true }, fakeNginxHost().transport, 5000, () =>
      Promise.resolve(),
    );
    expect(lb.describe(web1)).toEqual({
      deregister: [
        'lb1: mark "server 10.0.0.1:8080" down in upstream web (/etc/nginx/conf.d/web.conf)',
        "lb1: sudo -n sh -c 'nginx -t'",
        "lb1: sudo -n sh -c 'nginx -s reload', then wait until the old workers stop taking requests",
      ],
      register: [
        'lb1: remove "down" from "server 10.0.0.1:8080" in upstream web (/etc/nginx/conf.d/web.conf)',
        "lb1: sudo -n sh -c 'nginx -t'",
        "lb1: sudo -n sh -c 'nginx -s reload', then wait until the old workers stop taking requests",
      ],
      state: [
        'lb1: sudo -n cat -- /etc/nginx/conf.d/web.conf',
        'lb1: count established connections to 10.0.0.1:8080 (ss)',
      ],
    });
  });
});

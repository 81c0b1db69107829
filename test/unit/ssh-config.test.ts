import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createSshConfigResolver,
  hostLineMatches,
  parseJumpSpec,
  resolveSshTarget,
  type HostConfig,
  type HostQuery,
  type SshConfigOptions,
} from '../../src/lib/transport/ssh-config.js';

const hasSsh = !spawnSync('ssh', ['-V']).error;
const me = userInfo();
let dir: string;
let n = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'graceroll-ssh-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Writes files (path relative to a fresh directory → text) and returns that directory. */
async function files(tree: Record<string, string>): Promise<string> {
  const root = join(dir, `case-${++n}`);
  for (const [path, text] of Object.entries(tree)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

const resolveWith = (engine: 'ssh' | 'parser', options: SshConfigOptions, query: HostQuery) =>
  createSshConfigResolver({ ...options, engine }).resolve(query);

describe('parseJumpSpec', () => {
  it.each([
    ['bastion', { host: 'bastion' }],
    ['jim@bastion', { host: 'bastion', user: 'jim' }],
    ['jim@bastion:2222', { host: 'bastion', user: 'jim', port: 2222 }],
    ['10.0.0.1:22', { host: '10.0.0.1', port: 22 }],
    ['ssh://jim@bastion:2200', { host: 'bastion', user: 'jim', port: 2200 }],
    ['[fd00::1]:2222', { host: 'fd00::1', port: 2222 }],
    ['jim@[fd00::1]', { host: 'fd00::1', user: 'jim' }],
  ])('%s', (spec, expected) => expect(parseJumpSpec(spec)).toEqual(expected));

  it.each(['', 'a:b', 'bastion:0', 'bastion:70000', 'a b', '@'])('refuses %j', (spec) =>
    expect(() => parseJumpSpec(spec)).toThrow(/invalid jump host/),
  );
});

describe('Host patterns', () => {
  it.each([
    ['web1', ['web*'], true],
    ['web1', ['web?'], true],
    ['web10', ['web?'], false],
    ['db1', ['web*', 'db*'], true],
    ['web-canary', ['web*', '!*-canary'], false],
    ['web1', ['!db*'], false], // a negated pattern alone matches nothing
    ['Web1', ['web1'], false], // case-sensitive, as OpenSSH (checked against ssh -G below)
  ] as const)('%s against %j: %s', (host, patterns, expected) =>
    expect(hostLineMatches(host, patterns)).toBe(expected),
  );
});

/**
 * The fallback parser against OpenSSH itself: each config is resolved by `ssh -G` and by the parser, and the
 * results must be the same. Include paths are absolute here, because ssh resolves relative ones in the real
 * ~/.ssh (tested for the parser alone below).
 */
describe.skipIf(!hasSsh)('the parser agrees with ssh -G', () => {
  const cases: Array<{ name: string; tree: (root: string) => Record<string, string>; queries: HostQuery[] }> =
    [
      {
        name: 'Host patterns, first value wins, HostName %h, User, Port, IdentityFile tokens, ProxyJump chain',
        tree: () => ({
          config: `# a comment
Host web-canary
  Port 2022
Host web* !web-skip
  HostName %h.internal
  User deploy
  Port 2222
  IdentityFile ~/.ssh/deploy_%h_%r
  IdentityFile %d/keys/%u-%n-%p-%%
  ProxyJump jim@bastion:2200,b2
Host *
  User fallback
  Port 22
  IdentityFile /etc/graceroll/common
  ProxyJump other
`,
        }),
        queries: [
          { host: 'web1' },
          { host: 'web-canary' },
          { host: 'web-skip' },
          { host: 'db1' },
          { host: 'web1', user: 'ops', port: 2200 },
          { host: 'Web1' },
        ],
      },
      {
        name: 'Include: globs in sorted order, inside a Host block only for that host, state restored after',
        tree: (root) => ({
          config: `Include ${root}/conf.d/*.conf
Host app-*
  Include ${root}/app/*.conf
  Port 2200
Host *
  IdentityFile ${root}/default_key
`,
          'conf.d/20-b.conf': 'Host db?\n  Port 5432\n  User second\n',
          'conf.d/10-a.conf': 'Host db?\n  User first\n  HostName 10.1.0.%h\n',
          'conf.d/.hidden.conf': 'Host *\n  User hidden\n',
          'app/x.conf': 'HostName app.internal\nHost *\n  User from-app-include\n',
        }),
        queries: [{ host: 'db1' }, { host: 'app-1' }, { host: 'web1' }],
      },
      {
        name: 'syntax: Key=value, Key = value, quotes, keyword case, ProxyJump none and ProxyCommand first',
        tree: () => ({
          config: `HOST a
  hostname=alpha.example
  USER = "ann"
  IdentityFile "/path with space/key" # trailing comment
Host b
  ProxyJump none
  ProxyCommand nc %h %p
Host c
  ProxyCommand nc %h %p
Host c b
  ProxyJump jump
Host d
  ProxyJump none
  ProxyJump later
Host e
  ProxyCommand none
  ProxyJump later
Match all
  Port 2022
`,
        }),
        queries: [{ host: 'a' }, { host: 'b' }, { host: 'c' }, { host: 'd' }, { host: 'e' }],
      },
    ];

  for (const c of cases) {
    it(c.name, async () => {
      const root = await files(c.tree(join(dir, `case-${n + 1}`)));
      for (const query of c.queries) {
        const options = { configPath: join(root, 'config') };
        const viaSsh = await resolveWith('ssh', options, query);
        const viaParser = await resolveWith('parser', options, query);
        expect({ ...viaParser, via: 'x' }, JSON.stringify(query)).toEqual({ ...viaSsh, via: 'x' });
        expect([viaSsh.via, viaParser.via]).toEqual(['ssh -G', 'parser']);
      }
    });
  }

  it('spot checks of what both say', async () => {
    const root = await files({
      config: `Host web* !web-skip
  HostName %h.internal
  User deploy
  Port 2222
  IdentityFile ~/.ssh/deploy_%h_%r
  IdentityFile %d/keys/%u-%n-%p-%%
  ProxyJump jim@bastion:2200,b2
`,
    });
    for (const engine of ['ssh', 'parser'] as const) {
      const configPath = join(root, 'config');
      expect(await resolveWith(engine, { configPath }, { host: 'web1' })).toMatchObject<Partial<HostConfig>>({
        host: 'web1',
        hostName: 'web1.internal',
        user: 'deploy',
        port: 2222,
        identityFiles: [
          `${me.homedir}/.ssh/deploy_web1.internal_deploy`,
          `${me.homedir}/keys/${me.username}-web1-2222-%`,
        ],
        proxyJump: ['jim@bastion:2200', 'b2'],
      });
      // Explicit values (fleet file = command line) win, and the tokens use them.
      expect(
        await resolveWith(engine, { configPath }, { host: 'web1', user: 'ops', port: 22 }),
      ).toMatchObject({
        user: 'ops',
        port: 22,
        identityFiles: [`${me.homedir}/.ssh/deploy_web1.internal_ops`, expect.stringMatching(/-22-%$/)],
      });
      expect(await resolveWith(engine, { configPath }, { host: 'web-skip' })).toMatchObject({
        hostName: 'web-skip',
        port: 22,
        user: me.username,
        identityFiles: null, // none configured: OpenSSH's defaults, which graceroll replaces with its own
        proxyJump: [],
      });
    }
  });

  it('only ssh -G evaluates Match; the parser skips the block and warns once', async () => {
    const root = await files({ config: 'Match user deploy\n  Port 2200\nHost *\n  User nobody-else\n' });
    const configPath = join(root, 'config');
    expect(await resolveWith('ssh', { configPath }, { host: 'x', user: 'deploy' })).toMatchObject({
      port: 2200,
    });
    const warnings: string[] = [];
    const parser = createSshConfigResolver({
      configPath,
      engine: 'parser',
      onWarning: (m) => warnings.push(m),
    });
    expect(await parser.resolve({ host: 'x', user: 'deploy' })).toMatchObject({ port: 22, user: 'deploy' });
    await parser.resolve({ host: 'y' });
    expect(warnings).toEqual([
      `${configPath} line 1: "Match user deploy" is ignored with its options (without the ssh binary graceroll reads ssh config itself and does not evaluate Match)`,
    ]);
  });

  it('reports a config OpenSSH refuses', async () => {
    const root = await files({ config: 'Host x\n  Port banana\n' });
    await expect(resolveWith('ssh', { configPath: join(root, 'config') }, { host: 'x' })).rejects.toThrow(
      /^ssh -G x failed: .*config line 2: Bad port 'banana'/,
    );
  });
});

describe('the parser alone', () => {
  it('resolves relative Include in ~/.ssh of a user file, and reads ~/.ssh/config then the system file', async () => {
    const home = await files({
      '.ssh/config': 'Include conf.d/*\nHost web1\n  Port 2201\n',
      '.ssh/conf.d/a': 'Host web*\n  User from-include\n',
      'etc/ssh_config': 'Host *\n  Port 9\n  User system\n  HostName system.example\n',
    });
    const resolver = createSshConfigResolver({
      engine: 'parser',
      home,
      systemConfig: join(home, 'etc/ssh_config'),
    });
    expect(await resolver.resolve({ host: 'web1' })).toMatchObject({
      hostName: 'system.example',
      user: 'from-include',
      port: 2201,
      via: 'parser',
    });
  });

  it('ignores a missing file and an Include matching nothing', async () => {
    const root = await files({ config: 'Include /nonexistent/graceroll/*.conf\nHost *\n  Port 2\n' });
    const resolver = createSshConfigResolver({ engine: 'parser', configPath: join(root, 'config') });
    expect((await resolver.resolve({ host: 'a' })).port).toBe(2);
    const none = createSshConfigResolver({ engine: 'parser', configPath: join(root, 'missing') });
    expect((await none.resolve({ host: 'a' })).port).toBe(22);
  });

  it('sshConfig false reads nothing', async () => {
    const resolver = createSshConfigResolver({ configPath: false });
    expect(await resolver.resolve({ host: 'Web1', port: 2 })).toEqual({
      host: 'Web1',
      hostName: 'web1',
      user: me.username,
      port: 2,
      identityFiles: null,
      proxyJump: [],
      via: 'none',
    });
  });

  it('warns about lines it cannot read, once each', async () => {
    const root = await files({ config: 'Host\nPort "unclosed\nHost *\n  Port 3\n' });
    const warnings: string[] = [];
    const configPath = join(root, 'config');
    const resolver = createSshConfigResolver({
      engine: 'parser',
      configPath,
      onWarning: (m) => warnings.push(m),
    });
    expect((await resolver.resolve({ host: 'a' })).port).toBe(3);
    await resolver.resolve({ host: 'b' });
    expect(warnings).toEqual([
      `${configPath} line 1: cannot read "Host"; ignored`,
      `${configPath} line 2: Port without a value; ignored`,
    ]);
  });

  it('an unknown token is an error, as in OpenSSH', async () => {
    const root = await files({ config: 'Host *\n  IdentityFile ~/.ssh/%C\n' });
    const resolver = createSshConfigResolver({ engine: 'parser', configPath: join(root, 'config') });
    await expect(resolver.resolve({ host: 'a' })).rejects.toThrow(/token %C is not supported/);
  });

  it('auto falls back to the parser when there is no ssh binary', async () => {
    const root = await files({ config: 'Host a\n  Port 7\n' });
    const resolver = createSshConfigResolver({
      configPath: join(root, 'config'),
      sshBinary: '/nonexistent/graceroll/ssh',
    });
    expect(await resolver.resolve({ host: 'a' })).toMatchObject({ port: 7, via: 'parser' });
  });

  it('expands %l/%L/%i too', async () => {
    const root = await files({ config: 'Host *\n  IdentityFile /k/%l-%L-%i\n' });
    const resolver = createSshConfigResolver({ engine: 'parser', configPath: join(root, 'config') });
    expect((await resolver.resolve({ host: 'a' })).identityFiles).toEqual([
      `/k/${hostname()}-${hostname().split('.')[0]}-${me.uid}`,
    ]);
  });
});

/** Precedence: the fleet file's explicit values are ssh's command line; the config comes next; defaults last. */
describe.each(hasSsh ? (['ssh', 'parser'] as const) : (['parser'] as const))(
  'resolveSshTarget (%s)',
  (engine) => {
    let root: string;
    let home: string;
    let keys: string;
    beforeAll(async () => {
      root = await files({
        'keys/bastion_key': 'k',
        'keys/node_key': 'k',
        'keys/explicit': 'k',
        'home/.ssh/id_ecdsa': 'k', // graceroll's default when nothing names a key
        config: '',
      });
      home = join(root, 'home');
      keys = join(root, 'keys');
      await writeFile(
        join(root, 'config'),
        `Host bastion
  HostName 10.9.0.2
  User jumper
  Port 2222
  IdentityFile ${keys}/bastion_key
Host inner
  HostName 10.9.1.2
  ProxyJump outer
Host outer
  HostName 10.9.0.3
  ProxyJump bastion
Host keyless
  HostName 10.9.0.4
Host loop-a
  ProxyJump loop-b
Host loop-b
  ProxyJump loop-a
Host piped
  ProxyCommand nc %h %p
Host app-* !app-direct
  ProxyJump bastion
Host app-*
  HostName %h.internal
  User app
  Port 2200
  IdentityFile ${keys}/missing_key
  IdentityFile ${keys}/node_key
Host plain
  HostName plain.internal
`,
      );
    });
    const resolver = () => createSshConfigResolver({ engine, configPath: join(root, 'config'), home });
    const target = (request: Parameters<typeof resolveSshTarget>[1]) =>
      resolveSshTarget(resolver(), request, home);

    it('ssh config values apply where the fleet file is silent', async () => {
      expect(await target({ host: 'app-1' })).toEqual({
        host: 'app-1.internal',
        port: 2200,
        user: 'app',
        privateKeyPath: `${keys}/node_key`, // the first IdentityFile that exists
        jumps: [
          {
            name: 'bastion',
            host: '10.9.0.2',
            port: 2222,
            user: 'jumper',
            privateKeyPath: `${keys}/bastion_key`,
          },
        ],
        warnings: [],
      });
    });

    it('node/transport user, port and identityFile win over the ssh config (ssh -l/-p/-i)', async () => {
      expect(
        await target({ host: 'app-1', user: 'root', port: 22, identityFile: `${keys}/explicit` }),
      ).toMatchObject({ host: 'app-1.internal', port: 22, user: 'root', privateKeyPath: `${keys}/explicit` });
    });

    it('transport.jump replaces ProxyJump (ssh -J); none turns it off; the hop is looked up in the config', async () => {
      expect((await target({ host: 'app-1', jump: ['ops@bastion:22'] })).jumps).toEqual([
        { name: 'bastion', host: '10.9.0.2', port: 22, user: 'ops', privateKeyPath: `${keys}/bastion_key` },
      ]);
      expect((await target({ host: 'app-1', jump: 'none' })).jumps).toEqual([]);
      expect((await target({ host: 'app-direct' })).jumps).toEqual([]);
    });

    it("a jump host's own ProxyJump is followed for the first hop, as ssh -J does", async () => {
      const { jumps } = await target({ host: 'inner' });
      expect(jumps.map((j) => [j.name, j.host, j.port])).toEqual([
        ['bastion', '10.9.0.2', 2222],
        ['outer', '10.9.0.3', 22],
      ]);
      // A later hop's own ProxyJump does not count: outer comes after keyless, so bastion is not added.
      const chain = await target({ host: 'inner', jump: ['keyless', 'outer'] });
      expect(chain.jumps.map((j) => j.name)).toEqual(['keyless', 'outer']);
    });

    it('jump hosts without an IdentityFile get transport.identityFile, else the default key', async () => {
      const explicit = await target({ host: 'x', jump: ['keyless'], identityFile: `${keys}/explicit` });
      expect(explicit.jumps[0].privateKeyPath).toBe(`${keys}/explicit`);
      const defaults = await target({ host: 'x', jump: ['keyless'] });
      expect(defaults.jumps[0].privateKeyPath).toBe(`${home}/.ssh/id_ecdsa`);
      expect(defaults.privateKeyPath).toBe(`${home}/.ssh/id_ecdsa`);
      // transport.user and port are the nodes': they do not reach the jump host.
      expect(explicit.jumps[0]).toMatchObject({ user: me.username, port: 22 });
    });

    it('warns when no IdentityFile of the config exists (the agent alone is offered)', async () => {
      await writeFile(join(root, 'only-missing'), `Host *\n  IdentityFile ${keys}/nope\n`);
      const only = createSshConfigResolver({ engine, configPath: join(root, 'only-missing'), home });
      const result = await resolveSshTarget(only, { host: 'a' }, home);
      expect(result.privateKeyPath).toBeUndefined();
      expect(result.warnings).toEqual([
        `none of the IdentityFile entries of the ssh config for a exists (${keys}/nope): only the agent is offered`,
      ]);
    });

    it('refuses a ProxyJump loop and a ProxyCommand', async () => {
      await expect(target({ host: 'loop-a' })).rejects.toThrow(/ProxyJump nested more than 8 deep/);
      await expect(target({ host: 'piped' })).rejects.toThrow(
        /ssh config sets ProxyCommand for piped \(nc %h %p\), which graceroll cannot run/,
      );
      // ssh -J on the command line wins over the config's ProxyCommand, and so does transport.jump.
      expect((await target({ host: 'piped', jump: ['keyless'] })).jumps).toHaveLength(1);
    });

    it('HostName applies to the host, and sshConfig false applies nothing', async () => {
      expect((await target({ host: 'plain' })).host).toBe('plain.internal');
      const none = await resolveSshTarget(
        createSshConfigResolver({ configPath: false }),
        { host: 'plain' },
        home,
      );
      expect(none).toMatchObject({ host: 'plain', port: 22, user: me.username, jumps: [] });
    });
  },
);

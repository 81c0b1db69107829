import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { homedir, hostname as localHostname, userInfo } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { JumpHop } from './jump.js';

/**
 * The OpenSSH client configuration (ssh_config(5)) for graceroll's SSH connections.
 *
 * Where the ssh binary runs, `ssh -G HOST` asks OpenSSH itself for the effective configuration: every
 * keyword, Include, Match (exec, user, localuser…) and token exactly as `ssh HOST` would see them. Where it
 * does not (slim images, Windows without OpenSSH), a parser below reads the files the same way for the
 * keywords graceroll uses: Host (`*`, `?`, `!`), HostName, User, Port, IdentityFile, ProxyJump,
 * ProxyCommand and Include; Match blocks are skipped with a warning.
 *
 * PRECEDENCE, decided as an OpenSSH user expects it (command line > config file > defaults), with the fleet
 * file in the role of the command line only where the operator wrote a value (resolveSshTarget):
 *
 * | what        | wins first → last                                                                  |
 * |-------------|------------------------------------------------------------------------------------|
 * | host name   | ssh config HostName (matched on node.host, like `ssh HOST`) → node.host            |
 * | port        | node.port → transport.port (`-p`) → ssh config Port → 22                           |
 * | user        | node.user → transport.user (`-l`) → ssh config User → the local user               |
 * | key         | transport.identityFile (`-i`) → IdentityFile → ~/.ssh/id_ed25519, id_ecdsa, id_rsa |
 * | jump hosts  | transport.jump (`-J`; `none` turns ProxyJump off) → ssh config ProxyJump           |
 *
 * Jump hosts are looked up in the ssh config too (`jump: bastion` finds `Host bastion`); a `user@` or
 * `:port` written in the jump spec wins over it, as with `ssh -J`. transport.user and transport.port are the
 * nodes' and do not apply to jump hosts (OpenSSH's `-l`/`-p` do not either), but transport.identityFile is
 * offered to a jump host whose config names no IdentityFile: the fleet file has no other way to give one.
 * Known hosts, host key policy, agent and timeouts stay graceroll's settings (transport.knownHosts…):
 * UserKnownHostsFile, StrictHostKeyChecking, IdentityAgent and ConnectTimeout are not read.
 */

/** One destination to look up. user and port are set only when the fleet file sets them (`-l`, `-p`). */
export interface HostQuery {
  /** The destination as typed, e.g. a node's `host`: Host patterns match this. */
  host: string;
  user?: string;
  port?: number;
}

/** The effective configuration for one destination. */
export interface HostConfig {
  /** The destination as asked. */
  host: string;
  /** HostName (with %h expanded), else the destination; lower case, as OpenSSH uses it. */
  hostName: string;
  user: string;
  port: number;
  /** IdentityFile values, `~` and tokens expanded, in order; null when the config names none. */
  identityFiles: string[] | null;
  /** ProxyJump hops as written (`[user@]host[:port]`); empty when unset or `none`. */
  proxyJump: string[];
  /** ProxyCommand, which graceroll cannot run: resolveSshTarget refuses it. */
  proxyCommand?: string;
  via: 'ssh -G' | 'parser' | 'none';
}

export interface SshConfigOptions {
  /**
   * A config file to read instead of the usual ones (like `ssh -F`), or false to read none. Undefined: what
   * a plain `ssh` reads, ~/.ssh/config then /etc/ssh/ssh_config.
   */
  configPath?: string | false;
  /** 'auto' (default): `ssh -G` when the ssh binary runs, else the parser. */
  engine?: 'auto' | 'ssh' | 'parser';
  sshBinary?: string;
  /** Problems in the files (the parser's Match blocks, bad lines), each said once. */
  onWarning?: (message: string) => void;
  /** The user's home directory (default: from the password database, as OpenSSH; ~ and %d). */
  home?: string;
  /** System-wide file read after the user's (default /etc/ssh/ssh_config). */
  systemConfig?: string;
  /** How long `ssh -G` may take (it runs `Match exec` commands), default 10 s. */
  timeoutMs?: number;
}

export interface SshConfigResolver {
  resolve(query: HostQuery): Promise<HostConfig>;
}

/** OpenSSH's default identities when the config names none (ssh -G lists them; their order varies). */
const OPENSSH_DEFAULT_KEYS = [
  'id_rsa',
  'id_dsa',
  'id_ecdsa',
  'id_ecdsa_sk',
  'id_ed25519',
  'id_ed25519_sk',
  'id_xmss',
];
/** graceroll's choice among the defaults (one key is offered besides the agent): strongest first. */
const DEFAULT_KEYS = ['id_ed25519', 'id_ecdsa', 'id_rsa'];
/** OpenSSH refuses deeper Include nesting (READCONF_MAX_DEPTH). */
const MAX_INCLUDE_DEPTH = 16;
const MAX_JUMP_DEPTH = 8;

export function createSshConfigResolver(options: SshConfigOptions = {}): SshConfigResolver {
  const home = options.home ?? userInfo().homedir;
  const said = new Set<string>();
  const warn = (message: string): void => {
    if (said.has(message)) return;
    said.add(message);
    options.onWarning?.(message);
  };
  const files = new Map<string, Promise<string | null>>();
  const cache = new Map<string, Promise<HostConfig>>();
  let engine = options.engine ?? 'auto';

  const configFiles = (): ConfigFile[] => {
    if (options.configPath === false) return [];
    if (options.configPath !== undefined)
      return [{ path: expandTilde(options.configPath, home), user: true }];
    return [
      { path: join(home, '.ssh', 'config'), user: true },
      { path: options.systemConfig ?? '/etc/ssh/ssh_config', user: false },
    ];
  };

  const read = (path: string): Promise<string | null> => {
    let text = files.get(path);
    if (!text) {
      text = readFile(path, 'utf8').catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return null;
        throw new Error(`cannot read ssh config ${path}: ${error.message}`);
      });
      files.set(path, text);
    }
    return text;
  };

  async function lookup(query: HostQuery): Promise<HostConfig> {
    if (options.configPath === false) return finish(query, {}, 'none', home);
    if (engine !== 'parser') {
      try {
        return await sshG(query);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT' || engine === 'ssh') throw error;
        engine = 'parser'; // no ssh binary here: read the files ourselves from now on
      }
    }
    const values: RawValues = {};
    for (const file of configFiles()) {
      await readConfigFile(file, query.host, values, { read, warn, home }, { active: true, never: false }, 0);
    }
    return finish(query, values, 'parser', home);
  }

  async function sshG(query: HostQuery): Promise<HostConfig> {
    const args = ['-G'];
    const { configPath } = options;
    if (typeof configPath === 'string') args.push('-F', expandTilde(configPath, home));
    if (query.user !== undefined) args.push('-l', query.user);
    if (query.port !== undefined) args.push('-p', String(query.port));
    args.push('--', query.host);
    const stdout = await new Promise<string>((resolve, reject) => {
      const child = execFile(
        options.sshBinary ?? 'ssh',
        args,
        { timeout: options.timeoutMs ?? 10_000, maxBuffer: 1 << 20 },
        (error, out, err) => {
          if (!error) return resolve(out);
          if (error.code === 'ENOENT')
            return reject(Object.assign(new Error(error.message), { code: 'ENOENT' }));
          const why = err
            .split('\n')
            .filter((l) => l.trim() && !/^Pseudo-terminal will not be allocated/.test(l))
            .join('; ');
          const killed = error.killed ? ` (killed after ${options.timeoutMs ?? 10_000} ms)` : '';
          reject(new Error(`ssh -G ${query.host} failed${killed}: ${why || error.message}`));
        },
      );
      child.stdin?.end();
    });
    const values: RawValues = { identityFile: [] };
    for (const line of stdout.split('\n')) {
      const space = line.indexOf(' ');
      if (space < 0) continue;
      const key = line.slice(0, space);
      const value = line.slice(space + 1).trim();
      if (key === 'hostname') values.hostName = value;
      else if (key === 'user') values.user = value;
      else if (key === 'port') values.port = value;
      else if (key === 'identityfile') values.identityFile!.push(value);
      else if (key === 'proxyjump') values.proxyJump = value;
      else if (key === 'proxycommand') values.proxyCommand = value;
    }
    // ssh -G lists OpenSSH's own default keys when the config names none: graceroll has its own order.
    if (isDefaultKeyList(values.identityFile!)) delete values.identityFile;
    return finish(query, values, 'ssh -G', home);
  }

  return {
    resolve(query) {
      const key = JSON.stringify([query.host, query.user, query.port]);
      let result = cache.get(key);
      if (!result) {
        result = lookup(query);
        cache.set(key, result);
        result.catch(() => cache.delete(key)); // a broken config may be fixed before the next attempt
      }
      return result;
    },
  };
}

/** What to connect to for one destination: OpenSSH config and the fleet file, in the order documented above. */
export interface TargetRequest extends HostQuery {
  /** transport.identityFile (`-i`). */
  identityFile?: string;
  /** transport.jump (`-J`): hops, first first; 'none' ignores ProxyJump. */
  jump?: readonly string[] | 'none';
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKeyPath?: string;
  /** Jump hosts, first hop first; empty for a direct connection. */
  jumps: JumpHop[];
  /** Worth telling the operator once per node (e.g. no IdentityFile of the config exists). */
  warnings: string[];
}

/** home: where graceroll's default keys are looked for ($HOME, as for the fleet file's own `~` paths). */
export async function resolveSshTarget(
  resolver: SshConfigResolver,
  request: TargetRequest,
  home: string = homedir(),
): Promise<SshTarget> {
  const config = await resolver.resolve({ host: request.host, user: request.user, port: request.port });
  const warnings: string[] = [];
  const explicitKey = request.identityFile ? expandTilde(request.identityFile, home) : undefined;
  let jumps: JumpHop[] = [];
  if (request.jump === undefined) {
    if (config.proxyCommand) {
      throw new Error(
        `ssh config sets ProxyCommand for ${request.host} (${config.proxyCommand}), which graceroll cannot run: use ProxyJump or transport.jump, or sshConfig: false`,
      );
    }
    if (config.proxyJump.length > 0)
      jumps = await resolveChain(resolver, config.proxyJump, explicitKey, home, warnings, 0);
  } else if (request.jump !== 'none' && request.jump.length > 0) {
    jumps = await resolveChain(resolver, request.jump, explicitKey, home, warnings, 0);
  }
  return {
    host: config.hostName,
    port: config.port,
    user: config.user,
    privateKeyPath: explicitKey ?? pickIdentity(config, home, warnings),
    jumps,
    warnings,
  };
}

/**
 * Jump hosts of a chain, each looked up in the ssh config. As with `ssh -J a,b`, b is reached through a
 * and its own ProxyJump does not count, but a's does (ssh runs for a without -J): it is followed first.
 */
async function resolveChain(
  resolver: SshConfigResolver,
  specs: readonly string[],
  fallbackKey: string | undefined,
  home: string,
  warnings: string[],
  depth: number,
): Promise<JumpHop[]> {
  if (depth >= MAX_JUMP_DEPTH)
    throw new Error(`ProxyJump nested more than ${MAX_JUMP_DEPTH} deep (a loop?): ${specs.join(',')}`);
  const hops: JumpHop[] = [];
  let before: JumpHop[] = [];
  for (const [index, spec] of specs.entries()) {
    const parsed = parseJumpSpec(spec);
    const config = await resolver.resolve(parsed);
    hops.push({
      name: parsed.host,
      host: config.hostName,
      port: config.port,
      user: config.user,
      privateKeyPath:
        config.identityFiles === null && fallbackKey ? fallbackKey : pickIdentity(config, home, warnings),
    });
    if (index === 0 && config.proxyJump.length > 0)
      before = await resolveChain(resolver, config.proxyJump, fallbackKey, home, warnings, depth + 1);
    else if (index === 0 && config.proxyCommand)
      throw new Error(
        `ssh config sets ProxyCommand for jump host ${parsed.host}, which graceroll cannot run: use ProxyJump`,
      );
  }
  return [...before, ...hops];
}

/**
 * The key offered besides the agent: the first IdentityFile that exists (ssh2 takes one key per login, so
 * later ones are not tried), or graceroll's default when the config names none.
 */
function pickIdentity(config: HostConfig, home: string, warnings: string[]): string | undefined {
  if (config.identityFiles === null) {
    return DEFAULT_KEYS.map((k) => join(home, '.ssh', k)).find((k) => existsSync(k));
  }
  const found = config.identityFiles.find((k) => existsSync(k));
  if (!found && config.identityFiles.length > 0) {
    warnings.push(
      `none of the IdentityFile entries of the ssh config for ${config.host} exists (${config.identityFiles.join(', ')}): only the agent is offered`,
    );
  }
  return found;
}

/** `[user@]host[:port]` or `ssh://[user@]host[:port]`, with `[addr]` for IPv6, as ProxyJump and -J take. */
export function parseJumpSpec(spec: string): { host: string; user?: string; port?: number } {
  const match = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]\s]+\]|[^@:[\]\s/]+)(?::(\d{1,5}))?\/?$/.exec(
    spec.trim(),
  );
  const port = match?.[3] === undefined ? undefined : Number(match[3]);
  if (!match || (port !== undefined && (port < 1 || port > 65535)))
    throw new Error(`invalid jump host "${spec}": expected [user@]host[:port]`);
  const host = match[2].startsWith('[') ? match[2].slice(1, -1) : match[2];
  return { host, ...(match[1] !== undefined && { user: match[1] }), ...(port !== undefined && { port }) };
}

/** ssh_config(5) PATTERNS: `*` and `?`; case-sensitive, as OpenSSH's match_pattern(). */
export function matchPattern(text: string, pattern: string): boolean {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replaceAll('*', '.*')
    .replaceAll('?', '.');
  return new RegExp(`^${source}$`, 's').test(text);
}

/** A Host line: some pattern matches and no negated one does (a matching `!pattern` vetoes the line). */
export function hostLineMatches(host: string, patterns: readonly string[]): boolean {
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    if (matchPattern(host, negated ? pattern.slice(1) : pattern)) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

/** Values as found (first one wins, IdentityFile accumulates), before defaults and tokens. */
interface RawValues {
  hostName?: string;
  user?: string;
  port?: string;
  identityFile?: string[];
  proxyJump?: string;
  proxyCommand?: string;
}

interface ConfigFile {
  path: string;
  /** A user's file: relative Include paths are in ~/.ssh (else /etc/ssh). */
  user: boolean;
}

interface ReadContext {
  read(path: string): Promise<string | null>;
  warn(message: string): void;
  home: string;
}

/** readconf.c: Host lines switch `active`; an Include inside an inactive block can never match (`never`). */
interface BlockState {
  active: boolean;
  never: boolean;
}

async function readConfigFile(
  file: ConfigFile,
  host: string,
  values: RawValues,
  context: ReadContext,
  state: BlockState,
  depth: number,
): Promise<void> {
  const text = await context.read(file.path);
  if (text === null) return;
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const where = `${file.path} line ${index + 1}`;
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const parsed = /^([A-Za-z0-9]+)(?:\s*=\s*|\s+)(.*)$/.exec(line);
    if (!parsed) {
      context.warn(`${where}: cannot read "${line}"; ignored`);
      continue;
    }
    const keyword = parsed[1].toLowerCase();
    const args = splitArgs(parsed[2]);
    if (args === null || args.length === 0) {
      context.warn(`${where}: ${parsed[1]} without a value; ignored`);
      continue;
    }
    switch (keyword) {
      case 'host':
        state.active = !state.never && hostLineMatches(host, args);
        break;
      case 'match':
        if (args.length === 1 && args[0].toLowerCase() === 'all') {
          state.active = !state.never;
        } else {
          state.active = false;
          context.warn(
            `${where}: "Match ${args.join(' ')}" is ignored with its options (without the ssh binary graceroll reads ssh config itself and does not evaluate Match)`,
          );
        }
        break;
      case 'include': {
        if (depth + 1 > MAX_INCLUDE_DEPTH) {
          context.warn(`${where}: Include nested too deep; ignored`);
          break;
        }
        const outer = { ...state };
        for (const arg of args) {
          let pattern = expandTilde(arg, context.home);
          if (!isAbsolute(pattern))
            pattern = join(file.user ? join(context.home, '.ssh') : '/etc/ssh', pattern);
          for (const path of await glob(pattern)) {
            const inner: BlockState = { active: state.active, never: state.never || !state.active };
            await readConfigFile({ path, user: file.user }, host, values, context, inner, depth + 1);
          }
        }
        state.active = outer.active; // readconf.c restores the block's state after an Include
        break;
      }
      default:
        if (state.active) setValue(values, keyword, args);
    }
  }
}

function setValue(values: RawValues, keyword: string, args: string[]): void {
  switch (keyword) {
    case 'hostname':
      values.hostName ??= args[0];
      break;
    case 'user':
      values.user ??= args[0];
      break;
    case 'port':
      values.port ??= args[0];
      break;
    case 'identityfile':
      (values.identityFile ??= []).push(args[0]);
      break;
    // Whichever of the two comes first wins, except that `ProxyJump none` lets a later ProxyCommand in
    // (what ssh -G of OpenSSH 9.2 does).
    case 'proxyjump':
      if (values.proxyJump === undefined && values.proxyCommand === undefined) values.proxyJump = args[0];
      break;
    case 'proxycommand':
      if (values.proxyCommand === undefined && (values.proxyJump ?? 'none').toLowerCase() === 'none')
        values.proxyCommand = args.join(' ');
      break;
  }
}

/** Defaults, the fleet's explicit values, then tokens, as ssh does after reading the files. */
function finish(query: HostQuery, values: RawValues, via: HostConfig['via'], home: string): HostConfig {
  const original = query.host;
  // ssh -G prints HostName with its tokens already expanded.
  const configured =
    values.hostName && via === 'parser'
      ? expandTokens(values.hostName, { h: original }, 'HostName')
      : values.hostName;
  const hostName = (configured ?? original).toLowerCase();
  const port = query.port ?? (values.port === undefined ? 22 : Number(values.port));
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`ssh config gives ${original} an invalid Port "${values.port}"`);
  const user = query.user ?? values.user ?? userInfo().username;
  const local = localHostname();
  const tokens: Record<string, string> = {
    d: home,
    h: hostName,
    i: String(userInfo().uid),
    L: local.split('.')[0],
    l: local,
    n: original,
    p: String(port),
    r: user,
    u: userInfo().username,
  };
  const files = values.identityFile?.filter((f) => f.toLowerCase() !== 'none');
  const proxyJump =
    values.proxyJump && values.proxyJump.toLowerCase() !== 'none'
      ? values.proxyJump.split(',').filter(Boolean)
      : [];
  const proxyCommand =
    values.proxyCommand && values.proxyCommand.toLowerCase() !== 'none' ? values.proxyCommand : undefined;
  return {
    host: original,
    hostName,
    user,
    port,
    identityFiles: files
      ? files.map((f) => expandTilde(expandTokens(f, tokens, 'IdentityFile'), home))
      : null,
    proxyJump,
    ...(proxyCommand !== undefined && { proxyCommand }),
    via,
  };
}

/** ssh_config(5) TOKENS: `%%` and the letters given; any other token is an error, as in OpenSSH. */
export function expandTokens(value: string, tokens: Record<string, string>, keyword: string): string {
  return value.replace(/%(.?)/g, (whole, letter: string) => {
    if (letter === '%') return '%';
    const replacement = tokens[letter];
    if (replacement === undefined)
      throw new Error(`ssh config: ${keyword} ${value}: token ${whole || '%'} is not supported here`);
    return replacement;
  });
}

function expandTilde(path: string, home: string): string {
  return path === '~' || path.startsWith('~/') ? home + path.slice(1) : path;
}

/** Whitespace-separated, double quotes group (argv_split in OpenSSH); null for an unclosed quote. */
function splitArgs(text: string): string[] | null {
  const args: string[] = [];
  const re = /"([^"]*)"|'([^']*)'|([^\s"']+)/g;
  let current: string | null = null;
  let last = 0;
  for (const match of text.matchAll(re)) {
    const gap = text.slice(last, match.index);
    if (gap.trim() !== '') return null;
    if (gap.length > 0 && current !== null) {
      args.push(current);
      current = null;
    }
    // An unquoted # starting a word begins a comment (OpenSSH 8.7+).
    if (current === null && match[3]?.startsWith('#')) return args;
    current = (current ?? '') + (match[1] ?? match[2] ?? match[3]);
    last = match.index + match[0].length;
  }
  if (text.slice(last).trim() !== '') return null;
  if (current !== null) args.push(current);
  return args;
}

/** ssh -G output for "no IdentityFile": OpenSSH's default keys (which and in what order varies by version). */
function isDefaultKeyList(files: readonly string[]): boolean {
  const names = files.map((f) => /^~\/\.ssh\/(id_[a-z0-9_]+)$/.exec(f)?.[1]);
  return (
    names.length >= 3 &&
    new Set(names).size === names.length &&
    names.every((n) => n !== undefined && OPENSSH_DEFAULT_KEYS.includes(n))
  );
}

/** glob(3) as Include uses it: `*`, `?`, `[…]` per path segment, dot files only for a dot pattern, sorted. */
async function glob(pattern: string): Promise<string[]> {
  if (!/[*?[]/.test(pattern)) return existsSync(pattern) ? [pattern] : [];
  const segments = pattern.split('/');
  let paths = [segments[0] === '' ? '/' : '.'];
  for (const segment of segments.slice(1)) {
    if (segment === '') continue;
    if (!/[*?[]/.test(segment)) {
      paths = paths.map((p) => join(p, segment));
      continue;
    }
    const re = segmentRegex(segment);
    const next: string[] = [];
    for (const dir of paths) {
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (name.startsWith('.') && !segment.startsWith('.')) continue;
        if (re.test(name)) next.push(join(dir, name));
      }
    }
    paths = next;
  }
  return paths.filter((p) => existsSync(p)).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

function segmentRegex(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i];
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 2);
      if (end === -1) source += '\\[';
      else {
        let body = segment.slice(i + 1, end);
        if (body.startsWith('!')) body = `^${body.slice(1)}`;
        source += `[${body.replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

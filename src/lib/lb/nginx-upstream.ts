import { fail, type Result } from '../outcome.js';

/**
 * Reading and editing an nginx `upstream` block without reformatting the file: every edit is an
 * insertion or deletion at a token's offset, so comments, order, weights and the other servers stay as
 * the operator wrote them. Tokens follow ngx_conf_read_token (src/core/ngx_conf_file.c): `#` starts a
 * comment only at the start of a token, quotes group, `;` `{` `}` end a token.
 */

interface Token {
  kind: 'word' | ';' | '{' | '}';
  text: string;
  start: number;
  end: number;
}

interface Directive {
  name: Token;
  args: Token[];
  children?: Directive[];
}

export interface UpstreamServer {
  /** The address as written: `10.0.0.1:8080`, `web1.internal:8080`, `unix:/run/web.sock`. */
  address: string;
  down: boolean;
  /** The other parameters as written (weight=2, max_fails=3, backup…). */
  params: string[];
}

const SPACE = /\s/;

function tokenize(src: string): Result<Token[]> {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (SPACE.test(c)) i++;
    else if (c === '#') {
      const eol = src.indexOf('\n', i);
      i = eol === -1 ? src.length : eol + 1;
    } else if (c === ';' || c === '{' || c === '}') {
      tokens.push({ kind: c, text: c, start: i, end: i + 1 });
      i++;
    } else if (c === '"' || c === "'") {
      let text = '';
      let j = i + 1;
      while (j < src.length && src[j] !== c) {
        if (src[j] === '\\' && j + 1 < src.length) j++;
        text += src[j++];
      }
      if (j >= src.length) return fail(`unterminated ${c} quote at offset ${i}`);
      tokens.push({ kind: 'word', text, start: i, end: j + 1 });
      i = j + 1;
    } else {
      let j = i;
      while (j < src.length && !SPACE.test(src[j]) && !';}'.includes(src[j])) {
        // `${name}` is a variable, not a block.
        if (src[j] === '{' && src[j - 1] !== '$') break;
        j += src[j] === '\\' ? 2 : 1;
      }
      tokens.push({
        kind: 'word',
        text: src.slice(i, Math.min(j, src.length)),
        start: i,
        end: Math.min(j, src.length),
      });
      i = j;
    }
  }
  return { ok: true, value: tokens };
}

function parse(tokens: Token[]): Result<Directive[]> {
  let at = 0;
  const block = (depth: number): Result<Directive[]> => {
    const directives: Directive[] = [];
    while (at < tokens.length) {
      const token = tokens[at];
      if (token.kind === '}') {
        if (depth === 0) return fail(`unexpected "}" at offset ${token.start}`);
        at++;
        return { ok: true, value: directives };
      }
      if (token.kind !== 'word') return fail(`unexpected "${token.text}" at offset ${token.start}`);
      const directive: Directive = { name: token, args: [] };
      at++;
      while (at < tokens.length && tokens[at].kind === 'word') directive.args.push(tokens[at++]);
      const end = tokens[at];
      if (!end) return fail(`"${token.text}" at offset ${token.start} has no ";" or "{"`);
      at++;
      if (end.kind === '{') {
        const children = block(depth + 1);
        if (!children.ok) return children;
        directive.children = children.value;
      } else if (end.kind !== ';') return fail(`unexpected "}" at offset ${end.start}`);
      directives.push(directive);
    }
    return depth === 0 ? { ok: true, value: directives } : fail('a block is not closed ("}" missing)');
  };
  return block(0);
}

/** The `server` directives of `upstream NAME { … }`, wherever it is (an included file or inside http {}). */
function upstreamServers(src: string, upstream: string): Result<Directive[]> {
  const tokens = tokenize(src);
  if (!tokens.ok) return tokens;
  const tree = parse(tokens.value);
  if (!tree.ok) return tree;
  const find = (directives: Directive[]): Directive | undefined => {
    for (const d of directives) {
      if (d.name.text === 'upstream' && d.args[0]?.text === upstream && d.children) return d;
      const inner = d.children && find(d.children);
      if (inner) return inner;
    }
    return undefined;
  };
  const block = find(tree.value);
  if (!block) return fail(`no "upstream ${upstream} { … }" block`);
  return { ok: true, value: block.children!.filter((d) => d.name.text === 'server' && d.args.length > 0) };
}

const sameAddress = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

/** Every server of the upstream, as written. */
export function readUpstream(src: string, upstream: string): Result<UpstreamServer[]> {
  const servers = upstreamServers(src, upstream);
  if (!servers.ok) return servers;
  return {
    ok: true,
    value: servers.value.map((d) => ({
      address: d.args[0].text,
      down: d.args.slice(1).some((a) => a.text === 'down'),
      params: d.args
        .slice(1)
        .filter((a) => a.text !== 'down')
        .map((a) => a.text),
    })),
  };
}

export interface UpstreamEdit {
  text: string;
  changed: boolean;
}

/**
 * Marks `address` down (out of rotation) or removes its `down` mark. Only that server's directive
 * changes: ` down` is inserted after its last parameter, or the `down` word and the blanks before it are
 * deleted. Fails when the upstream has no such server.
 */
export function markServer(
  src: string,
  upstream: string,
  address: string,
  down: boolean,
): Result<UpstreamEdit> {
  const servers = upstreamServers(src, upstream);
  if (!servers.ok) return servers;
  const matching = servers.value.filter((d) => sameAddress(d.args[0].text, address));
  if (matching.length === 0) {
    const known = servers.value.map((d) => d.args[0].text).join(', ') || 'none';
    return fail(`upstream ${upstream} has no server ${address} (it has: ${known})`);
  }
  const edits: { start: number; end: number; insert: string }[] = [];
  for (const directive of matching) {
    const downs = directive.args.filter((a, i) => i > 0 && a.text === 'down');
    if (down && downs.length === 0) {
      const last = directive.args[directive.args.length - 1];
      edits.push({ start: last.end, end: last.end, insert: ' down' });
    }
    if (!down) {
      for (const token of downs) {
        let start = token.start;
        while (start > 0 && (src[start - 1] === ' ' || src[start - 1] === '\t')) start--;
        edits.push({ start, end: token.end, insert: '' });
      }
    }
  }
  let text = src;
  for (const edit of edits.sort((a, b) => b.start - a.start)) {
    text = text.slice(0, edit.start) + edit.insert + text.slice(edit.end);
  }
  return { ok: true, value: { text, changed: edits.length > 0 } };
}

/**
 * `ss` needs a host and a port: `[::1]:8080`, `10.0.0.1:8080`, `web1:8080`, and `web1` alone means port 80
 * (nginx docs, ngx_http_upstream_module "server"). A unix socket has no TCP connections to count.
 */
export function splitAddress(address: string): { host: string; port: number } | undefined {
  if (address.startsWith('unix:')) return undefined;
  const bracketed = /^\[([0-9A-Fa-f:.]+)\](?::(\d{1,5}))?$/.exec(address);
  if (bracketed) return { host: bracketed[1], port: Number(bracketed[2] ?? 80) };
  const plain = /^([^:[\]]+)(?::(\d{1,5}))?$/.exec(address);
  if (plain) return { host: plain[1], port: Number(plain[2] ?? 80) };
  return undefined;
}

/** Worker processes of the master, from `ps -o pid=,args= --ppid MASTER`. */
export function parseWorkers(text: string): { pid: number; shuttingDown: boolean }[] {
  const workers: { pid: number; shuttingDown: boolean }[] = [];
  for (const line of text.split('\n')) {
    const match = /^\s*(\d+)\s+(.*)$/.exec(line);
    if (match && match[2].includes('worker process')) {
      workers.push({ pid: Number(match[1]), shuttingDown: match[2].includes('is shutting down') });
    }
  }
  return workers;
}

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Node as YamlNode } from 'yaml';
import type { ZodIssue } from 'zod';
import { ExitCode, GracerollError } from '../exit-codes.js';
import { fleetSchema } from './schema.js';
import type { Fleet, FleetOverrides } from './types.js';
import { checkRules, normalize } from './normalize.js';

const digest = (text: string) => `sha256:${createHash('sha256').update(text).digest('hex')}`;

/** `nodes[2].host` from ['nodes', 2, 'host']. */
export function formatPath(path: readonly (string | number)[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${part}` : part;
  return out || '(top level)';
}

function nodeAt(root: YamlNode | null, path: readonly (string | number)[]): YamlNode | undefined {
  let current: unknown = root;
  let found: YamlNode | undefined;
  for (const part of path) {
    if (isMap(current)) {
      const pair = current.items.find((item) => isScalar(item.key) && item.key.value === part);
      if (!pair) break;
      current = pair.value ?? pair.key;
    } else if (isSeq(current) && typeof part === 'number') {
      current = current.items[part];
    } else break;
    found = current as YamlNode;
  }
  return found ?? root ?? undefined;
}

function describeIssue(issue: ZodIssue): string {
  if (issue.code === 'invalid_type' && issue.received === 'undefined')
    return `required (expected ${issue.expected})`;
  if (issue.code === 'invalid_type') return `expected ${issue.expected}, got ${issue.received}`;
  if (issue.code === 'unrecognized_keys')
    return `unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  if (issue.code === 'invalid_union_discriminator')
    return `expected type to be one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
  if (issue.code === 'invalid_enum_value')
    return `expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')}, got ${JSON.stringify(issue.received)}`;
  return issue.message;
}

/**
 * Validates already-parsed config data. Every problem is reported as `path: message`, all at once.
 * `locate` maps a path to `file:line:col` when the data came from a YAML document.
 */
export function parseFleet(
  data: unknown,
  source: string,
  overrides: FleetOverrides = {},
  locate: (path: readonly (string | number)[]) => string = () => source,
  sourceDigest = digest(JSON.stringify(data) ?? ''),
): Fleet {
  const parsed = fleetSchema.safeParse(data);
  if (!parsed.success) {
    const seen = new Set<string>();
    const problems: string[] = [];
    for (const issue of parsed.error.issues) {
      const line = `${locate(issue.path)}: ${formatPath(issue.path)}: ${describeIssue(issue)}`;
      if (!seen.has(line)) problems.push(line);
      seen.add(line);
    }
    throw new GracerollError(problems, ExitCode.usage);
  }
  const fleet = normalize(parsed.data, source, sourceDigest, overrides);
  const problems = checkRules(fleet, overrides).map(
    (p) => `${locate(p.path)}: ${formatPath(p.path)}: ${p.message}`,
  );
  if (problems.length) throw new GracerollError(problems, ExitCode.usage);
  return fleet;
}

/** Parses YAML text; YAML syntax errors and schema problems come back located as `file:line:col`. */
export function parseFleetYaml(text: string, source: string, overrides: FleetOverrides = {}): Fleet {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const problems = doc.errors.map((error) => {
      const pos = lineCounter.linePos(error.pos[0]);
      return `${source}:${pos.line}:${pos.col}: ${error.message.split('\n')[0]}`;
    });
    throw new GracerollError(problems, ExitCode.usage);
  }
  const locate = (path: readonly (string | number)[]): string => {
    const node = nodeAt(doc.contents, path);
    if (!node?.range) return source;
    const pos = lineCounter.linePos(node.range[0]);
    return `${source}:${pos.line}:${pos.col}`;
  };
  let data: unknown;
  try {
    // toJS resolves aliases: an unknown one, or an alias bomb past maxAliasCount, throws here.
    data = doc.toJS({ maxAliasCount: 1000 }) ?? {};
  } catch (error) {
    throw new GracerollError([`${source}: ${(error as Error).message.split('\n')[0]}`], ExitCode.usage);
  }
  return parseFleet(data, source, overrides, locate, digest(text));
}

export async function loadFleet(path: string, overrides: FleetOverrides = {}): Promise<Fleet> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory, not a file'
            : (error as Error).message;
    throw new GracerollError([`${path}: cannot read the config: ${why}`], ExitCode.usage, [
      'pass the fleet file with --config, or run `graceroll init` to write a starter config',
    ]);
  }
  return parseFleetYaml(text, path, overrides);
}

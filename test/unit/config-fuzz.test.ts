import fc from 'fast-check';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import { GracerollError } from '../../src/lib/exit-codes.js';

/** A valid config touching every section; mutations of it make the malformed ones. */
const VALID = {
  name: 'web',
  transport: { type: 'ssh', user: 'deploy', port: 22, hostKeyPolicy: 'strict', maxSessions: 4 },
  service: { type: 'systemd', unit: 'web.service', signal: 'USR1', killWhom: 'main' },
  loadBalancer: {
    type: 'haproxy',
    socket: '/run/haproxy/admin.sock',
    backend: 'web',
    deregisterStates: ['drain', 'maint'],
  },
  drain: {
    deadline: '30s',
    interval: '200ms',
    probes: [
      { type: 'process-exited' },
      { type: 'connections', port: 8080 },
      { type: 'socket-file', path: '/run/web.sock' },
    ],
    escalation: [{ signal: 'TERM', deadline: '10s' }],
  },
  health: {
    probes: [{ type: 'http', url: 'http://{host}:8080/health', expectStatus: 200 }],
    consecutive: 3,
    interval: '500ms',
  },
  deadlines: { verify: '1m', rollout: '1h' },
  rollout: { batchSize: '25%', canary: 1, maxFailures: 0, settle: '2s' },
  hooks: { beforeSignal: ['echo {node}'] },
  nodes: [
    { name: 'web1', host: '10.0.0.1' },
    { name: 'web2', host: 'web2.example.net', vars: { port: 8080 } },
  ],
};

type Json = unknown;
type Path = (string | number)[];

function paths(value: Json, prefix: Path = []): Path[] {
  const out: Path[] = [prefix];
  if (Array.isArray(value)) value.forEach((v, i) => out.push(...paths(v, [...prefix, i])));
  else if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) out.push(...paths(v, [...prefix, k]));
  return out;
}
const ALL_PATHS = paths(VALID).filter((p) => p.length > 0);

function setAt(root: Json, path: Path, change: (parent: any, key: string | number) => void): Json {
  const copy = structuredClone(root) as any;
  let parent = copy;
  for (const key of path.slice(0, -1)) parent = parent[key];
  change(parent, path.at(-1)!);
  return copy;
}

/** Values that are wrong for almost any field: wrong types, shell metacharacters, malformed durations. */
const junk = fc.oneof(
  fc.constantFrom(
    null,
    true,
    -1,
    1e12,
    0.5,
    '',
    ' ',
    '$(reboot)',
    '`id`',
    'a;b',
    '../../etc',
    '1 day',
    'SIGFOO',
    '%',
    [],
    {},
    [[]],
    { type: 'nope' },
  ),
  fc.string({ maxLength: 12 }).map((s) => `${s};rm -rf /`),
  fc.integer({ min: -100_000, max: -1 }),
  fc.array(fc.integer(), { maxLength: 3 }),
);

const mutation = fc.oneof(
  // Replace a field with junk.
  fc
    .tuple(fc.constantFrom(...ALL_PATHS), junk)
    .map(([path, value]) => setAt(VALID, path, (p, k) => (p[k] = value))),
  // Delete a field (required ones make it invalid; optional ones may not).
  fc
    .constantFrom(...ALL_PATHS)
    .map((path) => setAt(VALID, path, (p, k) => (Array.isArray(p) ? p.splice(Number(k), 1) : delete p[k]))),
  // Add an unknown field next to a known one.
  fc.tuple(fc.constantFrom(...ALL_PATHS), fc.string({ minLength: 1, maxLength: 8 })).map(([path, key]) =>
    setAt(VALID, path, (p) => {
      if (p && typeof p === 'object' && !Array.isArray(p)) p[`x_${key}`] = 1;
      else p.push({ bogus: key });
    }),
  ),
  // Several junk replacements at once.
  fc.array(fc.tuple(fc.constantFrom(...ALL_PATHS), junk), { minLength: 2, maxLength: 5 }).map((changes) =>
    changes.reduce<Json>((cfg, [path, value]) => {
      try {
        return setAt(cfg, path, (p, k) => (p[k] = value));
      } catch {
        return cfg;
      }
    }, VALID),
  ),
);

const LOCATED = /^fuzz\.yaml(:\d+:\d+)?: \S.*$/;

function check(text: string): 'valid' | 'refused' {
  try {
    parseFleetYaml(text, 'fuzz.yaml');
    return 'valid';
  } catch (error) {
    // Anything but our own error is a crash that would print a stack trace.
    expect(error).toBeInstanceOf(GracerollError);
    const { exitCode, problems } = error as GracerollError;
    expect(exitCode).toBe(2);
    expect(problems.length).toBeGreaterThan(0);
    for (const problem of problems) {
      expect(problem).toMatch(LOCATED);
      expect(problem).not.toMatch(/\n\s+at /);
    }
    return 'refused';
  }
}

describe('config fuzzing', () => {
  it('the base config is valid', () => expect(check(stringify(VALID))).toBe('valid'));

  it('10,000+ malformed configs each give exit 2 with located messages, never a crash', () => {
    let refused = 0;
    fc.assert(
      fc.property(mutation, (config) => {
        if (check(stringify(config)) === 'refused') refused += 1;
      }),
      { numRuns: 13_000, seed: 20261121 },
    );
    expect(refused).toBeGreaterThanOrEqual(10_000);
  }, 120_000);

  it('random text (broken YAML included) never crashes the loader', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ maxLength: 200 }),
          fc.string({ maxLength: 80 }).map((s) => `${stringify(VALID)}\n${s}`),
        ),
        (text) => {
          check(text);
        },
      ),
      { numRuns: 3000, seed: 7 },
    );
  });
});

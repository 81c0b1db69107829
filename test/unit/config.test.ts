import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { formatDuration, MAX_TIMER_MS, parseDuration, timerMs } from '../../src/lib/config/duration.js';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import { GracerollError } from '../../src/lib/exit-codes.js';

const minimal = `
service: { type: systemd, unit: web.service }
nodes:
  - name: web1
`;

function problems(yaml: string, overrides = {}): string[] {
  try {
    parseFleetYaml(yaml, 'fleet.yaml', overrides);
  } catch (error) {
    if (error instanceof GracerollError) {
      expect(error.exitCode).toBe(2);
      return [...error.problems];
    }
    throw error;
  }
  return [];
}

describe('durations', () => {
  it.each([
    ['500ms', 500],
    ['2s', 2000],
    ['1.5s', 1500],
    ['1.5m', 90_000],
    ['2m', 120_000],
    ['1m30s', 90_000],
    ['1h30m', 5_400_000],
    ['1h', 3_600_000],
    ['2d', 172_800_000],
    ['0.0004s', 0],
    ['0', 0],
    [0, 0],
  ])('%s is %d ms', (text, ms) => expect(parseDuration(text)).toEqual({ ok: true, ms }));
  it.each(['', '5 minutes', '-1s', '1x', 'ms', '1m 30s', 's1'])('%j is refused', (text) =>
    expect(parseDuration(text).ok).toBe(false),
  );
  it.each([
    [10, 'write 10s (seconds) or 10ms'],
    ['10', 'write 10s (seconds) or 10ms'],
    [1.5, 'write 1.5s'],
    ['1000h', 'longer than the longest timer Node.js can hold (24d20h31m24s)'],
    ['25d', 'longer than the longest timer'],
  ])('%j is refused with a suggestion', (value, message) => {
    const parsed = parseDuration(value);
    expect(parsed.ok).toBe(false);
    expect(!parsed.ok && parsed.message).toContain(message);
  });
  it.each([
    [999.6, '1s'],
    [999.4, '999ms'],
    [90_000, '1m30s'],
    [5_400_000, '1h30m'],
    [MAX_TIMER_MS, '24d20h31m24s'],
  ])('formats %d ms as %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
  it('takes the longest timer Node.js holds, and no more', () => {
    expect(parseDuration('24d20h31m23s')).toMatchObject({ ok: true });
    expect(parseDuration('24d20h31m24s').ok).toBe(false);
  });
  it('gives every timer a whole number of milliseconds within range', () => {
    expect(timerMs(0.4)).toBe(1);
    expect(timerMs(1500.2)).toBe(1501);
    expect(timerMs(1e12)).toBe(MAX_TIMER_MS);
    expect(timerMs(Number.NaN)).toBe(MAX_TIMER_MS);
    expect(timerMs(-5)).toBe(1);
  });
  it('a bare number in a config is refused at its line with the unit suggested', () => {
    const yaml = 'service: {type: systemd, unit: a.service}\ndrain:\n  deadline: 10\nnodes: [{name: a}]\n';
    expect(() => parseFleetYaml(yaml, 'f.yaml')).toThrow(
      /f\.yaml:3:13: drain\.deadline: a duration needs a unit: write 10s \(seconds\) or 10ms/,
    );
  });
});

describe('fleet config', () => {
  it('fills every default', () => {
    const fleet = parseFleetYaml(minimal, 'fleet.yaml');
    expect(fleet.transport).toEqual({ type: 'local' });
    expect(fleet.loadBalancer).toEqual({ type: 'none' });
    expect(fleet.nodes).toEqual([{ name: 'web1', host: 'web1', lbServer: 'web1', vars: {} }]);
    expect(fleet.drain.deadline).toBe(30_000);
    expect(fleet.drain.escalation).toEqual([
      { signal: 'TERM', deadline: 10_000 },
      { signal: 'KILL', deadline: 5000 },
    ]);
    expect(fleet.service).toMatchObject({
      type: 'systemd',
      unit: 'web.service',
      signal: 'TERM',
      killWhom: 'main',
    });
  });

  it('reports every problem with its path and line, all at once', () => {
    const found = problems(`
service: { type: systemd, unit: "web; rm -rf /" }
drain:
  deadline: 2 minutes
nodes:
  - name: web1
  - name: web2
    host: "bad host!"
  - name: web3
    bogus: 1
`);
    expect(found).toEqual([
      expect.stringMatching(/^fleet\.yaml:2:\d+: service\.unit: expected a systemd unit name/),
      expect.stringMatching(/^fleet\.yaml:4:13: drain\.deadline: expected a duration like 500ms/),
      expect.stringMatching(/^fleet\.yaml:8:11: nodes\[1\]\.host: expected a hostname or an IP address/),
      expect.stringMatching(/^fleet\.yaml:9:\d+: nodes\[2\]: unknown field "bogus"/),
    ]);
  });

  it('names a missing required field', () => {
    expect(problems('nodes: [{name: a}]')).toEqual([expect.stringMatching(/service: required/)]);
  });

  it('refuses an unknown adapter type with the choices', () => {
    expect(problems('service: {type: upstart}\nnodes: [{name: a}]')[0]).toMatch(
      /service\.type: expected type to be one of "systemd", "command"/,
    );
  });

  it('reports YAML syntax errors with a line', () => {
    expect(problems('nodes: [\n  name: a')[0]).toMatch(/^fleet\.yaml:\d+:\d+: /);
  });

  it('refuses shell metacharacters in signals, paths and hosts', () => {
    const found = problems(`
service: { type: systemd, unit: web.service, signal: "TERM;reboot" }
drain:
  probes:
    - { type: socket-file, path: "/run/x$(reboot)" }
nodes:
  - { name: "a\`b\`" }
`);
    expect(found.map((p) => p.split(': ')[1])).toEqual([
      'service.signal',
      'drain.probes[0].path',
      'nodes[0].name',
    ]);
  });

  it('finds duplicate node names and unknown --nodes', () => {
    expect(problems(`${minimal}  - name: web1\n`)).toEqual([
      expect.stringMatching(/nodes\[1\]\.name: duplicate node name "web1"/),
    ]);
    expect(problems(minimal, { nodes: ['web9'] })).toEqual([
      expect.stringMatching(/--nodes: no node named "web9"/),
    ]);
  });

  it('applies --nodes and --batch-size over the file', () => {
    const fleet = parseFleetYaml(`${minimal}  - name: web2\n  - name: web3\n`, 'f', {
      nodes: ['web3', 'web1'],
      batchSize: '50%',
    });
    expect(fleet.nodes.map((n) => n.name)).toEqual(['web1', 'web3']);
    expect(fleet.rollout.batchSize).toBe('50%');
    expect(problems(minimal, { batchSize: 'lots' })[0]).toMatch(/rollout\.batchSize/);
  });

  it('refuses a template placeholder that has no value for some node', () => {
    const found = problems(`
service: { type: command, status: "cat /run/{vars.app}.pid", restart: "start {vars.app}" }
health: { probes: [{ type: http, url: "http://{host}:{vars.port}/health" }] }
nodes:
  - { name: a, vars: { app: x, port: 1 } }
  - { name: b, vars: { port: 2 } }
  - { name: c }
`);
    expect(found).toEqual([
      expect.stringMatching(/service\.status: \{vars\.app\} has no value for nodes b, c$/),
      expect.stringMatching(/service\.restart: \{vars\.app\} has no value for nodes b, c$/),
      expect.stringMatching(/health\.probes\[0\]\.url: \{vars\.port\} has no value for node c$/),
    ]);
  });

  it('refuses a YAML alias bomb quickly instead of expanding it', () => {
    const bomb = ['a: &a [x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 9; i++)
      bomb.push(
        `${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9)
          .fill(`*${String.fromCharCode(96 + i)}`)
          .join(', ')}]`,
      );
    const started = performance.now();
    expect(problems(bomb.join('\n'))[0]).toMatch(/^fleet\.yaml: /);
    expect(performance.now() - started).toBeLessThan(5000);
  });

  it('accepts every example under examples/', () => {
    const dir = new URL('../../examples/', import.meta.url);
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      expect(() => parseFleetYaml(readFileSync(new URL(file, dir), 'utf8'), file), file).not.toThrow();
    }
  });
});

describe("placeholders inside the operator's own quotes", () => {
  const withHook = (command: string) =>
    `service: {type: systemd, unit: a.service}\nhooks:\n  beforeSignal:\n    - command: ${JSON.stringify(command)}\nnodes: [{name: a, vars: {x: "$(touch /tmp/pwned)"}}]\n`;

  it.each([
    ['echo "{vars.x}"', '{vars.x} is inside double quotes'],
    ["echo '{vars.x}'", '{vars.x} is inside single quotes'],
    ['echo "a $(printf {node})"', '{node} is inside double quotes'],
    ["echo $'{host}'", '{host} is inside single quotes'],
  ])('%s is refused at load, located', (command, message) => {
    expect(() => parseFleetYaml(withHook(command), 'f.yaml')).toThrow(
      new RegExp(
        `f\\.yaml:4:16: hooks\\.beforeSignal\\[0\\]\\.command: ${message.replace(/[{}.]/g, '\\$&')}.*write \\{`,
      ),
    );
  });

  it.each([
    'echo {vars.x}',
    'echo "literal" {vars.x}',
    "echo 'it'\\''s' {vars.x}",
    'echo \\" {vars.x} \\"',
    'x {node} # "{node}"',
  ])('%s is accepted: every placeholder stands outside quotes', (command) => {
    expect(() => parseFleetYaml(withHook(command), 'f.yaml')).not.toThrow();
  });

  it('applies to every shell template: service, load balancer and probe commands', () => {
    const yaml = [
      'service: {type: command, status: "cat \'/run/{node}.pid\'", restart: "x"}',
      'loadBalancer: {type: command, deregister: "lb out \\"{host}\\"", register: "y", state: "z"}',
      'health: {probes: [{type: command, command: "check {host}"}]}',
      'nodes: [{name: a}]',
    ].join('\n');
    let message = '';
    try {
      parseFleetYaml(yaml, 'f.yaml');
    } catch (error) {
      message = String((error as Error).message);
    }
    expect(message).toMatch(/service\.status: \{node\} is inside single quotes/);
    expect(message).toMatch(/loadBalancer\.deregister: \{host\} is inside double quotes/);
    expect(message).not.toMatch(/health/);
  });
});

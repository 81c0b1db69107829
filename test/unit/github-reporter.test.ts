import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  EVENT_SCHEMA_VERSION,
  type RolloutEvent,
  type RolloutReport,
  type Stamped,
} from '../../src/lib/engine/events.js';
import { runRollout } from '../../src/lib/engine/run-rollout.js';
import { combineRenderers } from '../../src/lib/output/combine.js';
import { createGithubReporter, escapeData, escapeProperty } from '../../src/lib/output/github.js';
import { markdownText } from '../../src/lib/output/github-summary.js';
import { createPlainRenderer } from '../../src/lib/output/plain.js';
import type { Renderer } from '../../src/lib/output/types.js';
import { planRollout } from '../../src/lib/plan/plan-rollout.js';
import { tempDir } from '../helpers/cli.js';
import { FakeFleet, testFleet, type FakeNodeBehaviour } from '../helpers/fake-fleet.js';

const dir = tempDir('graceroll-gha-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const never = () => ({ stop: new AbortController().signal, abort: new AbortController().signal });
const stamp = (event: RolloutEvent): Stamped => ({
  v: EVENT_SCHEMA_VERSION,
  time: new Date().toISOString(),
  ...event,
});

function actionsEnv() {
  const id = Math.random().toString(36).slice(2);
  return {
    GITHUB_ACTIONS: 'true',
    GITHUB_STEP_SUMMARY: join(dir, `summary-${id}.md`),
    GITHUB_OUTPUT: join(dir, `output-${id}.txt`),
  };
}

/** Runs the real engine against a fake fleet, feeding its stamped events to the renderer(s) as the CLI does. */
async function roll(
  behaviours: Record<string, FakeNodeBehaviour> = {},
  overrides: Record<string, unknown> = {},
  nodeCount = 3,
) {
  const env = actionsEnv();
  let out = '';
  const reporter = createGithubReporter(env, (text) => (out += text))!;
  const fake = new FakeFleet(testFleet(overrides, nodeCount), behaviours);
  const parts = { ...fake.parts(), emit: (e: RolloutEvent) => reporter.handle(stamp(e)) };
  const report = await runRollout(planRollout(fake.fleet, parts), parts, never());
  await reporter.finish();
  const read = (path: string) => readFileSync(path, 'utf8');
  return {
    out,
    lines: out.trimEnd().split('\n'),
    report,
    summary: read(env.GITHUB_STEP_SUMMARY),
    output: read(env.GITHUB_OUTPUT),
  };
}

/** Parses $GITHUB_OUTPUT the way the runner does: `name=value` lines and `name<<DELIM` heredocs. */
function parseOutputs(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([\w-]+)<<(.+)$/.exec(lines[i]);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2], i + 1);
      outputs[heredoc[1]] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (lines[i].includes('=')) {
      const [name, ...value] = lines[i].split('=');
      outputs[name] = value.join('=');
    }
  }
  return outputs;
}

/** Group markers balance: never nested, every group closed. */
function groups(lines: string[]): string[] {
  const titles: string[] = [];
  let open = false;
  for (const line of lines) {
    if (line.startsWith('::group::')) {
      expect(open, `nested group at ${line}`).toBe(false);
      titles.push(line.slice('::group::'.length));
      open = true;
    } else if (line === '::endgroup::') {
      expect(open, 'endgroup without group').toBe(true);
      open = false;
    }
  }
  expect(open, 'a group is left open').toBe(false);
  return titles;
}

describe('GitHub Actions reporter', () => {
  it.each([undefined, '', 'false', '1'])('is off unless GITHUB_ACTIONS=true (%j)', (value) => {
    expect(createGithubReporter({ GITHUB_ACTIONS: value }, () => undefined)).toBeUndefined();
  });

  it('a clean rollout: one group per node, no annotations, a summary table and outputs', async () => {
    const { lines, summary, output, report } = await roll();
    expect(groups(lines)).toEqual(['preflight', 'web1', 'web2', 'web3']);
    expect(lines.filter((l) => /^::(error|warning)/.test(l))).toEqual([]);
    expect(summary).toMatch(/^### ✅ graceroll: test — ok in /);
    expect(summary).toContain(
      '| node | outcome | in LB | deregister | lb-drain | signal | drain | restart | verify | register | total |',
    );
    expect(summary).toMatch(/^\| web2 \| done \| yes \| (\d+ms \| ){7}\d+ms \|$/m);
    expect(summary).toContain('**Out of rotation:** none');
    const outputs = parseOutputs(output);
    expect(outputs).toMatchObject({ status: 'ok', 'failed-nodes': '', 'out-of-rotation': '' });
    expect(JSON.parse(outputs.report)).toEqual(JSON.parse(JSON.stringify(report)));
  });

  it('escalation warns, a failed node left out of rotation is an error, the halt is an error', async () => {
    const { lines, summary, output } = await roll({
      web1: { ignoresGracefulSignal: true },
      web2: { unhealthyAfterRestart: true },
    });
    expect(groups(lines)).toEqual(['preflight', 'web1', 'web2']);
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^::warning title=graceroll web1::escalated to SIGTERM; still in flight: pid \d+ still running/,
      ),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^::error title=graceroll web2::web2 failed — OUT OF ROTATION: not healthy/),
    );
    expect(lines).toContainEqual(
      '::error title=graceroll::halted%3A 1 failed node (budget 0)'.replace('%3A', ':'),
    );
    // The node's annotation comes after its group closes, so it is not folded away.
    const web2Error = lines.findIndex((l) => l.startsWith('::error title=graceroll web2'));
    expect(lines[web2Error - 1]).toBe('::endgroup::');

    expect(summary).toMatch(/^### ❌ graceroll: test — failed in /);
    expect(summary).toMatch(/^\| web2 \| \*\*failed\*\* \| \*\*NO\*\* \|/m);
    expect(summary).toMatch(/^\| web3 \| \*\*skipped\*\* \| yes \| - \|/m);
    expect(summary).toContain('**Out of rotation:** web2');
    expect(summary).toMatch(/^- web1: escalated: SIGTERM: pid \d+ still running/m);
    expect(summary).toMatch(
      /^- \*\*web2 is OUT of rotation \(not healthy: .*\); check it, then rerun with --resume/m,
    );
    expect(parseOutputs(output)).toMatchObject({
      status: 'failed',
      'failed-nodes': 'web2',
      'out-of-rotation': 'web2',
    });
  });

  it('a hook before the first step opens the node group; a failed hook warns with its output', async () => {
    const { lines } = await roll(
      { web1: { unhealthyAfterRestart: true } },
      { hooks: { beforeDeregister: ['echo hi'], afterRestart: ['check {node}'] } },
    );
    expect(groups(lines)).toEqual(['preflight', 'web1']);
    expect(lines).toContain(
      '::warning title=graceroll web1::hook afterRestart failed: check web1%0Aunhealthy',
    );
    expect(lines).toContainEqual(
      expect.stringMatching(
        /^::error title=graceroll web1::web1 failed — OUT OF ROTATION: afterRestart hook/,
      ),
    );
  });

  it('nodes of one batch run concurrently, so they share one group per batch', async () => {
    const { lines } = await roll({}, { rollout: { batchSize: 2 } }, 4);
    expect(groups(lines)).toEqual(['preflight', 'batch 1: web1, web2', 'batch 2: web3, web4']);
  });

  it('a canary batch of one gets a node group; later concurrent batches a batch group', async () => {
    const { lines } = await roll({}, { rollout: { batchSize: 2, canary: 1, pauseAfterCanary: '1ms' } }, 3);
    expect(groups(lines)).toEqual(['preflight', 'web1', 'batch 2: web2, web3']);
    expect(lines).toContain(
      '::notice title=graceroll::after batch 1: canary done; waiting 1ms before the next batch',
    );
  });

  it('a refused preflight is an error annotation per problem; nothing is grouped as a node', async () => {
    const { lines, output } = await roll({ web2: { unreachable: true } });
    expect(groups(lines)).toEqual(['preflight']);
    expect(lines.filter((l) => l.startsWith('::error'))).toEqual([
      expect.stringMatching(/^::error title=graceroll::web2/),
    ]);
    expect(parseOutputs(output).status).toBe('preflight-refused');
  });

  it('escapes messages and properties per the workflow-commands spec', () => {
    expect(escapeData('50% done\r\nnext: a,b')).toBe('50%25 done%0D%0Anext: a,b');
    expect(escapeProperty('graceroll a:b,c%\n')).toBe('graceroll a%3Ab%2Cc%25%0A');
    let out = '';
    const reporter = createGithubReporter({ GITHUB_ACTIONS: 'true' }, (t) => (out += t))!;
    reporter.handle(stamp({ kind: 'warning', node: 'web1', message: 'line one\nline two: 100%' }));
    reporter.handle(stamp({ kind: 'warning', message: '::error::injected' }));
    expect(out).toBe(
      '::warning title=graceroll web1::line one%0Aline two: 100%25\n::warning title=graceroll::::error::injected\n',
    );
    expect(out.split('\n').filter((l) => l.startsWith('::error'))).toEqual([]);
  });

  it('escapes Markdown in the summary so a reason cannot break the table', () => {
    expect(markdownText('a|b <script> *x* `y`\nz')).toBe('a\\|b \\<script\\> \\*x\\* \\`y\\` z');
  });

  it('an unwritable summary file is a warning, not a crash', () => {
    let out = '';
    const env = { ...actionsEnv(), GITHUB_STEP_SUMMARY: join(dir, 'no-such-dir', 'summary.md') };
    const reporter = createGithubReporter(env, (t) => (out += t))!;
    const report: RolloutReport = {
      fleet: 'f',
      status: 'ok',
      startedAt: new Date().toISOString(),
      durationMs: 5,
      nodes: [],
      outOfRotation: [],
      problems: [],
    };
    expect(() => reporter.handle(stamp({ kind: 'rollout-end', report }))).not.toThrow();
    expect(out).toMatch(/^::warning title=graceroll::cannot write .*summary\.md: ENOENT/m);
    expect(parseOutputs(readFileSync(env.GITHUB_OUTPUT, 'utf8')).status).toBe('ok');
  });

  it('combined before the plain renderer: the group opens before the node lines and closes before its outcome line', async () => {
    let out = '';
    const write = (t: string) => (out += t);
    const renderer = combineRenderers(createGithubReporter(actionsEnv(), write), createPlainRenderer(write));
    const fake = new FakeFleet(testFleet({}, 1));
    const parts = { ...fake.parts(), emit: (e: RolloutEvent) => renderer.handle(stamp(e)) };
    await runRollout(planRollout(fake.fleet, parts), parts, never());
    await renderer.finish();
    const lines = out.split('\n');
    const open = lines.indexOf('::group::web1');
    expect(lines[open + 1]).toMatch(/ web1 deregister started/);
    const close = lines.indexOf('::endgroup::', open);
    expect(lines[close - 1]).toMatch(/ web1 register ok/);
    expect(lines[close + 1]).toMatch(/ web1 done in /);
  });
});

describe('combineRenderers', () => {
  it('hands each event to every renderer in order, skips undefined, and waits for every finish', async () => {
    const seen: string[] = [];
    let finished = 0;
    const make = (name: string): Renderer => ({
      handle: (e) => seen.push(`${name}:${e.kind}`),
      finish: () => new Promise((resolve) => setTimeout(() => resolve(void finished++), 5)),
    });
    const renderer = combineRenderers(make('a'), undefined, make('b'));
    renderer.handle(stamp({ kind: 'warning', message: 'x' }));
    await renderer.finish();
    expect(seen).toEqual(['a:warning', 'b:warning']);
    expect(finished).toBe(2);
  });
});

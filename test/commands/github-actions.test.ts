import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { jsonLines, runCli, tempDir } from '../helpers/cli.js';
import { sleeperFleet } from '../helpers/sleepers.js';

const dir = tempDir();
const fleets: ReturnType<typeof sleeperFleet>[] = [];
afterEach(() => fleets.splice(0).forEach((f) => f.kill()));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The environment of a step on a GitHub-hosted runner, as far as graceroll reads it. */
function actionsEnv() {
  const id = Math.random().toString(36).slice(2);
  return {
    CI: 'true',
    GITHUB_ACTIONS: 'true',
    GITHUB_STEP_SUMMARY: join(dir, `summary-${id}.md`),
    GITHUB_OUTPUT: join(dir, `output-${id}.txt`),
  };
}

/** `name=value` lines and `name<<DELIM … DELIM` heredocs, as the runner reads $GITHUB_OUTPUT. */
function readOutputs(path: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = readFileSync(path, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([\w-]+)<<(.+)$/.exec(lines[i]);
    if (heredoc) {
      const end = lines.indexOf(heredoc[2], i + 1);
      outputs[heredoc[1]] = lines.slice(i + 1, end).join('\n');
      i = end;
    } else if (lines[i].includes('='))
      outputs[lines[i].split('=')[0]] = lines[i].slice(lines[i].indexOf('=') + 1);
  }
  return outputs;
}

describe('graceroll restart-fleet on GitHub Actions (through the CLI)', () => {
  it('groups each node, annotates escalation and the failed node, writes the job summary and step outputs', async () => {
    const fleet = sleeperFleet(dir, {
      lb: true,
      ignoreTerm: ['a'],
      unhealthyAfterRestart: ['b'],
      drainDeadline: '300ms',
    });
    fleets.push(fleet);
    fleet.start();
    const env = actionsEnv();
    const { code, stdout, stderr } = await runCli(['restart-fleet', '-c', fleet.config], env);
    expect(code, stderr).toBe(1);
    const lines = stdout.split('\n');
    expect(lines.filter((l) => l.startsWith('::group::'))).toEqual([
      '::group::preflight',
      '::group::a',
      '::group::b',
    ]);
    expect(lines.filter((l) => l === '::endgroup::')).toHaveLength(3);
    expect(stdout).toMatch(/^::warning title=graceroll a::escalated to SIGKILL; still in flight: /m);
    expect(stdout).toMatch(/^::error title=graceroll b::b failed — OUT OF ROTATION: not healthy/m);
    // The plain lines are still there, between the markers.
    expect(stdout).toMatch(/^\S+ a restart ok in /m);

    const summary = readFileSync(env.GITHUB_STEP_SUMMARY, 'utf8');
    expect(summary).toMatch(/^### ❌ graceroll: sleepers-\w+ — failed in /m);
    expect(summary).toMatch(
      /^\| node \| outcome \| in LB \| deregister \| lb-drain \| signal \| drain \| escalate \| restart \| verify \| register \| total \|$/m,
    );
    expect(summary).toMatch(/^\| a \| \*\*forced\*\* \| yes \| /m);
    expect(summary).toMatch(/^- \*\*a: drain forced \(escalated\): SIGKILL while /m);
    expect(readFileSync(env.GITHUB_OUTPUT, 'utf8')).toMatch(/^forced-nodes=a$/m);
    expect(summary).toMatch(/^\| b \| \*\*failed\*\* \| \*\*NO\*\* \| /m);
    expect(summary).toMatch(/^\| c \| \*\*skipped\*\* \| yes \| /m);
    expect(summary).toContain('**Out of rotation:** b');

    const outputs = readOutputs(env.GITHUB_OUTPUT);
    expect(outputs).toMatchObject({ status: 'failed', 'failed-nodes': 'b', 'out-of-rotation': 'b' });
    expect(JSON.parse(outputs.report)).toMatchObject({
      fleet: fleet.name,
      status: 'failed',
      outOfRotation: ['b'],
    });
  });

  it('with --json, stdout stays one JSON event per line and the workflow commands go to stderr', async () => {
    const fleet = sleeperFleet(dir, { nodes: ['a', 'b', 'c'] });
    fleets.push(fleet);
    fleet.start();
    const env = actionsEnv();
    const { code, stdout, stderr } = await runCli(
      ['restart-fleet', '-c', fleet.config, '--json', '--batch-size', '2'],
      env,
    );
    expect(code, stderr).toBe(0);
    expect(jsonLines(stdout).at(-1)!.kind).toBe('rollout-end');
    expect(stderr).toContain('::group::batch 1: a, b\n');
    expect(readOutputs(env.GITHUB_OUTPUT)).toMatchObject({
      status: 'ok',
      'failed-nodes': '',
      'out-of-rotation': '',
    });
    expect(readFileSync(env.GITHUB_STEP_SUMMARY, 'utf8')).toContain('| a | done | yes |');
  });

  it('outside Actions there are no workflow commands and no files', async () => {
    const fleet = sleeperFleet(dir, { nodes: ['a'] });
    fleets.push(fleet);
    fleet.start();
    const env = { ...actionsEnv(), GITHUB_ACTIONS: '' };
    const { code, stdout } = await runCli(['restart-fleet', '-c', fleet.config], env);
    expect(code).toBe(0);
    expect(stdout).not.toMatch(/^::/m);
    expect(existsSync(env.GITHUB_STEP_SUMMARY)).toBe(false);
    expect(existsSync(env.GITHUB_OUTPUT)).toBe(false);
  });
});

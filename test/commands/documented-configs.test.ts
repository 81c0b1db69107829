// Every config the docs show is loaded and dry-run through the CLI: a documented option that does not
// load, or plans differently from what the docs say it does, fails here.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { jsonLines, repoRoot, runCli, tempDir, writeConfig } from '../helpers/cli.js';

/** The ```yaml blocks of a Markdown file that are whole configs (they have nodes:). */
function configBlocks(file: string): { name: string; text: string }[] {
  const text = readFileSync(join(repoRoot, file), 'utf8');
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)]
    .map((m, i) => ({ name: `${file} block ${i + 1}`, text: m[1] }))
    .filter((b) => /^nodes:/m.test(b.text));
}

const dir = tempDir('graceroll-docs-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const documented = [
  ...readdirSync(join(repoRoot, 'examples'))
    .filter((f) => f.endsWith('.yaml'))
    .map((f) => ({ name: `examples/${f}`, text: readFileSync(join(repoRoot, 'examples', f), 'utf8') })),
  ...configBlocks('README.md'),
  ...readdirSync(join(repoRoot, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .flatMap((f) => configBlocks(`docs/${f}`)),
];

describe('every documented config', () => {
  it('includes the README example and every file in examples/', () => {
    expect(documented.map((d) => d.name)).toContain('README.md block 1');
    expect(documented.filter((d) => d.name.startsWith('examples/')).length).toBeGreaterThanOrEqual(5);
  });

  it.each(documented)('$name loads and dry-runs every step it configures', async ({ name, text }) => {
    const path = writeConfig(dir, text, `${name.replace(/[^A-Za-z0-9]+/g, '-')}.yaml`);
    const { code, stdout, stderr } = await runCli(['restart-fleet', '-c', path, '--dry-run', '--json']);
    expect(code, stderr).toBe(0);
    const [{ plan }] = jsonLines(stdout);
    const config = parse(text) as Record<string, any>;
    const steps: string[] = plan.nodes[0].steps.map((s: { step: string }) => s.step);
    for (const hook of Object.keys(config.hooks ?? {})) expect(steps).toContain(hook);
    if (config.rollout?.settle && config.rollout.settle !== '0s') expect(steps).toContain('settle');
    if ((config.loadBalancer?.type ?? 'none') !== 'none') expect(steps).toContain('deregister');
    expect(steps).toEqual(expect.arrayContaining(['signal', 'drain', 'restart', 'verify']));
    expect(plan.lock.path).toMatch(/^\//);
    for (const step of plan.nodes[0].steps) for (const action of step.actions) expect(action.on).toBeTruthy();
    const text2 = await runCli(['restart-fleet', '-c', path, '--dry-run']);
    expect(text2.code).toBe(0);
    expect(text2.stdout).toMatch(/^Lock: /m);
  });
});

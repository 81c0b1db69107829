import { readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot, runCli, tempDir } from '../helpers/cli.js';

const dir = tempDir('graceroll-init-cli-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('graceroll init (through the CLI)', () => {
  it('writes a config that restart-fleet --dry-run accepts, naming the shipped schema', async () => {
    const output = join(dir, 'local.yaml');
    const init = await runCli([
      'init',
      '-o',
      output,
      '--transport',
      'local',
      '--lb',
      'none',
      '--service',
      'command',
    ]);
    expect(init.code, init.stderr).toBe(0);
    expect(init.stdout).toBe('');
    expect(init.stderr).toContain(`wrote ${output}`);
    const ref = /\$schema=(\S+)/.exec(readFileSync(output, 'utf8'))![1];
    expect(resolve(dirname(output), ref)).toBe(join(repoRoot, 'schema/fleet.schema.json'));

    const dryRun = await runCli(['restart-fleet', '-c', output, '--dry-run']);
    expect(dryRun.code, dryRun.stderr).toBe(0);
    expect(dryRun.stdout).toContain('Batch 2: web2');
  });

  it('refuses to overwrite without --force (exit 2), replaces with it', async () => {
    const output = join(dir, 'fleet.yaml');
    expect((await runCli(['init', '-o', output])).code).toBe(0);
    const again = await runCli(['init', '-o', output, '--lb', 'command']);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(/already exists; nothing was written/);
    expect(readFileSync(output, 'utf8')).toContain('type: haproxy');
    expect((await runCli(['init', '-o', output, '--lb', 'command', '--force'])).code).toBe(0);
    expect(readFileSync(output, 'utf8')).toContain('lbctl disable {lbServer}');
  });

  it('rejects an unknown choice: exit 2', async () => {
    const { code, stderr } = await runCli(['init', '-o', join(dir, 'x.yaml'), '--lb', 'nginx']);
    expect(code).toBe(2);
    expect(stderr).toMatch(/Expected --lb=nginx to be one of: haproxy, none, command/);
  });
});

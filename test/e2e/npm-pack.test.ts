// End-to-end: the package as users get it. `npm pack` the built tree, install the tarball into an empty
// project from the npm registry, and run the installed `graceroll` bin through npx. Catches a `files`
// list that misses something, a dependency that is only a devDependency, a stale manifest, and a plugin
// that does not load. Needs the CLI built (`npm test` builds first) and the npm registry.
import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from '../helpers/cli.js';

const run = promisify(execFile);
const work = tempDir('graceroll-pack-');
const project = join(work, 'project');
const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
};
let tarball: string;

// Under `npm test`, npm exports its own settings; npm_config_local_prefix would make the nested
// `npm install` treat this repository, not the empty project, as the project.
const env = Object.fromEntries(
  Object.entries(process.env).filter(
    ([k]) => !/^npm_(package_|lifecycle_|command$|config_(local_prefix|prefix|global)$)/.test(k),
  ),
);
const sh = (file: string, args: string[], cwd = project) =>
  run(file, args, { cwd, env: { ...env, NO_COLOR: '1', CI: '' }, maxBuffer: 16 * 1024 * 1024 });

beforeAll(async () => {
  // --ignore-scripts: pack the tree `npm test` just built, without the prepack rebuild.
  await sh('npm', ['pack', '--ignore-scripts', '--pack-destination', work], repoRoot);
  tarball = join(
    work,
    readdirSync(work).find((f) => f.endsWith('.tgz'))!,
  );
  await sh('mkdir', ['-p', project], work);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'uses-graceroll', private: true }));
  await sh('npm', ['install', '--no-audit', '--no-fund', tarball]);
}, 300_000);
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the npm package', () => {
  it('ships bin, dist, the oclif manifest and the schemas, and no sources or tests', async () => {
    const { stdout } = await sh('tar', ['-tzf', tarball], work);
    const files = stdout.split('\n').filter(Boolean);
    for (const file of [
      'package/bin/run.js',
      'package/dist/commands/restart-fleet.js',
      'package/dist/commands/init.js',
      'package/oclif.manifest.json',
      'package/schema/fleet.schema.json',
      'package/schema/events.schema.json',
      'package/package.json',
    ])
      expect(files).toContain(file);
    expect(files.filter((f) => /^package\/(src|test|scripts)\//.test(f))).toEqual([]);
  });

  it('npx graceroll --version', async () => {
    const { stdout } = await sh('npx', ['--no-install', 'graceroll', '--version']);
    expect(stdout).toContain(`${pkg.name}/${pkg.version}`);
  });

  it('npx graceroll restart-fleet --help', async () => {
    const { stdout } = await sh('npx', ['--no-install', 'graceroll', 'restart-fleet', '--help']);
    expect(stdout).toMatch(/^USAGE\n\s+\$ graceroll restart-fleet/m);
    expect(stdout).toMatch(/^EXAMPLES$/m);
  });

  it('npx graceroll init, then restart-fleet --dry-run on what it wrote', async () => {
    await sh('npx', ['--no-install', 'graceroll', 'init', '-o', 'x.yaml']);
    const text = readFileSync(join(project, 'x.yaml'), 'utf8');
    // The reference resolves inside the installed package, so editors find the schema.
    expect(text.split('\n')[0]).toBe(
      '# yaml-language-server: $schema=node_modules/graceroll/schema/fleet.schema.json',
    );
    expect(existsSync(join(project, 'node_modules/graceroll/schema/fleet.schema.json'))).toBe(true);
    const { stdout } = await sh('npx', [
      '--no-install',
      'graceroll',
      'restart-fleet',
      '-c',
      'x.yaml',
      '--dry-run',
    ]);
    expect(stdout).toMatch(/^Plan for web: 3 nodes in 3 batches/m);
  });

  it('shell completion comes with it: npx graceroll autocomplete --help', async () => {
    const { stdout } = await sh('npx', ['--no-install', 'graceroll', 'autocomplete', '--help']);
    expect(stdout).toMatch(/^EXAMPLES$/m);
  });
});

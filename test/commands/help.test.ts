import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, runCli, tempDir } from '../helpers/cli.js';

const manifest = JSON.parse(readFileSync(join(repoRoot, 'oclif.manifest.json'), 'utf8')) as {
  commands: Record<string, unknown>;
};
// Our commands, and the shell-completion command that @oclif/plugin-autocomplete adds.
const commands = [...Object.keys(manifest.commands), 'autocomplete'];

describe('--help (through the CLI)', () => {
  it.each(commands)('%s --help shows usage and examples', async (id) => {
    const { code, stdout } = await runCli([...id.split(':'), '--help']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^USAGE$/m);
    expect(stdout).toMatch(/^EXAMPLES$/m);
  });

  it('-h is --help', async () => {
    const { code, stdout } = await runCli(['restart-fleet', '-h']);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^USAGE$/m);
  });

  it('the shell-completion plugin is installed: `autocomplete bash` prints setup instructions', async () => {
    // It writes its completion cache under the user's cache directory: keep that in a temp dir.
    const home = tempDir('graceroll-home-');
    const { code, stdout } = await runCli(['autocomplete', 'bash'], {
      HOME: join(repoRoot, 'node_modules', '.cache'),
    });
    rmSync(home, { recursive: true, force: true });
    expect(code).toBe(0);
    expect(stdout).toMatch(/graceroll/);
  });
});

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { settings } from '@oclif/core';
import { Plugin } from '@oclif/core/config';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/cli.js';

describe('oclif.manifest.json', () => {
  it('matches the commands and flags of the built CLI (regenerate with `npm run manifest`)', async () => {
    // As bin/run.js does: the compiled commands, whatever NODE_ENV (vitest sets it to test) says.
    settings.enableAutoTranspile = false;
    // The same generation `oclif manifest` does: load the plugin ignoring the committed manifest.
    const plugin = new Plugin({
      root: repoRoot,
      ignoreManifest: true,
      isRoot: true,
      type: 'core',
      errorOnManifestCreate: true,
    });
    await plugin.load();
    const committed = JSON.parse(readFileSync(join(repoRoot, 'oclif.manifest.json'), 'utf8'));
    const fresh = JSON.parse(JSON.stringify(plugin.manifest));
    expect(Object.keys(committed.commands).sort()).toEqual(Object.keys(fresh.commands).sort());
    expect(committed.commands).toEqual(fresh.commands);
  });
});

import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const runJs = join(repoRoot, 'bin/run.js');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliRun {
  child: ReturnType<typeof spawn>;
  done: Promise<CliResult>;
}

/** Starts the built CLI (bin/run.js) as a user would; the test command builds dist/ first. */
export function startCli(args: string[], env: NodeJS.ProcessEnv = {}): CliRun {
  const child = spawn(process.execPath, [runJs, ...args], {
    env: { ...process.env, NO_COLOR: '1', CI: '', GITHUB_ACTIONS: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr })),
  );
  return { child, done };
}

export const runCli = (args: string[], env?: NodeJS.ProcessEnv) => startCli(args, env).done;

export const jsonLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.trim())

    .map((l) => JSON.parse(l) as Record<string, any>);

export function tempDir(prefix = 'graceroll-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function writeConfig(dir: string, yaml: string, name = 'fleet.yaml'): string {
  const path = join(dir, name);
  writeFileSync(path, yaml);
  return path;
}

// End-to-end: the README's demo. A local fleet (4 instances of test/fixtures/service/server.js) behind
// test/fixtures/demo/proxy.js, under load, restarted by the built CLI (`graceroll restart-fleet`):
// no request may fail. The negative control restarts without draining and must drop requests, which
// proves the load would notice. Needs the CLI built (`npm test` builds first).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const RUN_DEMO = path.join(repo, 'test/fixtures/demo/run-demo.js');
const DEMO_TIMEOUT_MS = 120_000;

interface Summary {
  sent: number;
  ok: number;
  failed: number;
  errors: Record<string, number>;
  exitCode: number;
  gracerollExitCode: number | null;
  interrupted: string | null;
  dir: string;
  dirRemoved: boolean;
  pids: { proxy: number | null; instances: { name: string; pid: number }[] };
}

interface DemoRun {
  code: number | null;
  output: string;
  summary: Summary;
  eventsFile: string;
}

let work: string;
beforeAll(() => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'graceroll-demo-test-'));
});
afterAll(() => {
  fs.rmSync(work, { recursive: true, force: true });
});

function runDemo(name: string, args: string[]): Promise<DemoRun> {
  const eventsFile = path.join(work, `${name}.jsonl`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [RUN_DEMO, '--json-out', eventsFile, ...args], {
      cwd: repo,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    child.stderr.on('data', (c: Buffer) => (output += c.toString()));
    const timer = setTimeout(() => child.kill('SIGTERM'), DEMO_TIMEOUT_MS - 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const summaryFile = `${eventsFile}.summary.json`;
      if (!fs.existsSync(summaryFile)) {
        reject(new Error(`run-demo.js wrote no ${summaryFile} (exit ${code}):\n${output}`));
        return;
      }
      const summary = JSON.parse(fs.readFileSync(summaryFile, 'utf8')) as Summary;
      resolve({ code, output, summary, eventsFile });
    });
  });
}

/** Running, and not a zombie (an orphan nobody reaped has exited all the same). */
function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return process.platform !== 'linux';
  }
}

function expectNothingLeft(run: DemoRun): void {
  const { summary } = run;
  expect(summary.dirRemoved, run.output).toBe(true);
  expect(fs.existsSync(summary.dir)).toBe(false);
  expect(summary.pids.proxy, run.output).toBeTypeOf('number');
  const pids = [summary.pids.proxy!, ...summary.pids.instances.map((i) => i.pid)];
  expect(pids.filter(isRunning), `still running after the demo:\n${run.output}`).toEqual([]);
}

describe('npm run demo', () => {
  it(
    'restarts every node under load without failing a request',
    async () => {
      const run = await runDemo('graceful', []);
      const { summary } = run;
      expect(summary.gracerollExitCode, run.output).toBe(0);
      expect(summary.failed, `${JSON.stringify(summary.errors)}\n${run.output}`).toBe(0);
      expect(summary.sent).toBeGreaterThan(200);
      expect(run.code, run.output).toBe(0);
      expect(summary.exitCode).toBe(0);

      const lines = fs
        .readFileSync(run.eventsFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      const events = lines.map((l, i) => {
        try {
          return JSON.parse(l) as {
            kind: string;
            report?: { status: string; nodes: { node: string; outcome: string }[] };
          };
        } catch {
          throw new Error(`events line ${i + 1} is not JSON: ${l}`);
        }
      });
      const last = events.at(-1);
      expect(last?.kind).toBe('rollout-end');
      const nodes = last?.report?.nodes ?? [];
      expect(nodes.map((n) => n.node).sort()).toEqual(['web1', 'web2', 'web3', 'web4']);
      expect(nodes.filter((n) => n.outcome !== 'done')).toEqual([]);

      // Every node really got a new process: its old and new PIDs were both seen.
      for (const name of ['web1', 'web2', 'web3', 'web4']) {
        const seen = new Set(summary.pids.instances.filter((i) => i.name === name).map((i) => i.pid));
        expect(seen.size, `${name}: ${JSON.stringify(summary.pids.instances)}`).toBeGreaterThanOrEqual(2);
      }
      expectNothingLeft(run);
    },
    DEMO_TIMEOUT_MS,
  );

  it(
    'negative control: restarting without draining drops requests',
    async () => {
      const run = await runDemo('no-drain', ['--no-drain']);
      const { summary } = run;
      expect(summary.failed, run.output).toBeGreaterThan(0);
      expect(summary.sent).toBeGreaterThan(200);
      expect(run.code).not.toBe(0);
      expect(summary.exitCode).not.toBe(0);
      expectNothingLeft(run);
    },
    DEMO_TIMEOUT_MS,
  );
});

// Fault drills against a real fleet (test/lab): one fault injected during a roll under load, then
// the requests that failed, each node's state (HAProxy, /health, MainPID), the events and the exit
// code. One lab of 3 nodes, restored between drills. Numbers follow RELIABILITY.md:
//    3. sshd on a node killed mid-step           → reconnects, or fails clearly naming the node
//    4. the LB unreachable at start / mid-roll    → exit 3 nothing touched / roll stops, all reported
//    5. flapping health after restart             → the consecutive-success gate keeps it out
//    6. a changed host key                        → refused naming the node, exit 3, nothing touched
//    7. a second rollout while one runs           → exit 4 (lock)
//    9. a node booting slower than verify         → fails, stays out, named, exit 1
//   10. long-lived streams + keep-alive clients   → every stream completes in full
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startLoad } from '../fixtures/load/load.js';
import { labAvailable, startLab, type Lab } from '../lab/lab.js';
import { shq, sleep, waitFor } from '../lab/proc.js';
import {
  accountForNodes,
  brief,
  labRequired,
  readJournal,
  startRoll,
  stepEvent,
  watchStatuses,
} from '../helpers/drill.js';
import {
  describeRoll,
  labFleetConfig,
  mainPids,
  removeLabFleets,
  restoreLab,
  restoreNode,
  rollFleet,
  stepEnds,
  waitForBuiltCli,
  type LabFleetOptions,
} from '../helpers/lab-fleet.js';
import { tempDir } from '../helpers/cli.js';

const available = labAvailable();
const skipped = available.ok ? '' : ` (skipped: ${available.reason})`;
const TEST_MS = 180_000;

describe.runIf(!available.ok && labRequired)('lab availability (fault drills)', () => {
  it('is available (CI requires it)', () => {
    expect(available.reason).toBe('');
  });
});

describe.skipIf(!available.ok)(`fault drills on a real fleet${skipped}`, () => {
  let lab: Lab;
  const base: LabFleetOptions = { drainDeadline: '20s', deadlines: { verify: '10s' } };

  beforeAll(async () => {
    await waitForBuiltCli();
    lab = await startLab({ nodes: 3 });
    console.log(`[lab-drills] ${lab.prefix}: 3 nodes + LB ready in ${lab.startMs} ms`);
  }, 180_000);

  afterAll(async () => {
    removeLabFleets();
    await lab?.stop();
  }, 120_000);

  beforeEach(async () => {
    await restoreLab(lab);
  }, 60_000);

  const load = () =>
    startLoad({
      url: lab.lb.url,
      connections: 20,
      slowPercent: 10,
      slowMs: [200, 1500],
      maxDurationMs: 150_000,
    });
  async function flowing(l: ReturnType<typeof load>) {
    await waitFor('load to flow', () => l.stats().ok > 100, 10_000);
  }

  it(
    '3. sshd killed on a node mid-drain: graceroll reconnects or fails clearly; no node lost track of',
    async () => {
      const fleet = labFleetConfig(lab, base);
      const l = load();
      await flowing(l);
      const roll = await startRoll(fleet);
      await roll.waitForEvent(stepEvent('step-start', 'node2', 'drain'), 'node2 drain');
      // graceroll holds an SSH connection to node2 (from the host's bridge address) right now …
      const sessions = async () =>
        (await lab.exec('node2', `ss -Htn state established '( sport = :22 )' dst ${lab.hostIp}`)).stdout
          .split('\n')
          .filter(Boolean).length;
      const before = await sessions();
      // … and systemctl kill (--kill-whom=all by default) kills sshd and every session in ssh.service:
      // graceroll's connection to node2 dies mid-step. Debian's ssh.service (Restart=on-failure) brings
      // the listener back by itself.
      const kill = await lab.exec('node2', 'systemctl kill -s KILL ssh.service');
      expect(kill.code, kill.stderr).toBe(0);
      const rightAfter = await sessions();
      await sleep(1500);
      await lab.exec(
        'node2',
        'systemctl is-active -q ssh.service || { systemctl reset-failed ssh.service; systemctl start ssh.service; }',
      );
      const result = await roll.done;
      console.log(
        `[lab-drills] 3 sshd killed: graceroll's SSH sessions on node2 before the kill ${before}, right after ${rightAfter}; node2 events:\n  ${result.events
          .filter((e) => e.node === 'node2' || e.kind === 'warning')
          .map((e) => `${e.kind} ${e.step ?? ''} ${e.ok ?? ''} ${e.detail ?? e.message ?? e.reason ?? ''}`)
          .join('\n  ')}`,
      );
      expect(before).toBeGreaterThanOrEqual(1);
      expect(rightAfter).toBe(0);
      await sleep(500);
      const loadResult = await l.stop();
      const { views, problems } = await accountForNodes(lab, result.report, readJournal(fleet));
      console.log(
        `[lab-drills] 3 sshd killed: ${brief(result)}; load ${JSON.stringify(loadResult)}; ${JSON.stringify(views)}`,
      );

      expect([0, 1], describeRoll(result)).toContain(result.code);
      expect(result.report?.nodes.map((n) => n.node)).toEqual(['node1', 'node2', 'node3']);
      if (result.code === 1) {
        const node2 = result.report?.nodes.find((n) => n.node === 'node2');
        expect(node2?.outcome).toBe('failed');
        // Failing clearly: the reason says what broke (the connection / SSH) on that node.
        expect(`${node2?.reason} ${node2?.action}`).toMatch(/ssh|connect|closed|reset|transport/i);
      }
      expect(problems).toEqual([]);
      expect(loadResult.errors).toEqual({});
      expect(loadResult.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    '4. the LB unreachable at start (wrong runtime API port): exit 3, nothing touched',
    async () => {
      const [ip] = lab.lb.adminTcp.split(':');
      const fleet = labFleetConfig(lab, {
        ...base,
        extra: { loadBalancer: { type: 'haproxy', socket: `tcp:${ip}:9998`, backend: lab.lb.backend } },
      });
      const before = await mainPids(lab);
      const result = await rollFleet(fleet);
      const after = await mainPids(lab);
      console.log(`[lab-drills] 4 LB unreachable at start: ${brief(result)}`);
      expect(result.code, describeRoll(result)).toBe(3);
      expect(result.report?.status).toBe('preflight-refused');
      expect(`${JSON.stringify(result.events.filter((e) => e.kind.startsWith('preflight')))}`).toMatch(
        /9998|load balancer|haproxy|refused|ECONNREFUSED/i,
      );
      expect(result.events.some((e) => e.kind === 'step-start')).toBe(false);
      expect(after).toEqual(before);
      expect(Object.values(await lab.serverStatuses())).toEqual(['UP', 'UP', 'UP']);
    },
    TEST_MS,
  );

  it(
    '4. the LB unreachable mid-roll (admin socket gone after node1): the roll stops, every node reported, exit non-zero',
    async () => {
      const fleet = labFleetConfig(lab, { ...base, lb: 'socket' });
      const socket = lab.lb.adminSocket;
      const hidden = `${socket}.hidden`;
      const l = load();
      await flowing(l);
      const roll = await startRoll(fleet);
      let result;
      try {
        await roll.waitForEvent(stepEvent('step-end', 'node1', 'register'), 'node1 registered');
        // The listening socket stays open in HAProxy; its path is gone, so connect() fails (ENOENT).
        renameSync(socket, hidden);
        result = await roll.done;
      } finally {
        if (existsSync(hidden)) renameSync(hidden, socket);
      }
      await sleep(500);
      const loadResult = await l.stop();
      const { views, problems } = await accountForNodes(lab, result.report, readJournal(fleet));
      console.log(
        `[lab-drills] 4 LB gone mid-roll: ${brief(result)}; load ${JSON.stringify(loadResult)}; ${JSON.stringify(views)}`,
      );

      expect(result.code, describeRoll(result)).not.toBe(0);
      expect(result.code).not.toBe(null);
      expect(result.report?.status).toBe('failed');
      expect(result.report?.nodes.map((n) => n.node)).toEqual(['node1', 'node2', 'node3']);
      expect(result.report?.nodes.find((n) => n.node === 'node1')?.outcome).toBe('done');
      expect(result.report?.nodes.find((n) => n.node === 'node2')?.outcome).toBe('failed');
      expect(result.report?.nodes.find((n) => n.node === 'node3')?.outcome).toBe('skipped');
      expect(result.events.some((e) => e.kind === 'step-start' && e.node === 'node3')).toBe(false);
      console.log(
        `[lab-drills] 4 LB gone mid-roll: node2 ${JSON.stringify(result.report?.nodes.find((n) => n.node === 'node2'))}`,
      );
      expect(result.report?.nodes.find((n) => n.node === 'node2')?.reason).toMatch(
        /admin|socket|load balancer|haproxy|ENOENT/i,
      );
      expect(problems).toEqual([]);
      expect(loadResult.errors).toEqual({});
      expect(loadResult.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    '5. flapping health after restart (a command probe alternating pass/fail): held out of rotation, named, exit 1',
    async () => {
      // The lab service has no flapping mode: a command health probe alternates instead, on nodes
      // where /var/lib/flap-on exists (created for node2 once its old process is signalled).
      const flap =
        'if [ -e /var/lib/flap-on ]; then n=$(cat /var/lib/flap-n 2>/dev/null || echo 0); echo $((n+1)) > /var/lib/flap-n; [ $((n % 2)) -eq 0 ]; fi';
      const fleet = labFleetConfig(lab, {
        ...base,
        deadlines: { verify: '6s' },
        healthConsecutive: 3,
        extra: {
          health: {
            probes: [
              { type: 'http', url: `http://{host}:${lab.servicePort}/health` },
              { type: 'command', command: flap },
            ],
            consecutive: 3,
            interval: '300ms',
          },
        },
      });
      await lab.exec('node2', 'rm -f /var/lib/flap-on /var/lib/flap-n');
      const l = load();
      await flowing(l);
      const watch = watchStatuses(lab);
      const roll = await startRoll(fleet);
      let result;
      try {
        await roll.waitForEvent(stepEvent('step-end', 'node2', 'signal'), 'node2 signalled');
        await lab.exec('node2', 'touch /var/lib/flap-on');
        result = await roll.done;
      } finally {
        await lab.exec('node2', 'rm -f /var/lib/flap-on');
      }
      const seen = await watch.stop();
      const probes = Number((await lab.exec('node2', 'cat /var/lib/flap-n')).stdout.trim());
      await sleep(500);
      const loadResult = await l.stop();
      const { views, problems } = await accountForNodes(lab, result.report, readJournal(fleet));
      console.log(
        `[lab-drills] 5 flapping: ${brief(result)}; ${probes} flapping probes; node2 HAProxy ${JSON.stringify(seen[lab.lb.serverName('node2')])}; load ${JSON.stringify(loadResult)}`,
      );

      expect(result.code, describeRoll(result)).toBe(1);
      expect(probes).toBeGreaterThanOrEqual(6); // it really flapped, many times, within the deadline
      const node2 = result.report?.nodes.find((n) => n.node === 'node2');
      expect(node2).toMatchObject({ outcome: 'failed', inRotation: false });
      expect(result.report?.outOfRotation).toEqual(['node2']);
      expect(stepEnds(result.events, 'verify').find((e) => e.node === 'node2')?.ok).toBe(false);
      expect(stepEnds(result.events, 'register').map((e) => e.node)).toEqual(['node1']);
      // Once taken out, node2 never went back UP while it flapped.
      const node2Seen = seen[lab.lb.serverName('node2')] ?? [];
      const firstOut = node2Seen.findIndex((s) => s !== 'UP');
      expect(firstOut).toBeGreaterThanOrEqual(0);
      expect(node2Seen.slice(firstOut)).not.toContain('UP');
      expect(views.find((v) => v.node === 'node2')?.haproxy).not.toBe('UP');
      expect(problems).toEqual([]);
      expect(loadResult.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    '5. a flapping node and SIGINT twice during its verify: the consecutive-success gate still holds it out',
    async () => {
      // pass, pass, fail, pass, pass, fail …: never 3 in a row, but most single checks pass.
      const flap =
        'if [ -e /var/lib/flap-on ]; then n=$(cat /var/lib/flap-n 2>/dev/null || echo 0); echo $((n+1)) > /var/lib/flap-n; [ $((n % 3)) -ne 2 ]; fi';
      const fleet = labFleetConfig(lab, {
        ...base,
        nodes: ['node2'],
        deadlines: { verify: '30s' },
        extra: {
          health: {
            probes: [
              { type: 'http', url: `http://{host}:${lab.servicePort}/health` },
              { type: 'command', command: flap },
            ],
            consecutive: 3,
            interval: '1s',
          },
        },
      });
      await lab.exec('node2', 'rm -f /var/lib/flap-on /var/lib/flap-n');
      const l = load();
      await flowing(l);
      const roll = await startRoll(fleet);
      let result;
      try {
        await roll.waitForEvent(stepEvent('step-end', 'node2', 'signal'), 'node2 signalled');
        await lab.exec('node2', 'touch /var/lib/flap-on');
        await roll.waitForEvent(stepEvent('step-start', 'node2', 'verify'), 'node2 verify');
        // Several flapping probes, then strike right after a failing one (count ≡ 0 mod 3): the next
        // check graceroll makes passes, though the node has never been healthy 3 times in a row.
        const count = async () =>
          Number((await lab.exec('node2', 'cat /var/lib/flap-n 2>/dev/null || echo 0')).stdout.trim());
        await waitFor(
          '6 flapping probes, the last one failing',
          async () => {
            const n = await count();
            return n >= 6 && n % 3 === 0;
          },
          30_000,
          20,
        );
        roll.signal('SIGINT');
        await sleep(50);
        roll.signal('SIGINT');
        result = await roll.done;
      } finally {
        await lab.exec('node2', 'rm -f /var/lib/flap-on');
      }
      const probes = Number((await lab.exec('node2', 'cat /var/lib/flap-n')).stdout.trim());
      await sleep(500);
      const loadResult = await l.stop();
      const { views, problems } = await accountForNodes(lab, result.report, readJournal(fleet));
      console.log(
        `[lab-drills] 5 flapping + SIGINT x2: ${brief(result)}; ${probes} flapping probes; ${JSON.stringify(views)}; node2 events:\n  ${result.events
          .filter((e) => e.node === 'node2' && e.kind !== 'step-progress')
          .map((e) => `${e.kind} ${e.step ?? ''} ${e.ok ?? ''} ${e.detail ?? e.message ?? e.reason ?? ''}`)
          .join('\n  ')}`,
      );
      expect(result.code, describeRoll(result)).toBe(130);
      expect(probes).toBeGreaterThanOrEqual(6);
      // Never 3 consecutive passes: node2 must not be back in rotation.
      expect(result.report?.outOfRotation).toEqual(['node2']);
      expect(views.find((v) => v.node === 'node2')?.haproxy).not.toBe('UP');
      expect(problems).toEqual([]);
      expect(loadResult.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    '6. a changed host key on one node: refused naming the node, exit 3, nothing touched',
    async () => {
      const dir = tempDir('graceroll-drill-hostkey-');
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'other')]);
      const otherKey = readFileSync(join(dir, 'other.pub'), 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
      const node2 = lab.nodes.find((n) => n.name === 'node2')!;
      const lines = readFileSync(lab.ssh.knownHostsPath, 'utf8').split('\n');
      let replaced = 0;
      const changed = lines.map((line) => {
        const [hosts] = line.split(/\s+/);
        const names = (hosts ?? '').split(',').map((h) => h.replace(/^\[(.*)\](:\d+)?$/, '$1'));
        if (!names.includes(node2.ip)) return line;
        replaced++;
        return `${hosts} ${otherKey}`;
      });
      expect(replaced).toBeGreaterThan(0);
      const knownHosts = join(dir, 'known_hosts');
      writeFileSync(knownHosts, changed.join('\n'));
      const fleet = labFleetConfig(lab, base);
      const transport = fleet.config.transport as Record<string, unknown>;
      const fleet2 = labFleetConfig(lab, { ...base, extra: { transport: { ...transport, knownHosts } } });

      const before = await mainPids(lab);
      const result = await rollFleet(fleet2);
      const after = await mainPids(lab);
      const preflight2 = result.events.find((e) => e.kind === 'preflight' && e.node === 'node2');
      console.log(
        `[lab-drills] 6 host key changed: ${brief(result)}; node2 preflight ${JSON.stringify(preflight2)}`,
      );
      expect(result.code, describeRoll(result)).toBe(3);
      expect(preflight2?.ok).toBe(false);
      expect(preflight2?.detail).toMatch(/host key/i);
      expect(preflight2?.detail).toMatch(/node2|10\.213\./);
      expect(result.events.filter((e) => e.kind === 'preflight' && !e.ok).map((e) => e.node)).toEqual([
        'node2',
      ]);
      expect(result.events.some((e) => e.kind === 'step-start')).toBe(false);
      expect(after).toEqual(before);
      expect(Object.values(await lab.serverStatuses())).toEqual(['UP', 'UP', 'UP']);
    },
    TEST_MS,
  );

  it(
    '7. a second rollout while one runs: exit 4, nothing touched; the first one finishes',
    async () => {
      const fleet = labFleetConfig(lab, base);
      const l = load();
      await flowing(l);
      const first = await startRoll(fleet);
      await first.waitForEvent(stepEvent('step-start', 'node1', 'deregister'), 'first roll under way');
      const second = await rollFleet(fleet);
      const firstResult = await first.done;
      await sleep(500);
      const loadResult = await l.stop();
      console.log(`[lab-drills] 7 second rollout: second ${brief(second)}; first ${brief(firstResult)}`);
      expect(second.code, describeRoll(second)).toBe(4);
      expect(`${second.stderr}${second.stdout}`).toMatch(/lock/i);
      expect(second.events.some((e) => e.kind === 'step-start')).toBe(false);
      expect(firstResult.code, describeRoll(firstResult)).toBe(0);
      expect(firstResult.report?.nodes.every((n) => n.outcome === 'done')).toBe(true);
      expect(loadResult.failed).toBe(0);
    },
    TEST_MS,
  );

  it(
    '9. a node that boots slower than its verify deadline: fails, stays out, named, exit 1',
    async () => {
      // The new process starts (systemd active, a new MainPID) but listens only 8 s later.
      const unit = await lab.exec('node2', 'systemctl cat web.service');
      const execStart = unit.stdout.split('\n').find((l) => l.startsWith('ExecStart='))!;
      expect(execStart).toBeTruthy();
      const dropIn = `[Service]\nExecStart=\nExecStart=/bin/sh -c 'sleep 8; exec "$$0" "$$@"' ${execStart.slice('ExecStart='.length)}\n`;
      const install = await lab.exec(
        'node2',
        `mkdir -p /run/systemd/system/web.service.d && printf '%s' ${shq(dropIn)} > /run/systemd/system/web.service.d/slow.conf && systemctl daemon-reload`,
      );
      expect(install.code, install.stderr).toBe(0);
      try {
        const fleet = labFleetConfig(lab, { ...base, deadlines: { verify: '3s' } });
        const before = await mainPids(lab);
        const l = load();
        await flowing(l);
        const result = await rollFleet(fleet);
        await sleep(500);
        const loadResult = await l.stop();
        const after = await mainPids(lab);
        const { views, problems } = await accountForNodes(lab, result.report, readJournal(fleet));
        console.log(
          `[lab-drills] 9 slow boot: ${brief(result)}; load ${JSON.stringify(loadResult)}; ${JSON.stringify(views)}`,
        );
        expect(result.code, describeRoll(result)).toBe(1);
        expect(result.report?.outOfRotation).toEqual(['node2']);
        expect(result.report?.nodes.map((n) => [n.node, n.outcome])).toEqual([
          ['node1', 'done'],
          ['node2', 'failed'],
          ['node3', 'skipped'],
        ]);
        const verify2 = stepEnds(result.events, 'verify').find((e) => e.node === 'node2');
        expect(verify2?.ok).toBe(false);
        expect(verify2?.durationMs).toBeLessThan(6000);
        expect(after.node2).not.toBe(before.node2);
        expect(after.node3).toBe(before.node3);
        expect(problems).toEqual([]);
        expect(loadResult.failed).toBe(0);
      } finally {
        await lab.exec(
          'node2',
          'rm -f /run/systemd/system/web.service.d/slow.conf && systemctl daemon-reload',
        );
        await restoreNode(lab, 'node2');
      }
    },
    TEST_MS,
  );

  it(
    '9. a start slower than the restart deadline (ExecStartPre=/bin/sleep 8, deadlines.restart 3s): fails, stays out, named, exit 1',
    async () => {
      // `systemctl restart` waits for the start job, ExecStartPre included: this slowness counts
      // against deadlines.restart, not verify.
      const install = await lab.exec(
        'node2',
        `mkdir -p /run/systemd/system/web.service.d && printf '[Service]\\nExecStartPre=/bin/sleep 8\\n' > /run/systemd/system/web.service.d/slow.conf && systemctl daemon-reload`,
      );
      expect(install.code, install.stderr).toBe(0);
      try {
        const fleet = labFleetConfig(lab, { ...base, deadlines: { restart: '3s', verify: '3s' } });
        const before = await mainPids(lab);
        const l = load();
        await flowing(l);
        const result = await rollFleet(fleet);
        await sleep(500);
        const loadResult = await l.stop();
        const { views, problems } = await accountForNodes(lab, result.report, readJournal(fleet));
        const restart2 = stepEnds(result.events, 'restart').find((e) => e.node === 'node2');
        console.log(
          `[lab-drills] 9 slow ExecStartPre: ${brief(result)}; node2 restart ${JSON.stringify(restart2)}; load ${JSON.stringify(loadResult)}; ${JSON.stringify(views)}`,
        );
        expect(result.code, describeRoll(result)).toBe(1);
        expect(result.report?.outOfRotation).toEqual(['node2']);
        expect(result.report?.nodes.map((n) => [n.node, n.outcome])).toEqual([
          ['node1', 'done'],
          ['node2', 'failed'],
          ['node3', 'skipped'],
        ]);
        expect(restart2?.ok).toBe(false);
        expect(restart2?.durationMs).toBeLessThan(6000);
        expect(stepEnds(result.events, 'register').map((e) => e.node)).toEqual(['node1']);
        expect((await mainPids(lab, ['node3'])).node3).toBe(before.node3);
        expect(problems).toEqual([]);
        expect(loadResult.failed).toBe(0);
      } finally {
        await lab.exec(
          'node2',
          'rm -f /run/systemd/system/web.service.d/slow.conf && systemctl daemon-reload',
        );
        await restoreNode(lab, 'node2');
      }
    },
    TEST_MS,
  );

  it(
    '10. long-lived streams (5 s) and keep-alive clients through the LB: none cut off while nodes drain',
    async () => {
      const fleet = labFleetConfig(lab, { ...base, drainDeadline: '30s' });
      const STREAM_MS = 5000;
      const streams: { status: number; lines: number; spanMs: number; complete: boolean; error?: string }[] =
        [];
      let stopping = false;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
      const oneStream = () =>
        new Promise<void>((resolve) => {
          const started = Date.now();
          const req = http.get(
            `${lab.lb.url.replace(/\/$/, '')}/stream?ms=${STREAM_MS}`,
            { agent },
            (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (d: string) => (body += d));
              res.on('error', (err: NodeJS.ErrnoException) => {
                streams.push({
                  status: res.statusCode ?? 0,
                  lines: 0,
                  spanMs: 0,
                  complete: false,
                  error: err.code ?? err.message,
                });
                resolve();
              });
              res.on('end', () => {
                const lines = body.split('\n').filter(Boolean);
                const times = lines.map((l) => Number(l.split(' ').at(-1)));
                streams.push({
                  status: res.statusCode ?? 0,
                  lines: lines.length,
                  spanMs: (times.at(-1) ?? 0) - (times[0] ?? 0),
                  complete: res.complete,
                });
                resolve();
              });
            },
          );
          req.on('error', (err: NodeJS.ErrnoException) => {
            streams.push({
              status: 0,
              lines: 0,
              spanMs: Date.now() - started,
              complete: false,
              error: err.code ?? err.message,
            });
            resolve();
          });
        });
      const streamers = Array.from({ length: 6 }, async (_, i) => {
        await sleep(i * 800);
        while (!stopping) await oneStream();
      });
      const l = load();
      await flowing(l);
      await sleep(2000); // streams in flight on every node when the roll starts
      const result = await rollFleet(fleet);
      stopping = true;
      await Promise.all(streamers);
      agent.destroy();
      const loadResult = await l.stop();
      const cut = streams.filter((s) => s.status !== 200 || !s.complete || s.spanMs < STREAM_MS - 200);
      console.log(
        `[lab-drills] 10 long-lived: ${brief(result)}; ${streams.length} streams, ${cut.length} cut ${JSON.stringify(cut)}; lb-drains ${JSON.stringify(stepEnds(result.events, 'lb-drain').map((e) => [e.node, Math.round(e.durationMs)]))}, drains ${JSON.stringify(stepEnds(result.events, 'drain').map((e) => [e.node, Math.round(e.durationMs)]))}; load ${JSON.stringify(loadResult)}`,
      );
      expect(result.code, describeRoll(result)).toBe(0);
      expect(streams.length).toBeGreaterThanOrEqual(12);
      expect(cut).toEqual([]);
      // The drains waited for the streams: at least one took a good part of a stream's length.
      expect(Math.max(...stepEnds(result.events, 'lb-drain').map((e) => e.durationMs))).toBeGreaterThan(1000);
      expect(loadResult.errors).toEqual({});
      expect(loadResult.failed).toBe(0);
    },
    TEST_MS,
  );
});

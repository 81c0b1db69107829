import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCli, writeConfig, jsonLines } from '../helpers/cli.js';
import { SleeperFleet } from '../helpers/sleeper-fleet.js';

let fleet: SleeperFleet;
afterEach(() => fleet?.cleanup());

/** Every payload tries to create the canary file; its absence proves nothing ran. */
const payloads = (canary: string) => [
  `$(touch ${canary})`,
  `\`touch ${canary}\``,
  `x; touch ${canary}`,
  `x && touch ${canary}`,
  `x | touch ${canary}`,
  `x\ntouch ${canary}`,
];

describe('injection drill: shell metacharacters in config values', () => {
  it.each([
    [
      'a systemd unit name',
      (p: string) =>
        `service: { type: systemd, unit: ${JSON.stringify(p)} }\nnodes: [{ name: a, host: 127.0.0.1 }]`,
    ],
    [
      'a signal',
      (p: string) =>
        `service: { type: systemd, unit: web.service, signal: ${JSON.stringify(p)} }\nnodes: [{ name: a, host: 127.0.0.1 }]`,
    ],
    [
      'a socket-file path',
      (p: string) =>
        `service: { type: systemd, unit: web.service }\ndrain: { probes: [{ type: socket-file, path: ${JSON.stringify(`/run/${p}`)} }] }\nnodes: [{ name: a, host: 127.0.0.1 }]`,
    ],
    [
      'a host name',
      (p: string) =>
        `service: { type: systemd, unit: web.service }\nnodes: [{ name: a, host: ${JSON.stringify(p)} }]`,
    ],
    [
      'a node name',
      (p: string) => `service: { type: systemd, unit: web.service }\nnodes: [{ name: ${JSON.stringify(p)} }]`,
    ],
    [
      'an HAProxy backend',
      (p: string) =>
        `service: { type: systemd, unit: web.service }\nloadBalancer: { type: haproxy, socket: /run/h.sock, backend: ${JSON.stringify(p)} }\nnodes: [{ name: a }]`,
    ],
  ])('%s carrying shell syntax is refused by validation (exit 2) and never executed', async (_what, make) => {
    fleet = new SleeperFleet();
    const canary = join(fleet.dir, 'canary');
    for (const payload of payloads(canary)) {
      const config = writeConfig(fleet.dir, make(payload), 'inject.yaml');
      const { code, stderr } = await runCli(['restart-fleet', '-c', config, '--yes']);
      expect(code, payload).toBe(2);
      expect(stderr).toMatch(/inject\.yaml:\d+:\d+: /);
      expect(existsSync(canary), payload).toBe(false);
    }
  });

  it("values templated into the operator's commands are quoted: they arrive as text, not as shell", async () => {
    fleet = new SleeperFleet(['a']);
    fleet.start();
    const canary = join(fleet.dir, 'canary');
    const seen = join(fleet.dir, 'seen');
    // The hook records the value it was given; the value tries to run a command.
    const config = fleet.config(`hooks: { afterRestart: ["printf '%s' {vars.note} > ${seen}"] }`);
    const note = JSON.stringify(`$(touch ${canary}); \`touch ${canary}\``);
    writeConfig(
      fleet.dir,
      readFileSync(config, 'utf8').replace('{ name: a }', `{ name: a, vars: { note: ${note} } }`),
      basename(config),
    );
    const { code, stdout, stderr } = await runCli(['restart-fleet', '-c', config, '--json']);
    expect(code, stdout + stderr).toBe(0);
    expect(jsonLines(stdout).at(-1)!.report.status).toBe('ok');
    expect(readFileSync(seen, 'utf8')).toBe(`$(touch ${canary}); \`touch ${canary}\``);
    expect(existsSync(canary)).toBe(false);
  });
});

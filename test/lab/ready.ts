// Readiness (startLab resolves only when the fleet is really usable) and the diagnostics a failed
// start throws with.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { leaderPid } from './nspawn.js';
import { run, shq, waitFor } from './proc.js';
import type { Lab, Machine } from './types.js';

function httpStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

function sshBanner(ip: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(22, ip);
    c.setTimeout(1000, () => c.destroy());
    c.once('data', (d) => {
      c.destroy();
      resolve(d.toString().startsWith('SSH-'));
    });
    c.on('error', () => resolve(false));
    c.on('close', () => resolve(false));
  });
}

/** Ready = ssh logs in with the lab key on every machine, every /health is 200, HAProxy sees all UP. */
export async function waitReady(lab: Lab, machines: Machine[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  await Promise.all([
    ...machines.map(async (m) => {
      await waitFor(`sshd on ${m.name}`, () => sshBanner(m.ip), left(), 50);
      // A real login with the lab key and strict host key checking, as graceroll will do it.
      await waitFor(
        `ssh login to ${m.name}`,
        async () => {
          const r = await run('ssh', ['-F', lab.ssh.configPath, m.ip, 'true'], { timeoutMs: 10_000 });
          if (r.code !== 0) throw new Error(r.stderr.trim());
          return true;
        },
        left(),
        200,
      );
    }),
    ...lab.nodes.map((n) =>
      waitFor(`${n.name} /health`, async () => (await httpStatus(`${n.url}/health`)) === 200, left(), 50),
    ),
  ]);
  await waitFor(
    'HAProxy to see every server UP',
    async () => {
      const statuses = await lab.serverStatuses();
      const notUp = lab.nodes.filter((n) => statuses[n.name] !== 'UP');
      if (notUp.length)
        throw new Error(`not UP: ${notUp.map((n) => `${n.name}=${statuses[n.name]}`).join(' ')}`);
      return true;
    },
    left(),
    100,
  );
}

export async function diagnose(lab: Lab, machines: Machine[]): Promise<string> {
  const out: string[] = [];
  for (const m of machines) {
    const consoleLog = path.join(m.dir, 'console.log');
    const tail = fs.existsSync(consoleLog) ? fs.readFileSync(consoleLog, 'utf8').split('\n').slice(-15) : [];
    out.push(`== ${m.name} (${m.ip}) nspawn pid ${m.nspawnPid ?? '-'}`, ...tail);
    if (m.nspawnPid && leaderPid(m.nspawnPid)) {
      const unit = m.name === 'lb' ? 'haproxy.service' : 'web.service';
      const r = await lab.exec(
        m.name,
        `systemctl --failed --no-legend; systemctl status --no-pager -n 20 ssh.service ${shq(unit)}`,
        { timeoutMs: 10_000 },
      );
      out.push(r.stdout, r.stderr);
    }
  }
  return out.join('\n');
}

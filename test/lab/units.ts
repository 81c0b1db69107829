// Files the lab renders for its machines: the service unit and the ssh client config.
import fs from 'node:fs';
import type { LabOptions, LabSsh, ServiceMode } from './types.js';

export const NODE_STATE_DIR = '/var/lib/svc';

/** Quotes one ExecStart= argument for systemd. */
function sdArg(arg: string): string {
  const escaped = arg.replace(/%/g, '%%').replace(/\$/g, '$$$$');
  return /^[\w@%+=:,./-]+$/.test(arg) ? escaped : `"${escaped.replace(/(["\\])/g, '\\$1')}"`;
}

export function webUnit(
  script: string,
  name: string,
  mode: ServiceMode,
  port: number,
  options: LabOptions,
): string {
  const argv = [fs.realpathSync(process.execPath), script, '--port', String(port), '--mode', mode];
  argv.push('--name', name, '--state-dir', NODE_STATE_DIR);
  // In the state dir, not /run/svc: RuntimeDirectory is wiped on stop, and the host sees the state dir.
  if (mode === 'queue') argv.push('--socket', `${NODE_STATE_DIR}/queue.sock`);
  return `[Unit]
Description=graceroll lab service (${mode})
After=network.target

[Service]
Type=simple
ExecStart=${argv.map(sdArg).join(' ')}
Restart=no
# SIGTERM (stop/restart) goes to the service only: it drains and exits by itself; whatever is left
# gets SIGKILL after TimeoutStopSec. The graceful signal is the tool's: systemctl kill -s USR1.
KillMode=mixed
TimeoutStopSec=${options.serviceStopTimeoutSec ?? 30}

[Install]
WantedBy=lab.target
`;
}

export function sshConfig(ips: string[], ssh: LabSsh): string {
  return `Host ${ips.join(' ')}
  User root
  IdentityFile ${ssh.privateKeyPath}
  IdentitiesOnly yes
  UserKnownHostsFile ${ssh.knownHostsPath}
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 5
  LogLevel ERROR
`;
}

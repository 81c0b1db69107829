// The root filesystem of a node: an overlay whose lower layer is the host's own `/` (no
// debootstrap, boots in well under a second) and whose upper layer gets only what makes the node
// itself: identity (machine-id, hostname, ssh host key), sshd for the lab's key, and the units it
// boots. Everything lives on the lab's tmpfs, so unmounting that tmpfs removes every trace.
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runOk } from './proc.js';

export interface NodeRootSpec {
  hostname: string;
  /** Node directory on the lab tmpfs: gets upper/, work/, root/. */
  dir: string;
  /** Contents of authorized_keys for root (the lab's public key). */
  authorizedKey: string;
  /** Unit files to write to /etc/systemd/system (name → content). */
  units: Record<string, string>;
  /** Units lab.target pulls in at boot (beyond ssh.service). */
  wants: string[];
  /** Extra files, absolute path inside the node → content. */
  files?: Record<string, string>;
  /** /etc/hosts lines for the other lab machines. */
  hosts: string;
}

// Host units that must never start in a node (they are pulled in by targets a node reaches, or by
// network-online.target, which haproxy.service wants). The host's enabled units are masked too.
const ALWAYS_MASKED = [
  'console-getty.service',
  'getty@tty1.service',
  'networking.service',
  'ifupdown-wait-online.service',
  'systemd-networkd.service',
  'systemd-networkd-wait-online.service',
  'NetworkManager.service',
  'NetworkManager-wait-online.service',
  'systemd-resolved.service',
  'systemd-timesyncd.service',
];
// Only what these host targets want could be pulled into a node booting lab.target.
const HOST_WANTS_DIRS = ['sysinit', 'sockets', 'timers', 'paths', 'network-online', 'basic'].map(
  (t) => `/etc/systemd/system/${t}.target.wants`,
);

const SSHD_CONFIG = `# graceroll lab node: root logs in with the lab key only.
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/graceroll-lab-authorized-keys
PasswordAuthentication no
KbdInteractiveAuthentication no
# No PAM: no logind session per command, which keeps many short ssh commands fast.
UsePAM no
StrictModes no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 200
MaxSessions 100
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`;

// The node boots this instead of multi-user.target: nothing the host has enabled comes along.
const LAB_TARGET = `[Unit]
Description=graceroll lab node
Requires=basic.target
After=basic.target
AllowIsolate=yes
`;

/** Writes the node's upper layer. Returns the node's public ssh host key line ("ssh-ed25519 AAAA…"). */
export async function prepareUpper(spec: NodeRootSpec): Promise<string> {
  const upper = path.join(spec.dir, 'upper');
  const etc = (p: string) => path.join(upper, 'etc', p);
  for (const d of ['upper', 'work', 'root']) fs.mkdirSync(path.join(spec.dir, d), { recursive: true });
  fs.mkdirSync(etc('systemd/system/lab.target.wants'), { recursive: true });
  fs.mkdirSync(etc('ssh'), { recursive: true });
  fs.mkdirSync(etc('systemd/journald.conf.d'), { recursive: true });

  fs.writeFileSync(etc('machine-id'), `${randomUUID().replace(/-/g, '')}\n`);
  fs.writeFileSync(etc('hostname'), `${spec.hostname}\n`);
  fs.writeFileSync(etc('hosts'), `127.0.0.1 localhost\n127.0.1.1 ${spec.hostname}\n${spec.hosts}`);
  fs.writeFileSync(etc('fstab'), '# graceroll lab node: nothing to mount\n');
  // Journal in the node's /run only: bounded memory, nothing written next to the host's journal.
  fs.writeFileSync(
    etc('systemd/journald.conf.d/graceroll-lab.conf'),
    '[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n',
  );

  const unitDir = etc('systemd/system');
  const masked = new Set(ALWAYS_MASKED);
  for (const dir of HOST_WANTS_DIRS)
    if (fs.existsSync(dir)) fs.readdirSync(dir).forEach((u) => masked.add(u));
  for (const name of Object.keys(spec.units)) masked.delete(name);
  for (const unit of masked) fs.symlinkSync('/dev/null', path.join(unitDir, unit));

  fs.writeFileSync(path.join(unitDir, 'lab.target'), LAB_TARGET);
  fs.symlinkSync('lab.target', path.join(unitDir, 'default.target'));
  for (const [name, content] of Object.entries(spec.units))
    fs.writeFileSync(path.join(unitDir, name), content);
  for (const name of ['ssh.service', ...spec.wants]) {
    const target = spec.units[name] ? `../${name}` : `/lib/systemd/system/${name}`;
    fs.symlinkSync(target, path.join(unitDir, 'lab.target.wants', name));
  }

  fs.writeFileSync(etc('ssh/sshd_config'), SSHD_CONFIG);
  fs.writeFileSync(etc('ssh/graceroll-lab-authorized-keys'), spec.authorizedKey, { mode: 0o600 });
  const hostKey = etc('ssh/ssh_host_ed25519_key');
  await runOk('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', spec.hostname, '-f', hostKey]);

  for (const [file, content] of Object.entries(spec.files ?? {})) {
    fs.mkdirSync(path.dirname(path.join(upper, file)), { recursive: true });
    fs.writeFileSync(path.join(upper, file), content);
  }
  const [type, key] = fs.readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ');
  return `${type} ${key}`;
}

/** Mounts the overlay; returns the name of the lock nspawn takes for it (it leaves that file behind). */
export async function mountRoot(dir: string): Promise<string> {
  const root = path.join(dir, 'root');
  const opts = `lowerdir=/,upperdir=${path.join(dir, 'upper')},workdir=${path.join(dir, 'work')}`;
  await runOk('mount', ['-t', 'overlay', 'overlay', '-o', opts, root]);
  const st = fs.statSync(root);
  return `inode-${st.dev}:${st.ino}`;
}

// Scale and start-up: preflight of 200 nodes over SSH, the --dry-run plan of 10,000 nodes, and CLI
// start-up, each beside a baseline measured in the same invocation.
//
//   npx tsx bench/scale.ts [--nodes 200] [--sshd 20] [--plan-nodes 10000] [--runs 3] [--no-build]
//                          [--only startup,plan,preflight] [--cpu-prof DIR] [--bin PATH (another build)]
//
// Preflight is measured with a real `restart-fleet` that preflight refuses: the last node's health probe
// fails, so graceroll checks all nodes (connect, service status, health) and exits 3 having touched
// nothing. The nodes are plain sshd instances on loopback (--sshd of them; every node is its own address,
// 127.0.1.1 …, with its own SSH connection). BENCHMARKS.md explains the choice.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import {
  args,
  build,
  machine,
  mb,
  median,
  ratio,
  repoRoot,
  resultsDir,
  runJs,
  seconds,
  sleep,
  timed,
  verdict,
  waitForQuiet,
  type Timed,
} from './lib.js';

const opts = args({
  nodes: '200',
  sshd: '20', // at most 16 nodes per sshd (ListenAddress limit)
  'plan-nodes': '10000',
  runs: '3',
  only: 'startup,plan,preflight',
  build: true,
  'quiet-wait': '900',
  'cpu-prof': '',
  // Another build's bin/run.js to time instead of this one (before/after comparisons of a fix).
  bin: '',
});
const bin = opts.bin ? String(opts.bin) : runJs;
/** node and its flags for graceroll runs (`--cpu-prof DIR`: each graceroll run writes a V8 CPU profile). */
const graceroll = (...argv: string[]): [string, string[]] => [
  process.execPath,
  [...(opts['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', String(opts['cpu-prof'])] : []), bin, ...argv],
];
const runs = Number(opts.runs);
const only = new Set(String(opts.only).split(','));
const log = (line: string) => process.stderr.write(`[bench] ${line}\n`);
const TARGETS = { startupMs: 300, planMs: 2000, planMb: 200, preflightMs: 5000 };
const lines: string[] = [];
const out = (line = '') => {
  lines.push(line);
  process.stdout.write(`${line}\n`);
};
const results: Record<string, unknown> = {};
const work = mkdtempSync(join(tmpdir(), 'graceroll-bench-'));

/** Runs `runs` times; median wall time and the largest peak RSS. */
async function repeat(
  label: string,
  cmd: string,
  argv: string[],
  options: { expectCode?: number; discardStdout?: boolean } = {},
): Promise<{ ms: number; maxRssKb: number; all: Timed[] }> {
  const all: Timed[] = [];
  for (let i = 0; i < runs; i++) {
    const r = await timed(cmd, argv, { measureMemory: true, discardStdout: options.discardStdout });
    if (r.code !== (options.expectCode ?? 0))
      throw new Error(
        `${label}: exit ${r.code} (expected ${options.expectCode ?? 0})\n${r.stderr.slice(-3000)}`,
      );
    all.push(r);
  }
  return { ms: median(all.map((r) => r.ms)), maxRssKb: Math.max(...all.map((r) => r.maxRssKb ?? 0)), all };
}

// ---------------------------------------------------------------------------------------------- start-up

async function startup(): Promise<void> {
  // A real restart-fleet as small as it gets: one node on this machine (local transport), whose health
  // probe fails, so it loads the config, takes the lock, runs preflight and refuses (exit 3).
  const dir = join(work, 'startup');
  mkdirSync(dir, { recursive: true });
  const tiny = join(dir, 'fleet.yaml');
  writeFileSync(
    tiny,
    stringify({
      name: 'tiny',
      service: { type: 'command', status: 'echo 1', restart: 'true' },
      health: { probes: [{ type: 'command', command: 'false' }] },
      lock: { path: join(dir, 'rollout.lock') },
      nodes: [{ name: 'one' }],
    }),
  );
  const commands: [string, string, number][] = [
    ['node -e 0 (baseline: bare Node.js)', `${process.execPath} -e 0`, 0],
    ['graceroll --version', `${process.execPath} ${bin} --version`, 0],
    ['graceroll restart-fleet --help', `${process.execPath} ${bin} restart-fleet --help`, 0],
    [
      'graceroll restart-fleet, 1 local node, refused by preflight (to its first action and exit)',
      `${process.execPath} ${bin} restart-fleet -c ${tiny} --yes --json`,
      3,
    ],
  ];
  const medians: number[] = [];
  const hyperfine = spawnSync('hyperfine', ['--version']).status === 0;
  if (hyperfine) {
    const exportPath = join(work, 'hyperfine.json');
    const r = spawnSync(
      'hyperfine',
      [
        ...['--warmup', '3', '--runs', '30', '--style', 'none', '--export-json', exportPath],
        ...['-N', '--ignore-failure'],
        ...commands.map(([, c]) => c),
      ],
      { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } },
    );
    if (r.status !== 0) throw new Error(`hyperfine failed: ${r.stderr}`);
    const data = JSON.parse(readFileSync(exportPath, 'utf8')) as {
      results: { median: number; exit_codes: number[] }[];
    };
    data.results.forEach((x, i) => {
      if (x.exit_codes.some((c) => c !== commands[i][2]))
        throw new Error(`${commands[i][0]}: exit codes ${[...new Set(x.exit_codes)].join(',')}`);
    });
    medians.push(...data.results.map((x) => x.median * 1000));
  } else {
    for (const [label, c, code] of commands) {
      const [cmd, ...argv] = c.split(' ');
      const times: number[] = [];
      for (let i = 0; i < 30; i++) {
        const r = await timed(cmd, argv);
        if (r.code !== code) throw new Error(`${label}: exit ${r.code}\n${r.stderr}`);
        times.push(r.ms);
      }
      medians.push(median(times));
    }
  }
  out(`## start-up (${hyperfine ? 'hyperfine -N, 3 warm-ups, 30 runs' : '30 runs'}; median)`);
  out('| command | median | vs bare node | target |');
  out('| --- | ---: | ---: | --- |');
  commands.forEach(([label], i) => {
    const target =
      i === 1 || i === 2 ? `≤ ${TARGETS.startupMs} ms: ${verdict(medians[i] <= TARGETS.startupMs)}` : '';
    out(
      `| ${label} | ${medians[i].toFixed(0)} ms | ${i === 0 ? '' : ratio(medians[i], medians[0])} | ${target} |`,
    );
  });
  out();
  results.startup = Object.fromEntries(commands.map(([label], i) => [label, medians[i]]));
}

// ------------------------------------------------------------------------------------------- dry-run plan

function planFleet(count: number): string {
  const nodes = Array.from({ length: count }, (_, i) => ({
    name: `web${String(i + 1).padStart(5, '0')}`,
    host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
  }));
  const fleet = {
    name: 'big',
    transport: {
      type: 'ssh',
      user: 'deploy',
      identityFile: join(work, 'no-such-key'),
      hostKeyPolicy: 'strict',
    },
    service: { type: 'systemd', unit: 'web.service', signal: 'USR1', killWhom: 'main', sudo: true },
    loadBalancer: {
      type: 'haproxy',
      host: 'lb1.example.net',
      socket: '/run/haproxy/admin.sock',
      backend: 'web',
    },
    drain: {
      deadline: '2m',
      probes: [{ type: 'process-exited' }, { type: 'connections', port: 8080 }],
      escalation: [
        { signal: 'TERM', deadline: '20s' },
        { signal: 'KILL', deadline: '5s' },
      ],
    },
    health: {
      probes: [{ type: 'http', url: 'http://{host}:8080/health' }],
      consecutive: 3,
      interval: '500ms',
    },
    rollout: { batchSize: 1, settle: '5s' },
    nodes,
  };
  const path = join(work, `plan-${count}.yaml`);
  writeFileSync(path, stringify(fleet));
  return path;
}

async function plan(): Promise<void> {
  const count = Number(opts['plan-nodes']);
  const path = planFleet(count);
  const yamlOnly = join(work, 'parse-only.mjs');
  writeFileSync(
    yamlOnly,
    `import { readFileSync } from 'node:fs';\nimport { parse } from '${join(repoRoot, 'node_modules/yaml/dist/index.js')}';\nparse(readFileSync(process.argv[2], 'utf8'));\n`,
  );
  const base = await repeat('yaml parse', process.execPath, [yamlOnly, path]);
  const text = await repeat('dry-run', ...graceroll('restart-fleet', '-c', path, '--dry-run'), {
    discardStdout: true,
  });
  const json = await repeat(
    'dry-run --json',
    ...graceroll('restart-fleet', '-c', path, '--dry-run', '--json'),
    {
      discardStdout: true,
    },
  );
  out(`## --dry-run plan of ${count} nodes (batch size 1; median of ${runs}, peak RSS the largest)`);
  out('| command | wall | peak RSS | output | target |');
  out('| --- | ---: | ---: | ---: | --- |');
  out(`| node: parse the YAML only (baseline) | ${seconds(base.ms)} | ${mb(base.maxRssKb)} | | |`);
  for (const [label, r] of [
    ['restart-fleet --dry-run', text],
    ['restart-fleet --dry-run --json', json],
  ] as const) {
    const ok = r.ms <= TARGETS.planMs && r.maxRssKb / 1024 <= TARGETS.planMb;
    out(
      `| ${label} | ${seconds(r.ms)} (${ratio(r.ms, base.ms)} baseline) | ${mb(r.maxRssKb)} | ${r.all[0].stdout} | ≤ 2 s, ≤ 200 MB: ${verdict(ok)} |`,
    );
  }
  out();
  results.plan = { count, base, text, json };
}

// ------------------------------------------------------------------------------------------- preflight

interface Sshds {
  port: number;
  /** One loopback address per node (127.0.1.1, 127.0.1.2, …), each served by one of the sshd. */
  hosts: string[];
  /** The PID file of the sshd serving each node. */
  pidFiles: string[];
  keyPath: string;
  knownHostsPath: string;
  stop(): Promise<void>;
}

/** Up to 16 ListenAddress per sshd (OpenSSH's MAX_LISTEN_SOCKS). */
const MAX_LISTEN = 16;

function greets(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('data', (d: Buffer) => done(d.toString().startsWith('SSH-')));
    socket.once('error', () => done(false));
    socket.setTimeout(1000, () => done(false));
  });
}

/**
 * `daemons` plain sshd on loopback serving `nodes` distinct addresses (127.0.1.1 …), one host key and one
 * authorized client key, like test/helpers/sshd.ts. Distinct addresses make every node a distinct host,
 * as in a real fleet: graceroll resolves the ssh config (`ssh -G`) once per host.
 */
async function startSshds(daemons: number, nodes: number, port: number): Promise<Sshds> {
  if (nodes > 250 * 250) throw new Error('too many nodes');
  const perDaemon = Math.ceil(nodes / daemons);
  if (perDaemon > MAX_LISTEN)
    throw new Error(`${nodes} nodes need at least ${Math.ceil(nodes / MAX_LISTEN)} sshd (--sshd)`);
  const dir = join(work, 'sshd');
  mkdirSync(dir, { recursive: true });
  mkdirSync('/run/sshd', { recursive: true });
  const hostKey = join(dir, 'host_ed25519');
  const keyPath = join(dir, 'client_ed25519');
  for (const k of [hostKey, keyPath])
    spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'graceroll-bench', '-f', k]);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${keyPath}.pub`));
  const hostPub = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(' ').slice(0, 2).join(' ');
  const hosts = Array.from({ length: nodes }, (_, i) => `127.0.${1 + Math.floor(i / 250)}.${1 + (i % 250)}`);
  const knownHostsPath = join(dir, 'known_hosts');
  writeFileSync(knownHostsPath, hosts.map((h) => `[${h}]:${port} ${hostPub}\n`).join(''));
  const daemonOf = (node: number) => Math.floor(node / perDaemon);
  const count = Math.ceil(nodes / perDaemon);
  const pidFile = (d: number) => join(dir, `sshd-${d}.pid`);
  const logs = Array.from({ length: count }, () => '');
  const children: ChildProcess[] = Array.from({ length: count }, (_, d) => {
    const config = join(dir, `sshd-${d}.conf`);
    writeFileSync(
      config,
      [
        ...hosts.filter((_, i) => daemonOf(i) === d).map((h) => `ListenAddress ${h}:${port}`),
        `HostKey ${hostKey}`,
        `PidFile ${pidFile(d)}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'UsePAM no',
        'StrictModes no',
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'MaxSessions 10',
        'MaxStartups 256',
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    // In a mount namespace of its own with an empty /root: root's login shell sources ~/.bashrc for
    // every SSH command, and this machine's (pyenv init) costs ~100 ms of CPU each time; a server's
    // profile is not what is measured here. The lab's nodes hide /root the same way.
    const sshd = `exec /usr/sbin/sshd -D -e -f ${config}`;
    const child = spawn(
      'unshare',
      ['-m', 'sh', '-c', `mount -t tmpfs -o mode=0700 graceroll-bench /root && ${sshd}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr.on('data', (chunk: Buffer) => (logs[d] = (logs[d] + chunk.toString()).slice(-2000)));
    return child;
  });
  const deadline = Date.now() + 15_000;
  for (const [i, host] of hosts.entries()) {
    while (!(await greets(host, port))) {
      if (Date.now() > deadline)
        throw new Error(`sshd on ${host}:${port} did not start:\n${logs[daemonOf(i)]}`);
      await sleep(50);
    }
  }
  return {
    port,
    hosts,
    pidFiles: hosts.map((_, i) => pidFile(daemonOf(i))),
    keyPath,
    knownHostsPath,
    async stop() {
      // Each sshd's connections are served by its forked children: -D daemons end them on SIGTERM.
      for (const c of children) c.kill('SIGTERM');
      await sleep(200);
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    },
  };
}

async function preflight(): Promise<void> {
  const count = Number(opts.nodes);
  const sshdCount = Number(opts.sshd);
  log(`starting ${sshdCount} sshd for ${count} nodes …`);
  const sshds = await startSshds(sshdCount, count, 20000 + (process.pid % 20000));
  try {
    const nodes = Array.from({ length: count }, (_, i) => ({
      name: `n${String(i + 1).padStart(3, '0')}`,
      host: sshds.hosts[i],
      port: sshds.port,
      // The last node is unhealthy: preflight checks every node, then refuses (exit 3), touching nothing.
      vars: { pidfile: sshds.pidFiles[i], ok: i === count - 1 ? 'no' : 'yes' },
    }));
    const dir = join(work, 'preflight');
    mkdirSync(dir, { recursive: true });
    const fleetPath = join(dir, 'fleet.yaml');
    const noSshConfigPath = join(dir, 'fleet-no-ssh-config.yaml');
    const fleet = (sshConfig: boolean) =>
      stringify({
        name: 'scale',
        transport: {
          type: 'ssh',
          user: 'root',
          identityFile: sshds.keyPath,
          knownHosts: sshds.knownHostsPath,
          hostKeyPolicy: 'strict',
          agent: false,
          ...(sshConfig ? {} : { sshConfig: false }),
        },
        service: { type: 'command', status: 'cat {vars.pidfile}', restart: 'true' },
        loadBalancer: { type: 'none' },
        health: { probes: [{ type: 'command', command: 'test {vars.ok} = yes' }] },
        lock: { path: join(dir, 'rollout.lock') },
        nodes,
      });
    writeFileSync(fleetPath, fleet(true));
    writeFileSync(noSshConfigPath, fleet(false));

    // Baseline: OpenSSH, 32 at a time (graceroll's preflight concurrency), one connection per node
    // running the same reads (the PID file, /proc/PID/stat, the health command) in one command.
    const baselineScript = join(dir, 'openssh.sh');
    writeFileSync(
      baselineScript,
      [
        'set -eu',
        `printf '%s\\n' ${nodes.map((n) => `'${n.host} ${n.vars.pidfile} ${n.vars.ok}'`).join(' ')} |`,
        `  xargs -P 32 -L 1 sh -c 'ssh -p ${sshds.port} -i ${sshds.keyPath} -o IdentitiesOnly=yes -o UserKnownHostsFile=${sshds.knownHostsPath} -o StrictHostKeyChecking=yes -o BatchMode=yes -o LogLevel=ERROR "root@$0" "cat /proc/\\$(cat $1)/stat >/dev/null; test $2 = yes" || true'`,
        '',
      ].join('\n'),
    );
    const base = await repeat('OpenSSH baseline', 'bash', [baselineScript]);
    const roll = await repeat(
      'preflight',
      ...graceroll('restart-fleet', '-c', fleetPath, '--yes', '--json'),
      {
        expectCode: 3,
      },
    );
    const checked = (r: Timed) => r.stdout.split('\n').filter((l) => l.includes('"kind":"preflight"')).length;
    const span = (r: Timed) => {
      const ev = r.stdout
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as { kind: string; time: string });
      const t = (k: string) => Date.parse(ev.find((e) => e.kind === k)!.time);
      return t('preflight-end') - t('rollout-start');
    };
    const spans = roll.all.map(span);
    // The same with `transport.sshConfig: false`: no `ssh -G` per host (see BENCHMARKS.md).
    const noSshG = await repeat(
      'preflight without ssh config',
      ...graceroll('restart-fleet', '-c', noSshConfigPath, '--yes', '--json'),
      { expectCode: 3 },
    );
    const status = await repeat('status', ...graceroll('status', '-c', fleetPath, '--json'));
    out(
      `## preflight of ${count} nodes (${count} loopback addresses served by ${sshdCount} sshd; service: command, loadBalancer: none; median of ${runs})`,
    );
    const cpu = (r: { all: Timed[] }) => seconds(median(r.all.map((x) => x.cpuMs ?? NaN)));
    const machineCpu = (r: { all: Timed[] }) => seconds(median(r.all.map((x) => x.machineCpuMs ?? NaN)));
    out('| command | wall | preflight span (events) | its CPU | machine CPU | peak RSS | target |');
    out('| --- | ---: | ---: | ---: | ---: | ---: | --- |');
    out(
      `| OpenSSH ssh ×${count}, xargs -P 32 (baseline) | ${seconds(base.ms)} | | ${cpu(base)} | ${machineCpu(base)} | ${mb(base.maxRssKb)} (largest process) | |`,
    );
    out(
      `| restart-fleet refused by preflight (exit 3, ${checked(roll.all[0])} nodes checked) | ${seconds(roll.ms)} (${ratio(roll.ms, base.ms)} baseline) | ${seconds(median(spans))} | ${cpu(roll)} | ${machineCpu(roll)} | ${mb(roll.maxRssKb)} | ≤ 5 s: ${verdict(roll.ms <= TARGETS.preflightMs)} |`,
    );
    out(
      `| the same with transport.sshConfig: false (no ssh -G per host) | ${seconds(noSshG.ms)} (${ratio(noSshG.ms, base.ms)} baseline) | ${seconds(median(noSshG.all.map(span)))} | ${cpu(noSshG)} | ${machineCpu(noSshG)} | ${mb(noSshG.maxRssKb)} | |`,
    );
    out(
      `| status --json (reads every node) | ${seconds(status.ms)} (${ratio(status.ms, base.ms)} baseline) | | ${cpu(status)} | ${machineCpu(status)} | ${mb(status.maxRssKb)} | |`,
    );
    out('');
    out(
      `its CPU: user + system of the command and its children (graceroll: the one Node process); machine CPU: all ${machine().cpus.split(' ')[0]} cores, sshd included.`,
    );
    out();
    results.preflight = { count, sshdCount, base, roll, spans, noSshG, status };
  } finally {
    await sshds.stop();
  }
}

async function main(): Promise<void> {
  // Quiet first: a build removes dist/, which a test run elsewhere may be using.
  const busy = await waitForQuiet(Number(opts['quiet-wait']) * 1000, log);
  if (busy.length) log(`WARNING: measuring while other work runs: ${busy.join('; ')}`);
  if (opts.build) build(log);
  const m = machine();
  out(`# scale and start-up`);
  if (opts.bin) out(`graceroll: ${bin}`);
  out(`machine: ${m.cpus}, ${m.memory}, node ${m.node}, ${m.os}, kernel ${m.kernel}, load ${m.load}`);
  out();
  try {
    if (only.has('startup')) await startup();
    if (only.has('plan')) await plan();
    if (only.has('preflight')) await preflight();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  const dir = resultsDir;
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const strip = (v: unknown): unknown =>
    JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'stdout' || k === 'stderr' ? undefined : x)));
  writeFileSync(
    join(dir, `scale${opts.bin ? '-bin' : ''}-${new Date().toISOString().replace(/[:.]/g, '')}.json`),
    JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: m,
        opts,
        results: strip(results),
        summary: lines.join('\n'),
      },
      null,
      1,
    ),
  );
}

await main();

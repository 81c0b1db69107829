// Summarizes a V8 CPU profile (node --cpu-prof) by self time: per owner (graceroll's own dist/ code,
// each package in node_modules, Node.js internals, GC) and per function.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bin/run.js restart-fleet -c big.yaml --dry-run > /dev/null
//   npx tsx bench/profile-summary.ts /tmp/prof/CPU.*.cpuprofile [--top 25]
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const argv = process.argv.slice(2);
const topAt = argv.indexOf('--top');
const top = topAt >= 0 ? Number(argv[topAt + 1]) : 25;
const file = argv.find((a, i) => !a.startsWith('--') && argv[i - 1] !== '--top');
if (!file) throw new Error('usage: profile-summary.ts FILE.cpuprofile [--top N]');
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;

const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
const totalUs = profile.endTime - profile.startTime;

function owner(url: string, name: string): string {
  if (name === '(garbage collector)') return 'GC';
  if (name === '(idle)' || name === '(program)') return name;
  if (!url) return 'native / V8';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `node_modules/${pkg[1]}`;
  const ours = /\/(dist|src|bin)\/(.*)$/.exec(url);
  if (ours) return 'graceroll (dist/)';
  return url;
}

const owners = new Map<string, number>();
const functions = new Map<string, number>();
for (const [id, us] of selfUs) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const o = owner(url, functionName);
  owners.set(o, (owners.get(o) ?? 0) + us);
  const where = url
    ? `${url.replace(/^file:\/\/.*?\/(node_modules|dist|bin)\//, '$1/')}:${lineNumber + 1}`
    : '';
  const key = `${functionName || '(anonymous)'} ${where}`.trim();
  functions.set(key, (functions.get(key) ?? 0) + us);
}
const ms = (us: number) => `${(us / 1000).toFixed(0)} ms`;
const share = (us: number) => `${((100 * us) / totalUs).toFixed(1)} %`;
console.log(`profile: ${ms(totalUs)} sampled`);
console.log('\nself time by owner:');
for (const [o, us] of [...owners].sort((a, b) => b[1] - a[1]))
  console.log(`  ${ms(us).padStart(8)} ${share(us).padStart(7)}  ${o}`);
console.log(`\ntop ${top} functions by self time:`);
for (const [f, us] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`  ${ms(us).padStart(8)} ${share(us).padStart(7)}  ${f}`);

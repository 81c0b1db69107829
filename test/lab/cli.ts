// Starts a lab by hand and keeps it until Ctrl-C, for poking at it while writing a test:
//   npx tsx test/lab/cli.ts [--nodes 5] [--mode queue]
// It prints the lab as JSON (addresses, ssh key and known_hosts paths, admin socket).
import { parseArgs } from 'node:util';
import { startLab, type ServiceMode } from './lab.js';

const { values } = parseArgs({
  options: { nodes: { type: 'string', default: '3' }, mode: { type: 'string', default: 'normal' } },
});
const lab = await startLab({ nodes: Number(values.nodes), serviceMode: values.mode as ServiceMode });
console.log(JSON.stringify({ ...lab, lb: { ...lab.lb, serverName: undefined } }, null, 2));
console.log(`ready in ${lab.startMs} ms; Ctrl-C tears it down`);
const keepAlive = setInterval(() => {}, 1 << 30);
const stop = async () => {
  const t = Date.now();
  await lab.stop();
  clearInterval(keepAlive);
  console.log(`torn down in ${Date.now() - t} ms`);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());

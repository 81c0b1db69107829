import type { FleetNode, LoadBalancerConfig } from '../config/types.js';
import { fail, type Result } from '../outcome.js';
import { runCommand } from '../service/run-command.js';
import { fillShell, nodeValues } from '../template.js';
import type { Transport } from '../transport/types.js';
import type { LbServerState, LbServerStateName, LoadBalancer } from './types.js';

type CommandLbConfig = Extract<LoadBalancerConfig, { type: 'command' }>;
const STATES: readonly LbServerStateName[] = ['up', 'down', 'drain', 'maint', 'absent'];

/** Parses the state command's output: `up`, `drain 3`, `absent`. */
export function parseStateLine(text: string): Result<LbServerState> {
  const [word = '', sessions] = text.trim().split(/\s+/);
  const state = word.toLowerCase() as LbServerStateName;
  if (!STATES.includes(state))
    return fail(
      `state command printed ${JSON.stringify(text.trim())}; expected up, down, drain, maint or absent`,
    );
  if (sessions !== undefined && !/^\d+$/.test(sessions))
    return fail(`state command printed a session count that is not a number: ${JSON.stringify(sessions)}`);
  return { ok: true, value: { state, sessions: sessions === undefined ? undefined : Number(sessions) } };
}

/** Load balancer driven by the operator's own commands, run on the controller (`transport`). */
export function createCommandLoadBalancer(
  config: CommandLbConfig,
  transport: Transport,
  timeoutMs: number,
): LoadBalancer {
  const line = (template: string, node: FleetNode) => fillShell(template, nodeValues(node));
  return {
    type: 'command',
    describe: (node) => ({
      deregister: [line(config.deregister, node)],
      register: [line(config.register, node)],
      state: [line(config.state, node)],
    }),
    async state(node, signal) {
      const result = await runCommand(transport, { shell: line(config.state, node) }, signal, timeoutMs);
      return result.outcome.ok ? parseStateLine(result.stdout) : result.outcome;
    },
    async deregister(node, signal) {
      return (await runCommand(transport, { shell: line(config.deregister, node) }, signal, timeoutMs))
        .outcome;
    },
    async register(node, signal) {
      return (await runCommand(transport, { shell: line(config.register, node) }, signal, timeoutMs)).outcome;
    },
    close: () => Promise.resolve(),
  };
}

import type { FleetNode, LoadBalancerConfig } from '../config/types.js';
import { fail, OK, type Outcome, type Result } from '../outcome.js';
import type { RuntimeApi } from './haproxy-runtime.js';
import type { LbServerState, LoadBalancer } from './types.js';

type HaproxyConfig = Extract<LoadBalancerConfig, { type: 'haproxy' }>;

/** srv_admin_state bits, haproxy include/haproxy/server-t.h (SRV_ADMF_*). */
const ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40;
const ADMIN_DRAIN = 0x08 | 0x10;
const OP_RUNNING = 2;

export interface ServerRow {
  adminState: number;
  opState: number;
  sessions?: number;
  status?: string;
}

/** Parses `show servers state BACKEND` (space separated, header `# be_id be_name srv_id srv_name …`). */
export function parseServersState(text: string): Map<string, ServerRow> {
  const rows = new Map<string, ServerRow>();
  let header: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# be_id')) header = line.slice(2).trim().split(/\s+/);
    else if (header && line.trim() && !line.startsWith('#')) {
      const cells = line.trim().split(/\s+/);
      const at = (name: string) => cells[header!.indexOf(name)];
      const name = at('srv_name');
      if (name)
        rows.set(name, { adminState: Number(at('srv_admin_state')), opState: Number(at('srv_op_state')) });
    }
  }
  return rows;
}

/** Parses `show stat` CSV (header `# pxname,svname,…`): server name → scur and status. */
export function parseShowStat(text: string, backend: string): Map<string, { scur: number; status: string }> {
  const rows = new Map<string, { scur: number; status: string }>();
  let header: string[] | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# pxname')) header = line.slice(2).split(',');
    else if (header && line.includes(',')) {
      const cells = line.split(',');
      const at = (name: string) => cells[header!.indexOf(name)] ?? '';
      if (at('pxname') === backend && at('svname') !== 'BACKEND' && at('svname') !== 'FRONTEND') {
        rows.set(at('svname'), { scur: Number(at('scur') || 0), status: at('status') });
      }
    }
  }
  return rows;
}

export function stateFromRow(row: ServerRow | undefined): LbServerState {
  if (!row) return { state: 'absent' };
  const detail = row.status ?? `admin ${row.adminState} op ${row.opState}`;
  if (row.adminState & ADMIN_MAINT) return { state: 'maint', sessions: row.sessions, detail };
  if (row.adminState & ADMIN_DRAIN) return { state: 'drain', sessions: row.sessions, detail };
  return { state: row.opState === OP_RUNNING ? 'up' : 'down', sessions: row.sessions, detail };
}

/** HAProxy through its runtime API: drain, then maint on the way out; ready, then wait for UP. */
export function createHaproxyLoadBalancer(
  config: HaproxyConfig,
  api: RuntimeApi,
  close: () => Promise<void>,
): LoadBalancer {
  const where = config.host ? `${config.host}:${config.socket}` : config.socket;
  const setState = (node: FleetNode, state: string) =>
    `set server ${config.backend}/${node.lbServer} state ${state}`;
  const stateCommand = `show servers state ${config.backend}; show stat`;

  const send = async (command: string, signal: AbortSignal): Promise<Outcome> => {
    const answer = await api(command, signal);
    if (!answer.ok) return answer;
    const text = answer.value.trim();
    // `set server` answers nothing on success, and an explanation otherwise.
    return text === '' ? OK : fail(`haproxy ${where}: "${command}" answered: ${text.split('\n')[0]}`);
  };

  return {
    type: 'haproxy',
    describe: (node) => ({
      deregister: config.deregisterStates.map((state) => `haproxy ${where}: ${setState(node, state)}`),
      register: [`haproxy ${where}: ${setState(node, 'ready')}`],
      state: [`haproxy ${where}: ${stateCommand}`],
    }),
    async state(node, signal): Promise<Result<LbServerState>> {
      const answer = await api(stateCommand, signal);
      if (!answer.ok) return answer;
      if (!answer.value.includes('# be_id')) {
        return fail(
          `haproxy ${where}: no backend "${config.backend}" (${answer.value.trim().split('\n')[0] || 'empty answer'})`,
        );
      }
      const row = parseServersState(answer.value).get(node.lbServer);
      const stat = parseShowStat(answer.value, config.backend).get(node.lbServer);
      return { ok: true, value: stateFromRow(row && { ...row, sessions: stat?.scur, status: stat?.status }) };
    },
    async deregister(node, signal) {
      for (const state of config.deregisterStates) {
        const sent = await send(setState(node, state), signal);
        if (!sent.ok) return sent;
      }
      return OK;
    },
    register: (node, signal) => send(setState(node, 'ready'), signal),
    close,
  };
}

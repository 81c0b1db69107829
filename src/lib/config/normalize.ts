import { missingValues, nodeValues, quotedPlaceholders } from '../template.js';
import type { FleetParsed } from './schema.js';
import type { Fleet, FleetOverrides } from './types.js';

export interface RuleProblem {
  path: (string | number)[];
  message: string;
}

export function normalize(
  parsed: FleetParsed,
  source: string,
  sourceDigest: string,
  overrides: FleetOverrides,
): Fleet {
  const { $schema: _schema, nodes, ...rest } = parsed;
  let fleetNodes = nodes.map((node) => ({
    name: node.name,
    host: node.host ?? node.name,
    port: node.port,
    user: node.user,
    lbServer: node.lbServer ?? node.name,
    vars: node.vars,
  }));
  if (overrides.nodes?.length) {
    const wanted = new Set(overrides.nodes);
    fleetNodes = fleetNodes.filter((node) => wanted.has(node.name));
  }
  const rollout = { ...rest.rollout };
  if (overrides.batchSize !== undefined) {
    rollout.batchSize = /^\d+$/.test(overrides.batchSize) ? Number(overrides.batchSize) : overrides.batchSize;
  }
  return { ...rest, rollout, nodes: fleetNodes, source, sourceDigest };
}

/** Rules that span fields; each problem names its path. */
export function checkRules(fleet: Fleet, overrides: FleetOverrides): RuleProblem[] {
  const problems: RuleProblem[] = [];
  const seen = new Map<string, number>();
  fleet.nodes.forEach((node, index) => {
    const first = seen.get(node.name);
    if (first !== undefined) {
      problems.push({
        path: ['nodes', index, 'name'],
        message: `duplicate node name "${node.name}" (also nodes[${first}])`,
      });
    }
    seen.set(node.name, index);
  });
  for (const name of overrides.nodes ?? []) {
    if (!seen.has(name))
      problems.push({ path: ['--nodes'], message: `no node named "${name}" in the config` });
  }
  const { batchSize, maxFailures } = fleet.rollout;
  if (batchSize === 0 || batchSize === '0%') {
    problems.push({
      path: ['rollout', 'batchSize'],
      message: 'must be at least 1 (or a percentage above 0%)',
    });
  }
  if (typeof batchSize === 'string' && !/^\d{1,3}(\.\d+)?%$/.test(batchSize)) {
    problems.push({
      path: ['rollout', 'batchSize'],
      message: `expected a count like 2 or a percentage like 25%, got "${batchSize}"`,
    });
  }
  for (const value of [batchSize, maxFailures]) {
    if (typeof value === 'string' && parseFloat(value) > 100) {
      problems.push({
        path: ['rollout', value === batchSize ? 'batchSize' : 'maxFailures'],
        message: 'a percentage cannot exceed 100%',
      });
    }
  }
  fleet.drain.probes.forEach((probe, index) => {
    if (probe.type === 'lb-sessions' && fleet.loadBalancer.type === 'none') {
      problems.push({
        path: ['drain', 'probes', index],
        message: 'lb-sessions needs a loadBalancer (type is none)',
      });
    }
  });
  if ('host' in fleet.loadBalancer && fleet.loadBalancer.host && fleet.transport.type !== 'ssh') {
    problems.push({
      path: ['loadBalancer', 'host'],
      message: 'reaching the load balancer host needs transport type ssh',
    });
  }
  if (fleet.drain.onDeadline === 'escalate' && fleet.drain.escalation.length === 0) {
    problems.push({
      path: ['drain', 'escalation'],
      message: 'onDeadline is escalate but no escalation step is given',
    });
  }
  problems.push(...checkTemplates(fleet));
  return problems;
}

/** Every template with the path of the field it came from. */
function templates(fleet: Fleet): { path: (string | number)[]; text: string; shell: boolean }[] {
  const out: { path: (string | number)[]; text: string; shell: boolean }[] = [];
  const add = (path: (string | number)[], text: string | undefined, shell = true) =>
    text !== undefined && out.push({ path, text, shell });
  if (fleet.service.type === 'command') {
    for (const key of ['status', 'kill', 'restart'] as const) add(['service', key], fleet.service[key]);
  }
  add(['service', 'gracefulCommand'], fleet.service.gracefulCommand?.command);
  if (fleet.loadBalancer.type === 'command') {
    for (const key of ['deregister', 'register', 'state'] as const)
      add(['loadBalancer', key], fleet.loadBalancer[key]);
  }
  if (fleet.loadBalancer.type === 'nginx') {
    for (const key of ['test', 'reload'] as const) add(['loadBalancer', key], fleet.loadBalancer[key]);
  }
  for (const [section, probes] of [
    ['drain', fleet.drain.probes],
    ['health', fleet.health.probes],
  ] as const) {
    probes.forEach((probe, i) => {
      if (probe.type === 'http') add([section, 'probes', i, 'url'], probe.url, false);
      if (probe.type === 'command') add([section, 'probes', i, 'command'], probe.command);
      if (probe.type === 'tcp') add([section, 'probes', i, 'host'], probe.host, false);
    });
  }
  for (const [name, hooks] of Object.entries(fleet.hooks))
    hooks.forEach((hook, i) => add(['hooks', name, i, 'command'], hook.command));
  return out;
}

/**
 * A placeholder with no value for some node is an error, not text left in a command: `{vars.port}`
 * silently reaching a shell as-is would run something the operator never meant.
 */
function checkTemplates(fleet: Fleet): RuleProblem[] {
  const problems: RuleProblem[] = [];
  for (const { path, text, shell } of templates(fleet)) {
    for (const { placeholder, quote } of shell ? quotedPlaceholders(text) : []) {
      problems.push({
        path,
        message: `${placeholder} is inside ${quote === '"' ? 'double' : 'single'} quotes; graceroll quotes every value itself, and quotes around it would let a value such as $(…) run: write ${placeholder} without quotes`,
      });
    }
    const lacking = new Map<string, string[]>();
    for (const node of fleet.nodes) {
      for (const key of missingValues(text, nodeValues(node, { signal: 'TERM', pid: 1 }))) {
        lacking.set(key, [...(lacking.get(key) ?? []), node.name]);
      }
    }
    for (const [key, nodes] of lacking) {
      problems.push({
        path,
        message: `{${key}} has no value for node${nodes.length > 1 ? 's' : ''} ${nodes.join(', ')}`,
      });
    }
  }
  return problems;
}

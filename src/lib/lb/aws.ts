import type {
  ElasticLoadBalancingV2Client,
  TargetDescription,
  TargetHealthDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { FleetNode, LoadBalancerConfig } from '../config/types.js';
import { fail, OK, type Outcome, type Result } from '../outcome.js';
import { nodeValues } from '../template.js';
import { fillText, requireValues } from './fill-text.js';
import type { LbServerState, LbServerStateName, LoadBalancer } from './types.js';

type AwsConfig = Extract<LoadBalancerConfig, { type: 'aws-target-group' }>;

/** Loaded on first use: the SDK takes ~130 ms to import, which every other command would pay. */
const loadSdk = () => import('@aws-sdk/client-elastic-load-balancing-v2');

export const regionOfArn = (arn: string): string => arn.split(':')[3] ?? '';

/**
 * One target's health (DescribeTargetHealth, TargetHealth.State) as graceroll's state. ELBv2 reports no
 * session counts, so `sessions` stays unknown. `unused` with Target.NotRegistered is what a target looks
 * like once deregistration has finished: `maint` when this rollout deregistered it, else `absent`.
 * `unavailable` means health checks are disabled, and the target then takes traffic: `up`.
 * (API reference, TargetHealth; ALB guide, "Target health status".)
 */
export function stateFromHealth(
  health: TargetHealthDescription | undefined,
  deregisteredByUs: boolean,
): LbServerState {
  const state = health?.TargetHealth?.State;
  const reason = health?.TargetHealth?.Reason;
  const detail = [state ?? 'not listed', reason, health?.TargetHealth?.Description]
    .filter(Boolean)
    .join(': ');
  let name: LbServerStateName;
  switch (state) {
    case 'healthy':
    case 'unavailable':
      name = 'up';
      break;
    case 'draining':
    case 'unhealthy.draining':
      name = 'drain';
      break;
    case 'initial':
    case 'unhealthy':
      name = 'down';
      break;
    case 'unused':
      // Registered but not serving (Target.NotInUse, Target.InvalidState, Target.IpUnusable) is not
      // something waiting will fix: it reads as down, with the reason in the detail.
      name = reason === 'Target.NotRegistered' ? (deregisteredByUs ? 'maint' : 'absent') : 'down';
      break;
    default:
      name = deregisteredByUs ? 'maint' : 'absent';
  }
  return { state: name, detail };
}

/** The description of this target among DescribeTargetHealth's answer (by Id, and Port when configured). */
export function healthOf(
  descriptions: TargetHealthDescription[],
  target: TargetDescription,
): TargetHealthDescription | undefined {
  return descriptions.find(
    (d) => d.Target?.Id === target.Id && (target.Port === undefined || d.Target?.Port === target.Port),
  );
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { Code?: string }).Code;
    return `${code ?? error.name}: ${error.message}`;
  }
  return String(error);
}

/**
 * An ELBv2 target group (ALB/NLB) through the AWS SDK: DeregisterTargets, DescribeTargetHealth,
 * RegisterTargets. Credentials come from the SDK's default chain (environment, AWS_PROFILE and
 * ~/.aws files, SSO, instance or task role). The client is made on first use, so a dry run needs none.
 */
export function createAwsTargetGroupLoadBalancer(config: AwsConfig, timeoutMs: number): LoadBalancer {
  const region = config.region ?? regionOfArn(config.targetGroupArn);
  const deregistered = new Set<string>();
  let client: ElasticLoadBalancingV2Client | undefined;
  const elbv2 = async () => {
    const sdk = await loadSdk();
    client ??= new sdk.ElasticLoadBalancingV2Client({
      region,
      endpoint: config.endpoint,
      requestHandler: { requestTimeout: timeoutMs, connectionTimeout: timeoutMs },
    });
    return { client, sdk };
  };

  const targetOf = (node: FleetNode): Result<TargetDescription> => {
    const values = nodeValues(node);
    const id = requireValues(config.targetId, values, 'loadBalancer.targetId');
    if (!id.ok) return id;
    const target: TargetDescription = { Id: fillText(config.targetId, values) };
    if (config.port !== undefined) {
      const text = typeof config.port === 'number' ? String(config.port) : config.port;
      const port = requireValues(text, values, 'loadBalancer.port');
      if (!port.ok) return port;
      const filled = fillText(text, values);
      if (!/^\d{1,5}$/.test(filled) || Number(filled) < 1 || Number(filled) > 65535)
        return fail(
          `loadBalancer.port is ${JSON.stringify(filled)} for ${node.name}; expected a port number`,
        );
      target.Port = Number(filled);
    }
    return { ok: true, value: target };
  };
  const shown = (target: TargetDescription) => `Id=${target.Id}${target.Port ? `,Port=${target.Port}` : ''}`;
  const keyOf = (target: TargetDescription) => shown(target);
  const cli = (verb: string, node: FleetNode) => {
    const target = targetOf(node);
    const targets = target.ok ? shown(target.value) : `Id=${config.targetId}`;
    return `aws elbv2 ${verb} --region ${region} --target-group-arn ${config.targetGroupArn} --targets ${targets}`;
  };

  const change = async (node: FleetNode, out: boolean, signal: AbortSignal): Promise<Outcome> => {
    const target = targetOf(node);
    if (!target.ok) return target;
    const input = { TargetGroupArn: config.targetGroupArn, Targets: [target.value] };
    try {
      const { client, sdk } = await elbv2();
      const command = out ? new sdk.DeregisterTargetsCommand(input) : new sdk.RegisterTargetsCommand(input);
      await client.send(command, { abortSignal: signal });
    } catch (error) {
      return fail(
        `aws elbv2 ${out ? 'DeregisterTargets' : 'RegisterTargets'} ${shown(target.value)}: ${errorText(error)}`,
      );
    }
    if (out) deregistered.add(keyOf(target.value));
    else deregistered.delete(keyOf(target.value));
    return OK;
  };

  return {
    type: 'aws-target-group',
    describe: (node) => ({
      deregister: [cli('deregister-targets', node)],
      register: [cli('register-targets', node)],
      state: [cli('describe-target-health', node)],
    }),
    async state(node, signal): Promise<Result<LbServerState>> {
      const target = targetOf(node);
      if (!target.ok) return target;
      try {
        const { client, sdk } = await elbv2();
        const answer = await client.send(
          new sdk.DescribeTargetHealthCommand({
            TargetGroupArn: config.targetGroupArn,
            Targets: [target.value],
          }),
          { abortSignal: signal },
        );
        const health = healthOf(answer.TargetHealthDescriptions ?? [], target.value);
        return { ok: true, value: stateFromHealth(health, deregistered.has(keyOf(target.value))) };
      } catch (error) {
        return fail(`aws elbv2 DescribeTargetHealth ${shown(target.value)}: ${errorText(error)}`);
      }
    },
    deregister: (node, signal) => change(node, true, signal),
    register: (node, signal) => change(node, false, signal),
    close: () => {
      client?.destroy();
      return Promise.resolve();
    },
  };
}

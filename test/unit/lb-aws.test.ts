import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseFleetYaml } from '../../src/lib/config/load-config.js';
import type { FleetNode, LoadBalancerConfig } from '../../src/lib/config/types.js';
import { GracerollError } from '../../src/lib/exit-codes.js';
import { createAwsTargetGroupLoadBalancer, stateFromHealth } from '../../src/lib/lb/aws.js';
import { startReplay, type ReplayStep } from '../fixtures/aws/replay.js';

// The real AWS SDK client talks HTTP to a local endpoint that replays recorded ELBv2 answers: nothing
// of the SDK is faked, only the wire (see test/fixtures/aws/README.md for where the answers come from).

const ARN = 'arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/web/73e2d6bc24d8a067';
const web1: FleetNode = {
  name: 'web1',
  host: '10.0.0.1',
  lbServer: 'web1',
  vars: { instanceId: 'i-0a1b2c3d4e5f60718', port: 8080 },
};
const signal = new AbortController().signal;

function awsConfig(endpoint: string): Extract<LoadBalancerConfig, { type: 'aws-target-group' }> {
  return {
    type: 'aws-target-group',
    targetGroupArn: ARN,
    targetId: '{vars.instanceId}',
    port: '{vars.port}',
    endpoint,
  };
}

let replay: Awaited<ReturnType<typeof startReplay>> | undefined;
async function replaying(steps: ReplayStep[]) {
  replay = await startReplay(steps);
  return { replay, lb: createAwsTargetGroupLoadBalancer(awsConfig(replay.endpoint), 5000) };
}

beforeEach(() => {
  // The SDK's default chain takes the first of these; nothing reads ~/.aws or the instance metadata.
  vi.stubEnv('AWS_ACCESS_KEY_ID', 'AKIDEXAMPLE');
  vi.stubEnv('AWS_SECRET_ACCESS_KEY', 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY');
  vi.stubEnv('AWS_EC2_METADATA_DISABLED', 'true');
  // Node 20 is supported by this SDK version; its notice about future versions is not what we test.
  vi.stubEnv('AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED', 'true');
});
afterEach(async () => {
  vi.unstubAllEnvs();
  await replay?.close();
  replay = undefined;
});

describe('AWS target group load balancer (recorded ELBv2 answers)', () => {
  it('deregisters, sees draining then maint, registers, sees initial then up', async () => {
    const { replay, lb } = await replaying([
      { action: 'DescribeTargetHealth', file: 'describe-target-health.healthy.xml' },
      { action: 'DeregisterTargets', file: 'deregister-targets.xml' },
      { action: 'DescribeTargetHealth', file: 'describe-target-health.draining.xml' },
      { action: 'DescribeTargetHealth', file: 'describe-target-health.unused.xml' },
      { action: 'RegisterTargets', file: 'register-targets.xml' },
      { action: 'DescribeTargetHealth', file: 'describe-target-health.initial.xml' },
      { action: 'DescribeTargetHealth', file: 'describe-target-health.healthy.xml' },
    ]);
    const states = [];
    states.push(await lb.state(web1, signal));
    expect(await lb.deregister(web1, signal)).toEqual({ ok: true });
    states.push(await lb.state(web1, signal), await lb.state(web1, signal));
    expect(await lb.register(web1, signal)).toEqual({ ok: true });
    states.push(await lb.state(web1, signal), await lb.state(web1, signal));
    await lb.close();

    expect(states).toEqual([
      { ok: true, value: { state: 'up', detail: 'healthy' } },
      {
        ok: true,
        value: {
          state: 'drain',
          detail: 'draining: Target.DeregistrationInProgress: Target deregistration is in progress',
        },
      },
      {
        ok: true,
        value: {
          state: 'maint',
          detail: 'unused: Target.NotRegistered: Target is not registered to the target group',
        },
      },
      {
        ok: true,
        value: {
          state: 'down',
          detail: 'initial: Elb.RegistrationInProgress: Target registration is in progress',
        },
      },
      { ok: true, value: { state: 'up', detail: 'healthy' } },
    ]);
    expect(replay.mismatches).toEqual([]);
    expect(replay.remaining()).toEqual([]);
    for (const request of replay.requests) {
      expect(request.params).toEqual({
        Action: request.action,
        Version: '2015-12-01',
        TargetGroupArn: ARN,
        'Targets.member.1.Id': 'i-0a1b2c3d4e5f60718',
        'Targets.member.1.Port': '8080',
      });
      // Signed with SigV4 for the ARN's region and the elasticloadbalancing service.
      expect(request.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/elasticloadbalancing\/aws4_request,/,
      );
    }
  });

  it('retries a throttled call as the SDK does, then reads the answer', async () => {
    const { replay, lb } = await replaying([
      { action: 'DescribeTargetHealth', file: 'error.throttling.xml', status: 400 },
      { action: 'DescribeTargetHealth', file: 'describe-target-health.draining.xml' },
    ]);
    expect(await lb.state(web1, signal)).toMatchObject({ ok: true, value: { state: 'drain' } });
    expect(replay.requests).toHaveLength(2);
  });

  it('turns an API error into a reason that names the call, the target and the error code', async () => {
    const { lb } = await replaying([
      { action: 'DeregisterTargets', file: 'error.target-group-not-found.xml', status: 400 },
    ]);
    expect(await lb.deregister(web1, signal)).toEqual({
      ok: false,
      reason:
        'aws elbv2 DeregisterTargets Id=i-0a1b2c3d4e5f60718,Port=8080: TargetGroupNotFound: One or more target groups not found',
    });
  });

  it('reports a target that was never registered as absent, not maint', async () => {
    const { lb } = await replaying([
      { action: 'DescribeTargetHealth', file: 'describe-target-health.unused.xml' },
    ]);
    expect(await lb.state(web1, signal)).toMatchObject({ ok: true, value: { state: 'absent' } });
  });

  it('needs no credentials or network to describe the calls', () => {
    const lb = createAwsTargetGroupLoadBalancer(awsConfig('http://127.0.0.1:9'), 5000);
    expect(lb.describe(web1)).toEqual({
      deregister: [
        `aws elbv2 deregister-targets --region eu-west-1 --target-group-arn ${ARN} --targets Id=i-0a1b2c3d4e5f60718,Port=8080`,
      ],
      register: [
        `aws elbv2 register-targets --region eu-west-1 --target-group-arn ${ARN} --targets Id=i-0a1b2c3d4e5f60718,Port=8080`,
      ],
      state: [
        `aws elbv2 describe-target-health --region eu-west-1 --target-group-arn ${ARN} --targets Id=i-0a1b2c3d4e5f60718,Port=8080`,
      ],
    });
  });

  it('refuses a node without the templated values before calling AWS', async () => {
    const lb = createAwsTargetGroupLoadBalancer(awsConfig('http://127.0.0.1:9'), 5000);
    expect(await lb.deregister({ ...web1, vars: { port: 8080 } }, signal)).toEqual({
      ok: false,
      reason: 'loadBalancer.targetId "{vars.instanceId}": {vars.instanceId} has no value',
    });
    expect(await lb.state({ ...web1, vars: { instanceId: 'i-1', port: 'http' } }, signal)).toEqual({
      ok: false,
      reason: 'loadBalancer.port is "http" for web1; expected a port number',
    });
  });
});

describe('ELBv2 target health as graceroll state', () => {
  const health = (State: string, Reason?: string) => ({ TargetHealth: { State, Reason } }) as never;
  it.each([
    ['healthy', undefined, false, 'up'],
    ['unavailable', 'Target.HealthCheckDisabled', false, 'up'],
    ['initial', 'Elb.InitialHealthChecking', false, 'down'],
    ['unhealthy', 'Target.Timeout', false, 'down'],
    ['draining', 'Target.DeregistrationInProgress', true, 'drain'],
    ['unhealthy.draining', undefined, true, 'drain'],
    ['unused', 'Target.NotRegistered', true, 'maint'],
    ['unused', 'Target.NotRegistered', false, 'absent'],
    ['unused', 'Target.NotInUse', false, 'down'],
    ['unused', 'Target.InvalidState', true, 'down'],
  ])('%s (%s, deregistered by us: %s) is %s', (state, reason, ours, expected) =>
    expect(stateFromHealth(health(state, reason), ours).state).toBe(expected),
  );
  it('a target missing from the answer is maint after our deregistration, else absent', () => {
    expect(stateFromHealth(undefined, true)).toEqual({ state: 'maint', detail: 'not listed' });
    expect(stateFromHealth(undefined, false)).toEqual({ state: 'absent', detail: 'not listed' });
  });
});

describe('AWS target group config', () => {
  const yaml = (lb: string) => `service: { type: systemd, unit: web.service }
loadBalancer: ${lb}
nodes: [{ name: web1, vars: { instanceId: i-1 } }]
`;
  it('fills targetId and takes the region from the ARN at use', () => {
    const fleet = parseFleetYaml(yaml(`{ type: aws-target-group, targetGroupArn: "${ARN}" }`), 'f.yaml');
    expect(fleet.loadBalancer).toEqual({
      type: 'aws-target-group',
      targetGroupArn: ARN,
      targetId: '{vars.instanceId}',
    });
  });
  it('refuses something that is not a target group ARN', () => {
    expect(() =>
      parseFleetYaml(
        yaml('{ type: aws-target-group, targetGroupArn: "arn:aws:ec2:eu-west-1:1:instance/i-1" }'),
        'f.yaml',
      ),
    ).toThrow(GracerollError);
  });
});

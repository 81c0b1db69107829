import { z } from 'zod';
import { HEARTBEAT_MS, MIN_STALE_AFTER_MS, STALE_FLOOR_HEARTBEATS } from '../lock/timing.js';
import { duration } from './duration.js';
import {
  absolutePath,
  countOrPercent,
  hostname,
  lbName,
  localPath,
  nodeName,
  port,
  signalName,
  unitName,
} from './fields.js';

/** Shell command written by the operator. Values templated into it ({node}, {host}…) are quoted. */
const shellTemplate = z.string().min(1, 'expected a command');

/** One jump host as `ssh -J` takes it: `[user@]host[:port]` (`[addr]` for IPv6, `ssh://` allowed). */
const JUMP_HOP =
  /^(?:ssh:\/\/)?(?:([a-z_][a-z0-9_.-]*\$?)@)?(\[[0-9A-Fa-f:.]+\]|[^@:[\]\s/,]+)(?::(\d{1,5}))?$/i;
const isJumpHop = (value: string): boolean => {
  const match = JUMP_HOP.exec(value);
  if (!match) return false;
  const host = match[2].startsWith('[') ? match[2].slice(1, -1) : match[2];
  return (
    hostname.safeParse(host).success && (match[3] === undefined || port.safeParse(Number(match[3])).success)
  );
};
const jumpHop = z.string().refine(isJumpHop, { message: 'expected a jump host as [user@]host[:port]' });

const transport = z.discriminatedUnion('type', [
  z.object({ type: z.literal('local') }).strict(),
  z
    .object({
      type: z.literal('ssh'),
      user: z
        .string()
        .regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'expected a user name')
        .optional(),
      /** Default: the ssh config's Port for the host, else 22. Set here, it wins over the ssh config (like ssh -p). */
      port: port.optional(),
      identityFile: localPath.optional(),
      /** Name of the environment variable holding the key's passphrase. */
      passphraseEnv: z
        .string()
        .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name')
        .optional(),
      agent: z.boolean().default(true),
      knownHosts: localPath.default('~/.ssh/known_hosts'),
      hostKeyPolicy: z.enum(['strict', 'accept-new', 'off']).default('strict'),
      /** Commands at once per connection; keep it below sshd's MaxSessions (default 10): cancelling takes one more. */
      maxSessions: z.number().int().min(1).max(63).default(8),
      connectTimeout: duration.default('10s'),
      /**
       * OpenSSH client config applied to every host (HostName, User, Port, IdentityFile, ProxyJump, Include,
       * and Match where the ssh binary is installed): a file, like ssh -F, or false to read none. Default: what
       * a plain `ssh` reads, ~/.ssh/config and /etc/ssh/ssh_config. Values set in this file win over it.
       */
      sshConfig: z.union([localPath, z.literal(false)]).optional(),
      /**
       * Jump host(s) in front of every node, like ssh -J: `[user@]host[:port]`, a list or a comma list for a
       * chain (first hop first), or `none` to ignore ProxyJump from the ssh config. Host keys are checked at
       * every hop; one connection per jump host is shared by all nodes behind it.
       */
      jump: z
        .union([
          z.literal('none'),
          z.string().refine((v) => v.split(',').every(isJumpHop), {
            message: 'expected jump hosts as [user@]host[:port], separated by commas, or none',
          }),
          z.array(jumpHop).min(1),
        ])
        .optional(),
    })
    .strict(),
]);

/**
 * Shutting down by request instead of by signal (`masqctl shutdown`, an HTTP POST with curl): run on the
 * node (default) or on this machine, after the process identity is recorded. Escalation still signals.
 */
const gracefulCommand = z.union([
  shellTemplate.transform((command) => ({ command, on: 'node' as const })),
  z.object({ command: shellTemplate, on: z.enum(['node', 'controller']).default('node') }).strict(),
]);

const service = z.discriminatedUnion('type', [
  z
    .object({
      type: z.literal('systemd'),
      unit: unitName,
      signal: signalName.default('TERM'),
      /** systemctl kill --kill-whom: the main process only, or every process of the unit. */
      killWhom: z.enum(['main', 'all']).default('main'),
      /** Prefix systemctl with `sudo -n` for non-root SSH users. */
      sudo: z.boolean().default(false),
      gracefulCommand: gracefulCommand.optional(),
    })
    .strict(),
  z
    .object({
      type: z.literal('command'),
      signal: signalName.default('TERM'),
      /** Prints the main PID of the running service; empty output or a non-zero exit means not running. */
      status: shellTemplate,
      /** Sends {signal} to the service (default: kill -s {signal} {pid}). */
      kill: shellTemplate.default('kill -s {signal} {pid}'),
      restart: shellTemplate,
      gracefulCommand: gracefulCommand.optional(),
    })
    .strict(),
]);

const haproxyAddress = z.union([
  absolutePath,
  z.string().regex(/^tcp:[A-Za-z0-9.-]+:\d{1,5}$/, 'expected a unix socket path or tcp:host:port'),
]);

/** Text compared with what a load balancer holds or sent to its API: {host}, {vars.x}… go in as they are. */
const valueTemplate = z.string().min(1, 'expected a value or a template such as {host}:{vars.port}');
const lbUrlTemplate = z
  .string()
  .regex(/^https?:\/\//, 'expected an http:// or https:// URL (templates like {lbServer} allowed)');
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name');
/** RFC 9110 5.1 token. */
const headerName = z.string().regex(/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/, 'expected an HTTP header name');
const httpStatus = z.number().int().min(100).max(599);
const httpStatuses = z.union([httpStatus, z.array(httpStatus).min(1)]);
const lbStateName = z.enum(['up', 'down', 'drain', 'maint', 'absent']);

const nginxLoadBalancer = z
  .object({
    type: z.literal('nginx'),
    /** The file holding `upstream NAME { server …; }`, included from nginx.conf: graceroll rewrites it. */
    upstreamFile: absolutePath,
    upstream: lbName,
    /** The nginx host, reached over SSH (same transport settings as the nodes); omit for this machine. */
    host: hostname.optional(),
    /** How a node is written in the upstream block: compared with each `server` address. */
    server: valueTemplate.default('{host}:{vars.port}'),
    /** Checks the edited config before the reload; when it fails the file is put back. */
    test: shellTemplate.default('nginx -t'),
    reload: shellTemplate.default('nginx -s reload'),
    /** The master's PID file: its old workers are watched until the reload has taken effect. */
    pidFile: absolutePath.default('/run/nginx.pid'),
    /** Run the file edits, test and reload through `sudo -n` (a non-root SSH user). */
    sudo: z.boolean().default(false),
  })
  .strict();

const caddyLoadBalancer = z
  .object({
    type: z.literal('caddy'),
    /** Caddy's admin API. */
    admin: z
      .string()
      .regex(/^https?:\/\/[^/?#\s]+\/?$/, 'expected the admin API address as http://host:port')
      .default('http://localhost:2019'),
    /** The "@id" of the reverse_proxy handler whose upstreams are the nodes. */
    handlerId: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'expected an @id made of letters, digits, "_.:-"'),
    /** How a node is written as an upstream: its `dial` address. */
    dial: valueTemplate.default('{host}:{vars.port}'),
    timeout: duration.default('10s'),
  })
  .strict();

const httpLbCall = (method: 'GET' | 'POST') =>
  z
    .object({
      method: z.enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE']).default(method),
      url: lbUrlTemplate,
      /** A string is sent as written; an object is sent as JSON. Templates in either are filled in. */
      body: z.union([z.string(), z.record(z.unknown())]).optional(),
      headers: z.record(headerName, z.string()).default({}),
      /** Headers whose value is read from an environment variable, never printed: {Authorization: LB_TOKEN}. */
      headersFromEnv: z.record(headerName, envName).default({}),
      /** Default: any 2xx. */
      expectStatus: httpStatuses.optional(),
    })
    .strict();

const httpLbState = httpLbCall('GET')
  .extend({
    /** A JSON field (dot path) holding the state: up, down, drain, maint, absent, or a word mapped by `values`. */
    jsonPath: z.string().min(1).optional(),
    /** The load balancer's words for the states, e.g. {READY: up, DRAIN: drain, MAINT: maint}. */
    values: z.record(z.string(), lbStateName).optional(),
    /** Or: a JSON field and its value while the node is in rotation; any other value counts as out (maint). */
    upPath: z.string().min(1).optional(),
    upValue: z.union([z.string(), z.number(), z.boolean()]).optional(),
    /** A JSON field holding the node's active sessions. */
    sessionsPath: z.string().min(1).optional(),
    /** Answers that mean the load balancer does not know the node, e.g. 404. */
    absentStatus: httpStatuses.optional(),
  })
  .strict()
  .superRefine((state, ctx) => {
    const byPath = state.upPath !== undefined || state.upValue !== undefined;
    if (state.jsonPath === undefined && !byPath)
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give jsonPath, or upPath and upValue' });
    else if (state.jsonPath !== undefined && byPath)
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['jsonPath'],
        message: 'give jsonPath or upPath/upValue, not both',
      });
    else if (byPath && (state.upPath === undefined || state.upValue === undefined))
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: [state.upPath === undefined ? 'upPath' : 'upValue'],
        message: 'upPath and upValue go together',
      });
    if (state.values !== undefined && state.jsonPath === undefined)
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['values'], message: 'values needs jsonPath' });
  });

const httpLoadBalancer = z
  .object({
    type: z.literal('http'),
    deregister: httpLbCall('POST'),
    register: httpLbCall('POST'),
    state: httpLbState,
    /** Sent with every request; a request's own headers win. */
    headers: z.record(headerName, z.string()).default({}),
    headersFromEnv: z.record(headerName, envName).default({}),
    insecure: z.boolean().default(false),
    timeout: duration.default('10s'),
  })
  .strict();

const awsTargetGroupLoadBalancer = z
  .object({
    type: z.literal('aws-target-group'),
    targetGroupArn: z
      .string()
      .regex(
        /^arn:aws[a-z-]*:elasticloadbalancing:[a-z0-9-]+:\d{12}:targetgroup\/[A-Za-z0-9-]{1,32}\/[0-9a-f]+$/,
        'expected a target group ARN: arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID',
      ),
    /** Default: the region in the ARN. */
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, 'expected an AWS region such as eu-west-1')
      .optional(),
    /** The node's target: an instance ID, an IP address or a Lambda ARN. */
    targetId: valueTemplate.default('{vars.instanceId}'),
    /** The port the target is registered on (a number or a template); omit for the target group's port. */
    port: z.union([port, valueTemplate]).optional(),
    /** Another ELBv2 endpoint: a VPC interface endpoint, or a local server in tests. */
    endpoint: z
      .string()
      .regex(/^https?:\/\//, 'expected an http:// or https:// URL')
      .optional(),
  })
  .strict();

const loadBalancer = z.discriminatedUnion('type', [
  z.object({ type: z.literal('none') }).strict(),
  z
    .object({
      type: z.literal('haproxy'),
      /** Runtime API: a unix socket path or `tcp:host:port`. */
      socket: haproxyAddress,
      /** Reach a unix socket on this host over SSH (same transport settings as the nodes); omit for local. */
      host: hostname.optional(),
      backend: lbName,
      /** States set on deregister, in order (haproxy: `set server B/S state …`). */
      deregisterStates: z
        .array(z.enum(['drain', 'maint']))
        .min(1)
        .default(['drain', 'maint']),
    })
    .strict(),
  z
    .object({
      type: z.literal('command'),
      deregister: shellTemplate,
      register: shellTemplate,
      /**
       * Prints the node's LB state as `up`, `down`, `drain`, `maint` or `absent`, optionally followed by
       * the number of active sessions: `drain 3`.
       */
      state: shellTemplate,
    })
    .strict(),
  nginxLoadBalancer,
  caddyLoadBalancer,
  httpLoadBalancer,
  awsTargetGroupLoadBalancer,
]);

const httpProbe = z
  .object({
    type: z.literal('http'),
    url: z
      .string()
      .regex(/^https?:\/\//, 'expected an http:// or https:// URL (templates like {host} allowed)'),
    method: z.enum(['GET', 'HEAD']).default('GET'),
    expectStatus: z.union([z.number().int(), z.array(z.number().int()).min(1)]).default(200),
    bodyContains: z.string().optional(),
    /** A JSON field (dot path) and the value it must equal, e.g. {path: inflight, equals: 0}. */
    json: z
      .object({ path: z.string().min(1), equals: z.union([z.string(), z.number(), z.boolean(), z.null()]) })
      .strict()
      .optional(),
    /** For drain probes: an endpoint that no longer answers counts as drained. */
    unreachableIsPass: z.boolean().default(false),
    insecure: z.boolean().default(false),
    timeout: duration.default('2s'),
  })
  .strict();

const tcpProbe = z
  .object({ type: z.literal('tcp'), host: z.string().optional(), port, timeout: duration.default('2s') })
  .strict();

const socketFileProbe = z
  .object({
    type: z.literal('socket-file'),
    path: absolutePath,
    state: z.enum(['absent', 'present']).default('absent'),
  })
  .strict();

const connectionsProbe = z
  .object({
    type: z.literal('connections'),
    /** Passes when no established TCP connection has this local port (from `ss` on the node). */
    port,
  })
  .strict();

const processExitedProbe = z.object({ type: z.literal('process-exited') }).strict();
const lbSessionsProbe = z.object({ type: z.literal('lb-sessions') }).strict();
const commandProbe = z
  .object({ type: z.literal('command'), command: shellTemplate, timeout: duration.default('10s') })
  .strict();

export const drainProbe = z.discriminatedUnion('type', [
  httpProbe,
  tcpProbe,
  socketFileProbe,
  connectionsProbe,
  processExitedProbe,
  lbSessionsProbe,
  commandProbe,
]);
export const healthProbe = z.discriminatedUnion('type', [httpProbe, tcpProbe, commandProbe]);

const escalationStep = z.object({ signal: signalName, deadline: duration }).strict();

const hook = z.union([
  shellTemplate.transform((command) => ({ command, on: 'node' as const, deadline: 60_000 })),
  z
    .object({
      command: shellTemplate,
      /** Run on the node (default) or on the machine running graceroll. */
      on: z.enum(['node', 'controller']).default('node'),
      deadline: duration.default('60s'),
    })
    .strict(),
]);

const node = z
  .object({
    name: nodeName,
    host: hostname.optional(),
    port: port.optional(),
    user: z
      .string()
      .regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'expected a user name')
      .optional(),
    /** The server's name in the load balancer (default: the node name). */
    lbServer: lbName.optional(),
    /** Values for templates: {vars.NAME}. */
    vars: z
      .record(
        z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a variable name'),
        z.union([
          z.string().refine((v) => !v.includes('\0'), 'a NUL byte cannot be passed to a command'),
          z.number(),
        ]),
      )
      .default({}),
  })
  .strict();

export const fleetSchema = z
  .object({
    $schema: z.string().optional(),
    name: nodeName.default('fleet'),
    transport: transport.default({ type: 'local' }),
    service,
    loadBalancer: loadBalancer.default({ type: 'none' }),
    drain: z
      .object({
        probes: z.array(drainProbe).default([{ type: 'process-exited' }]),
        interval: duration.default('200ms'),
        deadline: duration.default('30s'),
        /** At the drain deadline: escalate through `escalation`, or halt the rollout leaving the node out. */
        onDeadline: z.enum(['escalate', 'halt']).default('escalate'),
        /**
         * When to wait for the load balancer's sessions to end: before the graceful signal (default: HTTP
         * clients leave once the node is out), with the drain (long-lived connections — WebSocket, SSE,
         * gRPC streams — only leave after the signal; the wait runs beside the drain probes with its own
         * deadline, deadlines.lbDrain), or never.
         */
        lbSessions: z.enum(['before-signal', 'with-drain', 'never']).default('before-signal'),
        /** After a node whose drain was forced (escalated, or exited before it drained): go on, or halt. */
        onForced: z.enum(['continue', 'halt']).default('continue'),
        /** A forced drain is still a success (exit 0) instead of its own status, forced (exit 6). */
        forcedIsOk: z.boolean().default(false),
        escalation: z.array(escalationStep).default([
          { signal: 'TERM', deadline: '10s' },
          { signal: 'KILL', deadline: '5s' },
        ]),
      })
      .strict()
      .default({}),
    health: z
      .object({
        probes: z.array(healthProbe).default([]),
        consecutive: z.number().int().min(1).max(1000).default(3),
        interval: duration.default('500ms'),
      })
      .strict()
      .default({}),
    deadlines: z
      .object({
        command: duration.default('30s'),
        deregister: duration.default('30s'),
        lbDrain: duration.default('60s'),
        restart: duration.default('60s'),
        verify: duration.default('60s'),
        register: duration.default('60s'),
        rollout: duration.default('1h'),
      })
      .strict()
      .default({}),
    rollout: z
      .object({
        batchSize: countOrPercent.default(1),
        /** Size of a first, separate batch. */
        canary: z.number().int().min(0).default(0),
        /** Minimum time a node stays healthy after re-registration before the next batch. */
        settle: duration.default('0s'),
        /** Nodes that may fail before the rollout halts (0: halt at the first failure). */
        maxFailures: countOrPercent.default(0),
        /**
         * Most nodes out of rotation at any moment, failed ones included. Default: the batch size, but
         * never the whole fleet (a larger batch is capped with a notice); 100% allows every node at once.
         */
        maxUnavailable: countOrPercent.optional(),
        /**
         * After the canary batch: `confirm` asks on a terminal (--yes skips the question), a duration
         * waits that long (watching for Ctrl-C) and goes on, `none` goes straight on.
         */
        pauseAfterCanary: z.union([z.enum(['confirm', 'none']), duration]).default('confirm'),
      })
      .strict()
      .default({}),
    /** Commands at step boundaries; their output goes to the journal. */
    hooks: z
      .object({
        beforeDeregister: z.array(hook).default([]),
        beforeSignal: z.array(hook).default([]),
        afterRestart: z.array(hook).default([]),
        afterRegister: z.array(hook).default([]),
      })
      .strict()
      .default({}),
    /**
     * The rollout lock: a directory created atomically where every rollout of this fleet must go. By
     * default on the load balancer host when it is reached over SSH (haproxy, nginx), else on this machine.
     */
    lock: z
      .object({
        host: hostname.optional(),
        path: absolutePath.optional(),
        /**
         * A lock whose heartbeat is older than this is stale and may be taken over (never one whose owner
         * is a live process on this machine). At least 4 heartbeats (20s): the holder beats every 5s.
         */
        staleAfter: duration
          .refine((ms) => ms >= MIN_STALE_AFTER_MS, {
            message: `must be at least ${MIN_STALE_AFTER_MS / 1000}s (${STALE_FLOOR_HEARTBEATS} heartbeats of ${HEARTBEAT_MS / 1000}s): a shorter one lets a second rollout take over a live one`,
          })
          .default('2m'),
      })
      .strict()
      .default({}),
    /** Where the journal is written (default: .graceroll/NAME.journal.json beside the config). */
    journal: localPath.optional(),
    nodes: z.array(node).min(1, 'expected at least one node'),
  })
  .strict();

export type FleetInput = z.input<typeof fleetSchema>;
export type FleetParsed = z.output<typeof fleetSchema>;
export type DrainProbe = z.output<typeof drainProbe>;
export type HealthProbe = z.output<typeof healthProbe>;
export type HttpProbe = z.output<typeof httpProbe>;

import type { FleetNode, LoadBalancerConfig } from '../config/types.js';
import { fail, OK, type Outcome, type Result } from '../outcome.js';
import { fillUrl, missingValues, nodeValues, type TemplateValues } from '../template.js';
import { fillText } from './fill-text.js';
import { firstLine, httpRequest, type HttpAnswer } from './http-request.js';
import type { LbServerState, LbServerStateName, LoadBalancer } from './types.js';

type HttpLbConfig = Extract<LoadBalancerConfig, { type: 'http' }>;
type HttpLbCall = HttpLbConfig['deregister'];
type HttpLbStateCall = HttpLbConfig['state'];

const STATES: readonly LbServerStateName[] = ['up', 'down', 'drain', 'maint', 'absent'];
const REDACTED = '<redacted>';

/** A dot path into parsed JSON: `servers.0.state`, `data.status`. */
export function jsonAt(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

/** Fills every string in a JSON body template (keys stay as written). */
function fillJson(value: unknown, values: TemplateValues): unknown {
  if (typeof value === 'string') return fillText(value, values);
  if (Array.isArray(value)) return value.map((v) => fillJson(v, values));
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillJson(v, values)]));
  return value;
}

function stringsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringsOf);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(stringsOf);
  return [];
}

const statusMatches = (status: number, expected: number | number[] | undefined) =>
  expected === undefined ? status >= 200 && status < 300 : [expected].flat().includes(status);

/** Reads the state answer: a state word at jsonPath (mapped through `values`), or upPath = upValue. */
export function parseStateAnswer(
  state: HttpLbStateCall,
  status: number,
  body: string,
): Result<LbServerState> {
  if (state.absentStatus !== undefined && [state.absentStatus].flat().includes(status))
    return { ok: true, value: { state: 'absent', detail: `HTTP ${status}` } };
  if (!statusMatches(status, state.expectStatus)) return fail(`HTTP ${status}: ${firstLine(body)}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return fail(`HTTP ${status}: the answer is not JSON: ${firstLine(body)}`);
  }
  let name: LbServerStateName;
  let detail: string;
  if (state.jsonPath !== undefined) {
    const raw = jsonAt(parsed, state.jsonPath);
    const word = String(raw);
    const mapped = state.values ? state.values[word] : (word.toLowerCase() as LbServerStateName);
    if (raw === undefined || !mapped || !STATES.includes(mapped)) {
      const expected = state.values ? Object.keys(state.values).join(', ') : STATES.join(', ');
      return fail(`${state.jsonPath} is ${JSON.stringify(raw)}; expected one of ${expected}`);
    }
    name = mapped;
    detail = `${state.jsonPath}: ${JSON.stringify(raw)}`;
  } else {
    const raw = jsonAt(parsed, state.upPath!);
    name = raw === state.upValue ? 'up' : 'maint';
    detail = `${state.upPath}: ${JSON.stringify(raw)}`;
  }
  let sessions: number | undefined;
  if (state.sessionsPath !== undefined) {
    const raw = jsonAt(parsed, state.sessionsPath);
    sessions = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : (raw as number);
    if (!Number.isInteger(sessions) || sessions < 0)
      return fail(`${state.sessionsPath} is ${JSON.stringify(raw)}; expected a session count`);
  }
  return { ok: true, value: { state: name, sessions, detail } };
}

/**
 * Any load balancer with an HTTP API: three requests the operator describes. Node fields are templated
 * into the URL (percent-encoded) and body (as they are); headers from environment variables are read
 * when a request is sent, never shown (describe() prints <redacted>) and scrubbed from every message.
 */
export function createHttpLoadBalancer(config: HttpLbConfig): LoadBalancer {
  const secretHeaders = (call: HttpLbCall) => ({ ...config.headersFromEnv, ...call.headersFromEnv });
  const request = (call: HttpLbCall, node: FleetNode) => {
    const values = nodeValues(node);
    const url = fillUrl(call.url, values);
    const body =
      call.body === undefined
        ? undefined
        : typeof call.body === 'string'
          ? fillText(call.body, values)
          : JSON.stringify(fillJson(call.body, values));
    const missing = [
      ...missingValues(call.url, values),
      ...stringsOf(call.body).flatMap((s) => missingValues(s, values)),
    ];
    return { url, body, missing, headers: { ...config.headers, ...call.headers } };
  };
  const describeCall = (call: HttpLbCall, node: FleetNode) => {
    const { url, body, headers } = request(call, node);
    const shown = [
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ...Object.keys(secretHeaders(call)).map((k) => `${k}: ${REDACTED}`),
    ];
    return `${call.method} ${url}${body === undefined ? '' : ` ${body}`}${shown.length ? ` (${shown.join('; ')})` : ''}`;
  };

  const send = async (
    call: HttpLbCall,
    node: FleetNode,
    signal: AbortSignal,
  ): Promise<Result<HttpAnswer>> => {
    const { url, body, missing, headers } = request(call, node);
    if (missing.length)
      return fail(`${call.url}: ${[...new Set(missing)].map((k) => `{${k}}`).join(', ')} has no value`);
    const secrets: string[] = [];
    for (const [header, variable] of Object.entries(secretHeaders(call))) {
      const value = process.env[variable];
      if (value === undefined || value === '')
        return fail(
          `${call.method} ${url}: the environment variable ${variable} (for the ${header} header) is not set`,
        );
      headers[header] = value;
      secrets.push(value);
    }
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
      headers['content-type'] = typeof call.body === 'string' ? 'text/plain' : 'application/json';
    const answer = await httpRequest(url, {
      method: call.method,
      headers,
      body,
      signal,
      timeoutMs: config.timeout,
      insecure: config.insecure,
    });
    const scrub = (text: string) => secrets.reduce((t, s) => t.split(s).join(REDACTED), text);
    if (!answer.ok) return fail(scrub(`${call.method} ${url}: ${answer.reason}`));
    return { ok: true, value: { ...answer.value, body: scrub(answer.value.body) } };
  };

  const change = async (call: HttpLbCall, node: FleetNode, signal: AbortSignal): Promise<Outcome> => {
    const answer = await send(call, node, signal);
    if (!answer.ok) return answer;
    const { status, body } = answer.value;
    if (statusMatches(status, call.expectStatus)) return OK;
    return fail(`${call.method} ${request(call, node).url}: HTTP ${status}: ${firstLine(body)}`);
  };

  return {
    type: 'http',
    describe: (node) => ({
      deregister: [describeCall(config.deregister, node)],
      register: [describeCall(config.register, node)],
      state: [describeCall(config.state, node)],
    }),
    async state(node, signal) {
      const answer = await send(config.state, node, signal);
      if (!answer.ok) return answer;
      const parsed = parseStateAnswer(config.state, answer.value.status, answer.value.body);
      return parsed.ok
        ? parsed
        : fail(`${config.state.method} ${request(config.state, node).url}: ${parsed.reason}`);
    },
    deregister: (node, signal) => change(config.deregister, node, signal),
    register: (node, signal) => change(config.register, node, signal),
    close: () => Promise.resolve(),
  };
}

import http from 'node:http';
import https from 'node:https';
import type { HttpProbe } from '../config/types.js';
import { fail, OK, type Outcome } from '../outcome.js';
import { timerMs } from '../config/duration.js';

const MAX_BODY = 64 * 1024;

function jsonField(value: unknown, path: string): unknown {
  let current = value;
  for (const key of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  return current;
}

export function checkHttpAnswer(probe: HttpProbe, status: number, body: string): Outcome {
  const expected = Array.isArray(probe.expectStatus) ? probe.expectStatus : [probe.expectStatus];
  if (!expected.includes(status)) return fail(`HTTP ${status} (expected ${expected.join(' or ')})`);
  if (probe.bodyContains !== undefined && !body.includes(probe.bodyContains)) {
    return fail(`HTTP ${status} body does not contain ${JSON.stringify(probe.bodyContains)}`);
  }
  if (probe.json) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body);
    } catch {
      return fail(`HTTP ${status} body is not JSON`);
    }
    const actual = jsonField(parsed, probe.json.path);
    if (actual !== probe.json.equals) {
      return fail(
        `${probe.json.path} is ${JSON.stringify(actual)} (waiting for ${JSON.stringify(probe.json.equals)})`,
      );
    }
  }
  return OK;
}

/**
 * One HTTP(S) request with node:http rather than fetch: Node's fetch refuses "bad ports" such as 6000,
 * which real services do listen on.
 */
export function httpProbe(probe: HttpProbe, url: string, signal: AbortSignal): Promise<Outcome> {
  return new Promise((resolve) => {
    const client = url.startsWith('https:') ? https : http;
    const timeout = AbortSignal.timeout(timerMs(probe.timeout));
    const request = client.request(
      url,
      {
        method: probe.method,
        signal: AbortSignal.any([signal, timeout]),
        agent: false,
        rejectUnauthorized: !probe.insecure,
        headers: { 'user-agent': 'graceroll', connection: 'close' },
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_BODY) chunks.push(chunk);
        });
        response.on('end', () =>
          resolve(checkHttpAnswer(probe, response.statusCode ?? 0, Buffer.concat(chunks).toString('utf8'))),
        );
        response.on('error', (error) => resolve(fail(`${url}: ${error.message}`)));
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (timeout.aborted) return resolve(fail(`${url}: no answer within ${probe.timeout}ms`));
      if (probe.unreachableIsPass && (error.code === 'ECONNREFUSED' || error.code === 'ECONNRESET')) {
        return resolve(OK);
      }
      resolve(fail(`${url}: ${error.code ?? error.message}`));
    });
    request.end();
  });
}

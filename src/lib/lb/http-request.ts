import http from 'node:http';
import https from 'node:https';
import { fail, type Result } from '../outcome.js';
import { timerMs } from '../config/duration.js';

/** A load balancer API's answer is small; anything past this is cut off. */
const MAX_BODY = 1024 * 1024;

export interface HttpAnswer {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
  /** Caddy sends its config ETag as a trailer. */
  trailers: NodeJS.Dict<string>;
}

export interface HttpRequestOptions {
  method: string;
  headers?: Record<string, string>;
  body?: string;
  timeoutMs: number;
  signal: AbortSignal;
  insecure?: boolean;
}

/**
 * One request with node:http rather than fetch: Node's fetch refuses "bad ports" (6000, 6665…) that admin
 * APIs do listen on. Connection errors and timeouts are values; the caller names the request.
 */
export function httpRequest(url: string, options: HttpRequestOptions): Promise<Result<HttpAnswer>> {
  return new Promise((resolve) => {
    let target: URL;
    try {
      target = new URL(url);
    } catch {
      return resolve(fail(`not a URL: ${url}`));
    }
    const client = target.protocol === 'https:' ? https : http;
    const timeout = AbortSignal.timeout(timerMs(options.timeoutMs));
    const headers: Record<string, string> = {
      'user-agent': 'graceroll',
      connection: 'close',
      ...options.headers,
    };
    if (options.body !== undefined) headers['content-length'] = String(Buffer.byteLength(options.body));
    const request = client.request(
      target,
      {
        method: options.method,
        headers,
        agent: false,
        signal: AbortSignal.any([options.signal, timeout]),
        rejectUnauthorized: !options.insecure,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_BODY) chunks.push(chunk);
        });
        response.on('end', () =>
          resolve({
            ok: true,
            value: {
              status: response.statusCode ?? 0,
              body: Buffer.concat(chunks).toString('utf8'),
              headers: response.headers,
              trailers: response.trailers,
            },
          }),
        );
        response.on('error', (error) => resolve(fail(error.message)));
      },
    );
    request.on('error', (error: NodeJS.ErrnoException) => {
      if (timeout.aborted) resolve(fail(`no answer within ${options.timeoutMs}ms`));
      else if (options.signal.aborted) resolve(fail('cancelled'));
      else resolve(fail(error.code ?? error.message));
    });
    request.end(options.body);
  });
}

/** The first line of an answer's body, short enough for a message. */
export const firstLine = (body: string): string => {
  const line = body.trim().split('\n')[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
};

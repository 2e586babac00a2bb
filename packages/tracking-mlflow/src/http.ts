/**
 * The HTTP layer: base URL, auth header, timeout, and retries with jittered exponential backoff on network
 * errors and on 408/429/5xx (honouring `Retry-After`). Every other error surfaces as an `MlflowError` carrying
 * the server's `error_code` and message.
 */
import type { AuthProvider } from './auth.js';
import { MlflowError, MlflowNetworkError, TRANSIENT_STATUSES } from './errors.js';

export interface RetryOptions {
  /** Retries after the first try (the Python client uses 7). */
  maxRetries: number;
  /** First backoff; doubles on each retry. */
  backoffMs: number;
  /** Cap for one wait (also caps `Retry-After`). */
  maxBackoffMs: number;
  /** 0..1: each wait is `base · (1 + jitter · random())`, so workers that failed together do not retry together. */
  jitter: number;
}

export const DEFAULT_RETRY: RetryOptions = { maxRetries: 5, backoffMs: 500, maxBackoffMs: 30_000, jitter: 1 };

export interface TransportOptions {
  /** `http(s)://host[:port][/prefix]`. */
  trackingUri: string;
  auth: AuthProvider;
  timeoutMs: number;
  retry: RetryOptions;
  /** Called before each retry wait (logging, tests). */
  onRetry?: (info: { endpoint: string; attempt: number; waitMs: number; error: Error }) => void;
}

export interface RequestOptions {
  json?: unknown;
  query?: Record<string, string | number | undefined>;
  /** A raw body; a function so a retry can make a fresh stream. */
  body?: () => NonNullable<RequestInit["body"]> | Promise<NonNullable<RequestInit["body"]>>;
  headers?: Record<string, string>;
  /** Turn retries off (probes). */
  retry?: boolean;
}

const NOT_DELIVERED_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function errorCodeOf(error: unknown): string | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function backoffDelay(retry: RetryOptions, attempt: number, random = Math.random): number {
  const base = Math.min(retry.maxBackoffMs, retry.backoffMs * 2 ** attempt);
  return Math.min(retry.maxBackoffMs, base * (1 + retry.jitter * random()));
}

export class HttpTransport {
  readonly baseUrl: string;

  constructor(readonly options: TransportOptions) {
    const uri = options.trackingUri.replace(/\/+$/, '');
    if (!/^https?:\/\//i.test(uri)) {
      throw new Error(
        `MLflow tracking URI '${options.trackingUri}' is not http(s). This client talks to an MLflow server over REST: ` +
          `start one with \`mlflow server --serve-artifacts\` and set MLFLOW_TRACKING_URI=http://host:port. ` +
          `(file:, sqlite: and other store URIs are local to a Python process; record runs locally and replay them with \`dfd sync\`.)`,
      );
    }
    this.baseUrl = uri;
  }

  url(path: string, query?: RequestOptions['query']): string {
    const url = new URL(`${this.baseUrl}/${path.replace(/^\/+/, '')}`);
    for (const [key, value] of Object.entries(query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, String(value));
    }
    return url.toString();
  }

  /** Sends a request and returns the successful Response (body unread). */
  async send(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const endpoint = `${method} ${path}`;
    const maxRetries = options.retry === false ? 0 : this.options.retry.maxRetries;
    for (let attempt = 0; ; attempt++) {
      let waitMs: number | undefined;
      let failure: Error;
      try {
        const response = await this.once(method, path, options, endpoint);
        if (response.ok) return response;
        failure = await toMlflowError(response, endpoint);
        if (!TRANSIENT_STATUSES.has(response.status)) throw failure;
        waitMs = parseRetryAfter(response.headers.get('retry-after'));
      } catch (error) {
        if (error instanceof MlflowError && !TRANSIENT_STATUSES.has(error.status)) throw error;
        failure = error as Error;
      }
      if (attempt >= maxRetries) throw failure;
      const delay = Math.min(this.options.retry.maxBackoffMs, waitMs ?? backoffDelay(this.options.retry, attempt));
      this.options.onRetry?.({ endpoint, attempt: attempt + 1, waitMs: delay, error: failure });
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  async json<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, options);
    const text = await response.text();
    if (!text) return {} as T;
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new MlflowError(`${method} ${path}: the server answered ${response.status} with a body that is not JSON: ${text.slice(0, 200)}`, 'BAD_RESPONSE', response.status, `${method} ${path}`);
    }
  }

  private async once(method: string, path: string, options: RequestOptions, endpoint: string): Promise<Response> {
    const headers: Record<string, string> = { ...options.headers };
    const { authorizationHeader } = await this.options.auth.authenticate();
    if (authorizationHeader) headers.authorization = authorizationHeader;
    let body: RequestInit["body"];
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.body) {
      body = await options.body();
    }
    const init: RequestInit & { duplex?: 'half' } = {
      method,
      headers,
      body,
      signal: AbortSignal.timeout(this.options.timeoutMs),
    };
    if (body && typeof (body as ReadableStream).getReader === 'function') init.duplex = 'half';
    try {
      return await fetch(this.url(path, options.query), init);
    } catch (error) {
      const code = errorCodeOf(error) ?? (error as Error).name;
      const timedOut = code === 'TimeoutError' || code === 'AbortError' || code === 'ABORT_ERR';
      const detail = timedOut ? `no answer within ${this.options.timeoutMs} ms` : `${(error as Error).message}${code ? ` (${code})` : ''}`;
      throw new MlflowNetworkError(
        `${endpoint}: cannot reach the MLflow server at ${this.baseUrl}: ${detail}`,
        endpoint,
        !NOT_DELIVERED_CODES.has(String(code)),
        { cause: error },
      );
    }
  }
}

async function toMlflowError(response: Response, endpoint: string): Promise<MlflowError> {
  const text = await response.text().catch(() => '');
  let code = `HTTP_${response.status}`;
  let message = text.slice(0, 500) || response.statusText;
  try {
    const parsed = JSON.parse(text) as { error_code?: string; message?: string; detail?: unknown };
    if (parsed.error_code) code = parsed.error_code;
    if (parsed.message) message = parsed.message;
    else if (parsed.detail !== undefined) message = typeof parsed.detail === 'string' ? parsed.detail : JSON.stringify(parsed.detail);
  } catch {
    // not JSON (a proxy's HTML page): keep the text
  }
  return new MlflowError(`${endpoint} failed (${response.status} ${code}): ${message}`, code, response.status, endpoint);
}

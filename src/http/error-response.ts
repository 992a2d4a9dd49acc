import type { Context } from 'koa';
import type { Logger } from 'pino';
import { CastellanError, ServiceUnavailableError } from '../errors/errors.ts';
import { isStoreUnavailable } from '../storage/unavailable.ts';

export interface OAuthErrorBody {
  error: string;
  error_description: string;
}

export interface ErrorResponse {
  status: number;
  body: OAuthErrorBody;
  headers: Record<string, string>;
}

/**
 * Whether an error should be a page rather than JSON: only when the request prefers HTML
 * (a browser navigating), so API clients and fetch with its default Accept get JSON.
 */
export function prefersHtml(ctx: Pick<Context, 'accepts'>): boolean {
  return ctx.accepts('json', 'html') === 'html';
}

/** Koa/http-errors style errors (e.g. a throw from a body parser) expose a status. */
function httpStatusOf(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const status = (err as { status?: unknown }).status ?? (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && status >= 400 && status < 600 ? status : undefined;
}

/** oidc-provider's errors carry the OAuth code in `error` and an exposable description. */
function oidcErrorOf(err: unknown): { error: string; description: string | undefined } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { error, error_description: description, expose } = err as Record<string, unknown>;
  if (typeof error !== 'string' || expose !== true) return undefined;
  return { error, description: typeof description === 'string' ? description : undefined };
}

/**
 * The one mapping from any thrown value to an OAuth error response (RFC 6749 §5.2 shape).
 * Unknown errors become a generic 500 server_error: details go to the log, never the client.
 */
export function toErrorResponse(thrown: unknown, log?: Logger): ErrorResponse {
  const err = isStoreUnavailable(thrown) ? new ServiceUnavailableError() : thrown;
  if (err instanceof CastellanError) {
    if (err instanceof ServiceUnavailableError) log?.warn({ err: thrown }, 'storage unreachable');
    return {
      status: err.status,
      body: { error: err.oauthError, error_description: err.message },
      headers: { ...err.headers },
    };
  }
  const status = httpStatusOf(err);
  const oidc = oidcErrorOf(err);
  if (oidc && status && status < 500) {
    return { status, body: { error: oidc.error, error_description: oidc.description ?? oidc.error }, headers: {} };
  }
  if (status && status < 500) {
    const description = status === 413 ? 'request body too large' : status === 415 ? 'unsupported content type' : 'the request is malformed';
    return { status, body: { error: 'invalid_request', error_description: description }, headers: {} };
  }
  log?.error({ err }, 'unhandled error');
  return {
    status: 500,
    body: { error: 'server_error', error_description: 'the server met an unexpected condition' },
    headers: {},
  };
}

/** RFC 9457 problem details: the admin API's error body (same mapping as above, other shape). */
export interface ProblemDetails {
  /** about:blank: the status says it all; `error` carries Castellan's OAuth-style code. */
  type: 'about:blank';
  title: string;
  status: number;
  detail: string;
  error: string;
}

const STATUS_TITLES: Readonly<Record<number, string>> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type', 429: 'Too Many Requests',
  500: 'Internal Server Error', 503: 'Service Unavailable',
};

/** Renders any thrown value through toErrorResponse as application/problem+json (RFC 9457 §3). */
export function toProblemResponse(thrown: unknown, log?: Logger): { status: number; body: ProblemDetails; headers: Record<string, string> } {
  const { status, body, headers } = toErrorResponse(thrown, log);
  return {
    status,
    headers,
    body: { type: 'about:blank', title: STATUS_TITLES[status] ?? 'Error', status, detail: body.error_description, error: body.error },
  };
}

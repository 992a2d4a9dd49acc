import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import { readFormBody } from './request-body.ts';

/**
 * Leaves a body Castellan has already read for oidc-provider, which falls back to req.body
 * once the request stream is consumed (it says so once per process).
 */
export function handBodyToProvider(ctx: Context, body: Record<string, unknown>): void {
  (ctx.req as IncomingMessage & { body?: unknown }).body = body;
}

/**
 * The form as oidc-provider's own parser would give it (node:querystring): a repeated
 * parameter becomes an array. Object.fromEntries would keep only the last value, so a
 * request with several `resource` values (RFC 8707) would lose all but one, and one with a
 * repeated `grant_type` or `client_id` would pass oidc-provider's duplicate check.
 */
export function formAsProviderBody(form: URLSearchParams): Record<string, string | string[]> {
  // No prototype: a parameter named __proto__ is a parameter like any other.
  const body = Object.create(null) as Record<string, string | string[]>;
  for (const [key, value] of form) {
    const known = body[key];
    if (known === undefined) body[key] = value;
    else if (Array.isArray(known)) known.push(value);
    else body[key] = [known, value];
  }
  return body;
}

/**
 * Reads a form for Castellan's own checks (device polling and code entry, refresh retry)
 * and hands it on to oidc-provider. Anything but a form is left to oidc-provider's answer.
 */
export async function readFormForProvider(ctx: Context): Promise<URLSearchParams | undefined> {
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  const form = await readFormBody(ctx);
  handBodyToProvider(ctx, formAsProviderBody(form));
  return form;
}

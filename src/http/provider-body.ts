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
 * Reads a form for Castellan's own checks (device polling and code entry, refresh retry)
 * and hands it on to oidc-provider. Anything but a form is left to oidc-provider's answer.
 */
export async function readFormForProvider(ctx: Context): Promise<URLSearchParams | undefined> {
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  const form = await readFormBody(ctx);
  handBodyToProvider(ctx, Object.fromEntries(form));
  return form;
}

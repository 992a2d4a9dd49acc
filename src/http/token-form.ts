import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import { readFormBody } from './request-body.ts';

/**
 * Reads a token request's form for Castellan's own checks (device polling, refresh retry)
 * and leaves it as the parsed body for oidc-provider, which reads req.body once the stream
 * is consumed. Anything but a form is left to oidc-provider's own answer.
 */
export async function readTokenForm(ctx: Context): Promise<URLSearchParams | undefined> {
  if (!ctx.is('application/x-www-form-urlencoded')) return undefined;
  const form = await readFormBody(ctx);
  (ctx.req as IncomingMessage & { body?: unknown }).body = Object.fromEntries(form);
  return form;
}

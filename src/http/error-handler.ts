import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { toErrorResponse } from './error-response.ts';

/** Every error thrown by our middleware becomes OAuth error JSON; no stack ever leaves. */
export function errorHandler(log: Logger): Middleware {
  return async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const response = toErrorResponse(err, log);
      if (ctx.headerSent || !ctx.writable) {
        // Typically the client broke the connection mid-request: its doing, not ours, so
        // it must not let anyone fill the error log.
        log.debug({ err: err instanceof Error ? err.message : String(err) }, 'error after the response started');
        return;
      }
      ctx.respond = true;
      ctx.status = response.status;
      for (const [name, value] of Object.entries(response.headers)) ctx.set(name, value);
      ctx.set('Cache-Control', 'no-store');
      ctx.body = response.body;
    }
  };
}

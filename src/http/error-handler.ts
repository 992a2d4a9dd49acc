import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import { NEUTRAL_LOOK, renderErrorPage } from '../interactions/views.ts';
import { prefersHtml, toErrorResponse } from './error-response.ts';

/**
 * Every error thrown by our middleware becomes an OAuth error: JSON, or for a browser that
 * prefers HTML the same error on a small page (no links: nothing here is a validated
 * redirect target). No stack ever leaves.
 */
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
      // The tenant may be unknown (or the very error), so these pages carry no tenant's branding.
      if (prefersHtml(ctx)) renderErrorPage(ctx, NEUTRAL_LOOK, response.body);
      else ctx.body = response.body;
    }
  };
}

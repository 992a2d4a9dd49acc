import type { Context, Middleware } from 'koa';
import type { Logger } from 'pino';
import type { CastellanMetrics } from '../observability/metrics.ts';
import { NEUTRAL_LOOK, renderErrorPage, type PageLook } from '../interactions/views.ts';
import { prefersHtml, toErrorResponse } from './error-response.ts';

/** Where a request's error page look is kept once its tenant is known (ctx.state). */
const LOOK = Symbol('castellan.errorPageLook');

/**
 * Called once the request's tenant is loaded: its error pages then carry that tenant's look.
 * Before that (an unknown tenant, a failing tenant store) they stay neutral.
 */
export function useTenantLookForErrors(ctx: Context, look: PageLook): void {
  (ctx.state as Record<symbol, unknown>)[LOOK] = look;
}

function errorPageLook(ctx: Context): PageLook {
  const look = (ctx.state as Record<symbol, unknown>)[LOOK];
  return look && typeof look === 'object' ? (look as PageLook) : NEUTRAL_LOOK;
}

/**
 * Every error thrown by our middleware becomes an OAuth error: JSON, or for a browser that
 * prefers HTML the same error on a small page (no links: nothing here is a validated
 * redirect target). No stack ever leaves.
 */
export function errorHandler(log: Logger, metrics?: CastellanMetrics): Middleware {
  return async (ctx, next) => {
    const path = ctx.path;
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
      metrics?.castellanError(path, response.body.error);
      ctx.respond = true;
      ctx.status = response.status;
      for (const [name, value] of Object.entries(response.headers)) ctx.set(name, value);
      ctx.set('Cache-Control', 'no-store');
      // The tenant's look once it is known; neutral where the tenant is unknown (or the very error).
      if (prefersHtml(ctx)) renderErrorPage(ctx, errorPageLook(ctx), response.body);
      else ctx.body = response.body;
    }
  };
}

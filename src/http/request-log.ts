import { randomUUID } from 'node:crypto';
import type { Middleware } from 'koa';
import type { Logger } from 'pino';
import type { CastellanMetrics } from '../observability/metrics.ts';

/** A caller's own request id is kept when it is a plain token (it joins logs across services). */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TENANT_PATH = /^\/t\/([^/]{1,64})(?:\/|$)/;

/**
 * One access-log line per request: id, tenant, method, path, status and time. Never the
 * query string or a body: codes, states, tokens and user codes travel there. The line is
 * written when the response is finished or the connection closes, so requests that
 * oidc-provider answers itself are logged alike. The same moment feeds the request metrics
 * (by route class, never the path).
 */
export function requestLog(log: Logger, metrics?: CastellanMetrics): Middleware {
  return async (ctx, next) => {
    const started = performance.now();
    const given = ctx.get('x-request-id');
    const reqId = REQUEST_ID.test(given) ? given : randomUUID();
    ctx.set('X-Request-Id', reqId);
    // Kept now: handing over to oidc-provider rewrites the request's URL.
    const fullPath = ctx.path;
    const path = ctx.path.length > 256 ? `${ctx.path.slice(0, 256)}…` : ctx.path;
    const tenant = TENANT_PATH.exec(ctx.path)?.[1];
    let logged = false;
    const write = () => {
      if (logged) return;
      logged = true;
      const elapsed = performance.now() - started;
      const fields = { reqId, tenant, method: ctx.method, path, status: ctx.res.statusCode, ms: Math.round(elapsed) };
      metrics?.observeRequest(ctx.method, fullPath, ctx.res.statusCode, elapsed / 1000);
      if (ctx.res.writableFinished) log.info(fields, 'request');
      else log.info({ ...fields, aborted: true }, 'request');
    };
    ctx.res.once('finish', write);
    ctx.res.once('close', write);
    await next();
  };
}

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
  // Not async: everything after the request is in the 'close' listener, so there is nothing
  // to await here (one promise and one hop less per request).
  return (ctx, next) => {
    const started = performance.now();
    const given = ctx.req.headers['x-request-id'];
    const reqId = typeof given === 'string' && given !== '' && REQUEST_ID.test(given) ? given : randomUUID();
    // Straight on the node response (Koa's ctx.set ends there too, after checks that cannot apply here).
    ctx.res.setHeader('X-Request-Id', reqId);
    // Kept now: handing over to oidc-provider rewrites the request's URL.
    const fullPath = ctx.path;
    const method = ctx.method;
    const res = ctx.res;
    // Node emits 'close' on every response, after 'finish' when it was sent in full and alone
    // when the connection went first (http.ServerResponse): one listener sees both. It is
    // emitted once per response, so `on` (no once-wrapper allocated per request) is enough.
    res.on('close', () => {
      const elapsed = performance.now() - started;
      metrics?.observeRequest(method, fullPath, res.statusCode, elapsed / 1000);
      // The line is built only when it is written (the bench and quiet deployments log less).
      if (!log.isLevelEnabled('info')) return;
      const path = fullPath.length > 256 ? `${fullPath.slice(0, 256)}…` : fullPath;
      const tenant = TENANT_PATH.exec(fullPath)?.[1];
      const fields = { reqId, tenant, method, path, status: res.statusCode, ms: Math.round(elapsed) };
      if (res.writableFinished) log.info(fields, 'request');
      else log.info({ ...fields, aborted: true }, 'request');
    });
    return next();
  };
}

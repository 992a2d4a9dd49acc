import type { IncomingMessage } from 'node:http';
import type { Context } from 'koa';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';

export interface PublicOrigin {
  host: string;
  protocol: 'http' | 'https';
}

export function publicOriginOf(baseUrl: string): PublicOrigin {
  const url = new URL(baseUrl);
  return { host: url.host, protocol: url.protocol === 'https:' ? 'https' : 'http' };
}

/**
 * oidc-provider runs with proxy=true and builds URLs and cookie flags from these headers:
 * they are always ours, never the client's.
 */
export function pinForwardedHeaders(req: IncomingMessage, origin: PublicOrigin, trustProxy: boolean): void {
  req.headers['x-forwarded-host'] = origin.host;
  req.headers['x-forwarded-proto'] = origin.protocol;
  if (!trustProxy) delete req.headers['x-forwarded-for'];
}

/**
 * Hands a request to a tenant's oidc-provider as if it were mounted at /t/<tenant>.
 * oidc-provider takes its mount path from req.originalUrl cut at the first occurrence of
 * req.url, which is wrong when the tenant id starts like the route (tenant `registry`, POST
 * /t/registry/reg: '/reg' first occurs inside '/registry', giving the mount path '/t'); so
 * we leave originalUrl unset and give the mount path as req.baseUrl, its next source.
 * It builds endpoint URLs from the request's host: we pin that host to the configured base
 * URL, so a forged Host header can never make metadata point elsewhere (the provider runs
 * with proxy=true and sees only the forwarding headers we set).
 */
export function handOverToProvider(
  ctx: Context,
  runtime: TenantRuntime,
  innerPath: string,
  origin: PublicOrigin,
  trustProxy: boolean,
): Promise<void> {
  const req = ctx.req as IncomingMessage & { originalUrl?: string; baseUrl?: string };
  const search = ctx.querystring ? `?${ctx.querystring}` : '';
  delete req.originalUrl;
  req.baseUrl = `/t/${runtime.tenantId}`;
  req.url = `${innerPath}${search}`;
  pinForwardedHeaders(req, origin, trustProxy);
  ctx.respond = false;
  // Returned, not awaited: one promise and one hop less per request.
  return runtime.handle(req, ctx.res);
}

import type { Context } from 'koa';

const REGISTRATION_METHODS = 'GET, POST, PUT, DELETE';

/**
 * CORS for the registration endpoints (RFC 7591/7592), which oidc-provider leaves without:
 * browser-based MCP clients register from their own origin. Any origin may call them —
 * they use no cookies, only bearer tokens — and errors stay readable. Answers a preflight
 * itself (returns true) so it never reaches oidc-provider.
 */
export function registrationCors(ctx: Context): boolean {
  ctx.vary('Origin');
  ctx.set('Access-Control-Allow-Origin', '*');
  ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate, Retry-After');
  if (ctx.method !== 'OPTIONS' || !ctx.get('Access-Control-Request-Method')) return false;
  ctx.set('Access-Control-Allow-Methods', REGISTRATION_METHODS);
  ctx.set('Access-Control-Allow-Headers', 'Authorization, Content-Type');
  ctx.set('Access-Control-Max-Age', '3600');
  ctx.status = 204;
  return true;
}

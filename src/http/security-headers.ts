import type { Middleware } from 'koa';

/**
 * Headers on every response, including those oidc-provider writes after we hand over the
 * request (they are set on the node response first). Pages that need more (styles, forms)
 * widen the CSP themselves; nothing here allows inline script or framing.
 */
export function securityHeaders(options: { https: boolean }): Middleware {
  const headers: Record<string, string> = {
    // script-src is present so oidc-provider can add the hash of its one inline script (the
    // form_post auto-submit); we serve no script files. No form-action: form_post and the
    // logout confirmation post to the client's origin.
    'Content-Security-Policy': "default-src 'none'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'",
    'X-Content-Type-Options': 'nosniff',
    'X-Frame-Options': 'DENY',
    'Referrer-Policy': 'no-referrer',
    'Cross-Origin-Opener-Policy': 'same-origin',
    'Cross-Origin-Resource-Policy': 'same-site',
    'Permissions-Policy': 'camera=(), microphone=(), geolocation=(), payment=()',
  };
  if (options.https) headers['Strict-Transport-Security'] = 'max-age=31536000; includeSubDomains';
  const entries = Object.entries(headers);
  return (ctx, next) => {
    const res = ctx.res;
    for (const [name, value] of entries) res.setHeader(name, value);
    return next();
  };
}

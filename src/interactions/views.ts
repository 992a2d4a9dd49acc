import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type { TenantSettings } from '../tenants/tenant-settings.ts';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

const STYLES = `
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
main{max-width:26rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0003}
h1{font-size:1.4rem;margin-top:0}label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;box-sizing:border-box;padding:.6rem;border:1px solid #6b7280;border-radius:4px;font-size:1rem}
button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:4px;border:1px solid #1d4ed8;background:#1d4ed8;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d4ed8}.error{color:#b91c1c;font-weight:600}
ul{padding-left:1.2rem}.host{font-weight:700;font-size:1.1rem}`;

/** What every page of a tenant shows of it (settings.branding). */
export interface PageLook {
  name: string;
  logoUri: string | undefined;
  accentColor: string;
}

export function pageLook(tenantId: string, settings: Pick<TenantSettings, 'displayName' | 'branding'>): PageLook {
  return { name: settings.displayName ?? tenantId, logoUri: settings.branding.logoUri, accentColor: settings.branding.accentColor };
}

/**
 * Renders one server-rendered page: no script at all, styles allowed only by nonce, no
 * framing (clickjacking). No form-action: browsers apply it to the redirect chain after a
 * submit, which ends at the client's redirect_uri.
 */
export function renderPage(ctx: Context, _look: PageLook, title: string, body: string): void {
  const nonce = randomBytes(16).toString('base64');
  ctx.set(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self' https:; frame-ancestors 'none'; base-uri 'none'`,
  );
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style nonce="${nonce}">${STYLES}</style></head>
<body><main>${body}</main></body></html>`;
}

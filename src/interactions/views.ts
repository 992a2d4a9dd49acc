import { randomBytes } from 'node:crypto';
import type { Context } from 'koa';
import type { TenantSettings } from '../tenants/tenant-settings.ts';
import { DEFAULT_ACCENT_COLOR } from './page-settings.ts';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and double-quoted attributes. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ESCAPES[c] ?? c);
}

/**
 * One small stylesheet for every page. `--accent` is the tenant's colour: the schema
 * guarantees white text on it reaches WCAG AA (4.5:1), which also makes it readable as link
 * text and visible as a focus ring on the white card.
 */
const STYLES = `
*{box-sizing:border-box}
body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
header{max-width:28rem;margin:2rem auto 0;padding:0 1rem;display:flex;align-items:center;gap:.75rem;font-weight:600;color:#374151}
header img{width:40px;height:40px;object-fit:contain}
main{max-width:28rem;margin:1rem auto 3rem;background:#fff;padding:2rem;border-radius:8px;box-shadow:0 1px 3px #0003}
h1{font-size:1.4rem;margin-top:0}h2{font-size:1.05rem;margin:1.5rem 0 .5rem}
a{color:var(--accent)}
label{display:block;margin:1rem 0 .25rem;font-weight:600}
input[type=text],input[type=password]{width:100%;padding:.6rem;border:1px solid #6b7280;border-radius:4px;font-size:1rem}
input[type=checkbox]{width:1.15rem;height:1.15rem;margin:.2rem 0 0;flex:none;accent-color:var(--accent)}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
button{margin-top:1.25rem;padding:.6rem 1.2rem;font-size:1rem;border-radius:4px;border:2px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer;min-height:44px}
button.secondary{background:#fff;color:var(--accent)}
.error{color:#b91c1c;font-weight:600}
ul{padding-left:1.2rem}.host{font-weight:700;font-size:1.1rem;word-break:break-all}
.client{display:flex;align-items:center;gap:.75rem}.client img{flex:none}
fieldset{border:0;margin:0;padding:0}legend{font-weight:700;padding:0;margin:1rem 0 .25rem}
ul.choices{list-style:none;padding:0;margin:0}
.choices li{border-top:1px solid #e5e7eb;padding:.6rem 0}
.choices label{display:flex;gap:.6rem;align-items:flex-start;margin:0;font-weight:400}
.scope-name{display:block;font-size:.875rem;color:#4b5563}
.required{display:inline-block;margin-left:.5rem;padding:0 .4rem;border:1px solid #6b7280;border-radius:3px;font-size:.75rem;color:#374151;font-weight:600;vertical-align:middle}
code{font-family:ui-monospace,monospace;font-size:.875rem;word-break:break-all}
.actions{display:flex;flex-wrap:wrap;gap:0 .75rem;align-items:flex-end}
@media (max-width:30rem){header{margin-top:1rem}main{margin:.5rem 0 0;border-radius:0;box-shadow:none;padding:1.25rem}
main button{width:100%}.actions{gap:0}}`;

/** What every page of a tenant shows of it (settings.branding). */
export interface PageLook {
  name: string;
  logoUri: string | undefined;
  accentColor: string;
}

export function pageLook(tenantId: string, settings: Pick<TenantSettings, 'displayName' | 'branding'>): PageLook {
  return { name: settings.displayName ?? tenantId, logoUri: settings.branding.logoUri, accentColor: settings.branding.accentColor };
}

/** For pages rendered before any tenant is known (e.g. an unknown tenant's error page). */
export const NEUTRAL_LOOK: PageLook = { name: 'Castellan', logoUri: undefined, accentColor: DEFAULT_ACCENT_COLOR };

/** An https URL, or nothing: the schema already insists, this keeps a bad record harmless. */
export function httpsUrl(value: string | undefined): string | undefined {
  return value !== undefined && URL.parse(value)?.protocol === 'https:' ? value : undefined;
}

/**
 * Renders one server-rendered page: no script at all, styles allowed only by nonce, no
 * framing (clickjacking). No form-action: browsers apply it to the redirect chain after a
 * submit, which ends at the client's redirect_uri.
 */
export function renderPage(ctx: Context, look: PageLook, title: string, body: string): void {
  const nonce = randomBytes(16).toString('base64');
  // The colour goes into CSS: only #rrggbb ever reaches it, whatever the record holds.
  const accent = /^#[0-9a-fA-F]{6}$/.test(look.accentColor) ? look.accentColor : DEFAULT_ACCENT_COLOR;
  const logo = httpsUrl(look.logoUri);
  ctx.set(
    'Content-Security-Policy',
    `default-src 'none'; style-src 'nonce-${nonce}'; img-src 'self' https:; frame-ancestors 'none'; base-uri 'none'`,
  );
  ctx.set('Cache-Control', 'no-store');
  ctx.type = 'html';
  ctx.body = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)} · ${escapeHtml(look.name)}</title><style nonce="${nonce}">:root{--accent:${accent}}${STYLES}</style></head>
<body><header>${logo ? `<img src="${escapeHtml(logo)}" alt="" width="40" height="40">` : ''}<span class="tenant">${escapeHtml(look.name)}</span></header>
<main>${body}</main></body></html>`;
}

export interface ErrorPageContent {
  error: string;
  error_description?: string | undefined;
}

/**
 * An error shown to a person: the OAuth error code and its description, escaped, and no
 * link anywhere. The request's redirect_uri may be the very thing that was refused, so it is
 * neither followed nor echoed (RFC 6749 §4.1.2.1; RFC 9700 §4.11).
 */
export function renderErrorPage(ctx: Context, look: PageLook, content: ErrorPageContent): void {
  const description = content.error_description && content.error_description !== content.error ? content.error_description : undefined;
  renderPage(ctx, look, 'Something went wrong', `<h1>Something went wrong</h1>
<p role="alert">${escapeHtml(description ?? 'The request could not be completed.')}</p>
<p>Error code: <code>${escapeHtml(content.error)}</code></p>
<p>Go back to the application you came from and try again.</p>`);
}

import type { Context } from 'koa';
import { escapeHtml, renderPage, type PageLook } from './views.ts';

/**
 * RP-initiated logout confirmation (OIDC RP-Initiated Logout §2). `form` is oidc-provider's
 * own hidden form (id "op.logoutForm", with its CSRF token); the buttons submit it.
 */
export function renderLogoutPage(ctx: Context, look: PageLook, form: string): void {
  renderPage(ctx, look, 'Sign out?', `<h1>Sign out of ${escapeHtml(look.name)}?</h1>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button class="secondary" type="submit" form="op.logoutForm">No, stay signed in</button>`);
}

export function renderLoggedOutPage(ctx: Context, look: PageLook): void {
  renderPage(ctx, look, 'Signed out', `<h1>Signed out</h1><p>You are signed out of ${escapeHtml(look.name)}.</p>`);
}

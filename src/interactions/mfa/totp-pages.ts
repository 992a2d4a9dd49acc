import type { Context } from 'koa';
import QRCode from 'qrcode';
import type { ThrottledOutcome } from '../../accounts/login-throttle.ts';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import { csrfField } from '../csrf.ts';
import { escapeHtml, pageLook, renderPage } from '../views.ts';

/** A page of the tenant's look whose heading is its title. */
export function titledPage(ctx: Context, runtime: TenantRuntime, title: string, body: string): void {
  renderPage(ctx, pageLook(runtime.tenantId, runtime.settings), title, `<h1>${escapeHtml(title)}</h1>\n${body}`);
}

/**
 * Status, Retry-After and words for a failed throttled check: a lock says so in the same words
 * as the password page, whichever account it is and whether it exists.
 */
export function throttleFailure(ctx: Context, outcome: Exclude<ThrottledOutcome<unknown>, { ok: true }>, wrong: string): string {
  if (outcome.reason === 'locked') {
    ctx.status = 429;
    ctx.set('Retry-After', String(outcome.retryAfterSeconds));
    const minutes = Math.max(1, Math.ceil(outcome.retryAfterSeconds / 60));
    return `Too many failed sign-ins. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`;
  }
  ctx.status = 400;
  return wrong;
}

/** The code input every TOTP form shares: numeric keypad on phones, one-time-code autofill. */
export function codeInput(label: string): string {
  return `<label for="code">${escapeHtml(label)}</label>
<input id="code" name="code" type="text" inputmode="numeric" pattern="[0-9 ]*" maxlength="8" autocomplete="one-time-code" required autofocus>`;
}

export function recoveryInput(): string {
  return `<label for="recovery-code">Recovery code</label>
<input id="recovery-code" name="code" type="text" autocomplete="off" autocapitalize="characters" spellcheck="false" maxlength="32" required autofocus>`;
}

export function errorLine(error: string | undefined): string {
  return error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : '';
}

/** A POST form with the CSRF field; `csrfKey` and `csrfId` pick the token. */
export function postForm(action: string, csrfKey: Buffer, csrfId: string, inner: string, button: string, secondary = false): string {
  return `<form method="post" action="${escapeHtml(action)}">${csrfField(csrfKey, csrfId)}${inner}<button${secondary ? ' class="secondary"' : ''} type="submit">${escapeHtml(button)}</button></form>`;
}

/**
 * The QR code as inline SVG: the CSP allows no data: images and no script, and an inline
 * <svg> needs neither. It carries the otpauth:// URI and nothing else.
 */
export async function qrSvg(uri: string): Promise<string> {
  const svg = await QRCode.toString(uri, { type: 'svg', margin: 2, width: 200, errorCorrectionLevel: 'M' });
  return svg.replace('<svg ', '<svg role="img" aria-label="QR code for your authenticator app" ');
}

/** The enrolment instructions: scan or type the secret, then confirm with a first code. */
export async function enrolmentBody(secret: string, uri: string, issuer: string): Promise<string> {
  return `<p>Open an authenticator app on your phone (for example one that supports "TOTP" codes) and scan this QR code.</p>
<figure>${await qrSvg(uri)}</figure>
<p>Cannot scan it? Add an account by hand with this key (time-based, 6 digits):</p>
<p><code id="totp-secret">${escapeHtml(secret)}</code></p>
<p>The app will show the account as ${escapeHtml(issuer)}.</p>`;
}

/** The recovery codes, shown once. */
export function recoveryCodesBody(codes: readonly string[]): string {
  return `<p><strong>Save these recovery codes now.</strong> Each one signs you in once if you lose your phone. They will not be shown again.</p>
<ul id="recovery-codes">${codes.map((c) => `<li><code>${escapeHtml(c)}</code></li>`).join('')}</ul>`;
}

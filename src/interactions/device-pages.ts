import type { Context } from 'koa';
import { escapeHtml, renderPage, type PageLook } from './views.ts';

/** Why the code entry page is shown again, from oidc-provider's error names. */
function entryMessage(err: unknown): string | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const { name, userCode } = err as { name?: string; userCode?: unknown };
  if (name === 'AbortedError') return 'You cancelled the sign-in for that device.';
  if (name === 'ExpiredError') return 'That code has expired. Start again on the device.';
  if (name === 'AlreadyUsedError') return 'That code was already used.';
  if (userCode !== undefined || name === 'NoCodeError' || name === 'NotFoundError') return 'That code is not valid. Check it and try again.';
  return 'Something went wrong. Try again.';
}

/**
 * RFC 8628 §3.3: the page where a person types the code shown on the device. `form` is
 * oidc-provider's own form (with its CSRF token); case and dashes do not matter.
 */
export function renderDeviceCodeEntry(ctx: Context, look: PageLook, form: string, err?: unknown): void {
  const message = entryMessage(err);
  renderPage(ctx, look, 'Connect a device', `<h1>Connect a device to ${escapeHtml(look.name)}</h1>
${message ? `<p class="error" role="alert">${escapeHtml(message)}</p>` : '<p>Enter the code shown on your device.</p>'}
<label for="user_code">Code</label>
${form
    .replace('type="text" name="user_code"', 'type="text" id="user_code" name="user_code" autocapitalize="characters" spellcheck="false"')
    // oidc-provider's inline onfocus handler would only trip the CSP (no inline script).
    .replace(/\s*onfocus="[^"]*"/, '')}
<button type="submit" form="op.deviceInputForm">Continue</button>`);
}

/** Shown when a person has tried too many codes: the brute-force limit. */
export function renderDeviceCodeLimited(ctx: Context, look: PageLook, retryAfterSeconds: number): void {
  ctx.status = 429;
  ctx.set('Retry-After', String(retryAfterSeconds));
  const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
  renderPage(ctx, look, 'Too many attempts', `<h1>Too many attempts</h1>
<p role="alert">Too many codes were tried for ${escapeHtml(look.name)}. Wait ${minutes} minute${minutes === 1 ? '' : 's'} and try again.</p>`);
}

/** A requested scope and the words the consent page would show for it (consent-step.ts scopeDescription). */
export interface DescribedScope {
  scope: string;
  description: string | undefined;
}

export interface DeviceConfirmation {
  clientName: string;
  userCode: string;
  scopes: DescribedScope[];
  deviceInfo: { ip?: string; ua?: string } | undefined;
}

/** As on the consent page: the description, with the scope's name under it; or the bare name. */
function scopeItem({ scope, description }: DescribedScope): string {
  const name = `<code>${escapeHtml(scope)}</code>`;
  return `<li>${description ? `${escapeHtml(description)}<span class="scope-name">${name}</span>` : name}</li>`;
}

/**
 * RFC 8628 §5.4: before anything is granted, the person confirms that the code belongs to
 * the device in front of them, seeing which application asks for what.
 */
export function renderDeviceConfirm(ctx: Context, look: PageLook, form: string, details: DeviceConfirmation): void {
  renderPage(ctx, look, 'Is this your device?', `<h1>Is this the device in front of you?</h1>
<p><strong>${escapeHtml(details.clientName)}</strong> shows the code <strong class="host">${escapeHtml(details.userCode)}</strong> and asks for:</p>
<ul>${details.scopes.length ? details.scopes.map(scopeItem).join('') : '<li>sign-in only</li>'}</ul>
${details.deviceInfo?.ua ? `<p>Requested by: ${escapeHtml(details.deviceInfo.ua)}</p>` : ''}
<p>If you did not start this on a device you have, or the code differs, choose No.</p>
${form}
<button type="submit" form="op.deviceConfirmForm">Yes, continue</button>
<button class="secondary" type="submit" form="op.deviceConfirmForm" name="abort" value="yes">No, cancel</button>`);
}

export function renderDeviceSuccess(ctx: Context, look: PageLook, clientName: string): void {
  renderPage(ctx, look, 'Device connected', `<h1>Device connected</h1><p>${escapeHtml(clientName)} is signed in. You can close this page.</p>`);
}

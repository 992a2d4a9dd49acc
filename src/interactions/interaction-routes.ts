import type { Context } from 'koa';
import type Provider from 'oidc-provider';
import { z } from 'zod';
import type { LoginCheck } from '../accounts/login-throttle.ts';
import { InvalidRequestError, MethodNotAllowedError } from '../errors/errors.ts';
import { readFormBody } from '../http/request-body.ts';
import type { TenantRuntime } from '../tenants/tenant-registry.ts';
import { checkCsrfToken, csrfField } from './csrf.ts';
import { escapeHtml, renderPage } from './views.ts';

export type { LoginCheck } from '../accounts/login-throttle.ts';

const loginForm = z.object({
  login: z.string().trim().min(1).max(256),
  password: z.string().min(1).max(1024),
});

type InteractionDetails = Awaited<ReturnType<Provider['interactionDetails']>>;

/** What the consent prompt asks for (oidc-provider's consent prompt details). */
interface ConsentAsked {
  missingOIDCScope?: string[];
  missingOIDCClaims?: string[];
  missingResourceScopes?: Record<string, string[]>;
}

function consentAsked(details: InteractionDetails): ConsentAsked {
  return details.prompt.details as ConsentAsked;
}

function loginPage(ctx: Context, runtime: TenantRuntime, details: InteractionDetails, error?: string): void {
  const title = `Sign in to ${runtime.settings.displayName ?? runtime.tenantId}`;
  const action = `/t/${runtime.tenantId}/interaction/${details.uid}/login`;
  const hint = typeof details.params.login_hint === 'string' ? details.params.login_hint : '';
  renderPage(ctx, title, `<h1>${escapeHtml(title)}</h1>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="${escapeHtml(action)}">${csrfField(runtime.csrfKey, details.uid)}
<label for="login">Username</label><input id="login" name="login" type="text" autocomplete="username" required autofocus value="${escapeHtml(hint)}">
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button></form>
<form method="post" action="/t/${escapeHtml(runtime.tenantId)}/interaction/${escapeHtml(details.uid)}/abort">${csrfField(runtime.csrfKey, details.uid)}<button class="secondary" type="submit">Cancel</button></form>`);
}

interface ClientDisplay {
  name: string;
  /** For a URL client_id (CIMD) the host that vouches for it, shown prominently. */
  host: string | undefined;
  logo: string | undefined;
}

/** What the consent page may show of a client: only https logos, never an unchecked URL. */
async function clientDisplay(provider: Provider, clientId: string): Promise<ClientDisplay> {
  const client = await provider.Client.find(clientId);
  const url = URL.parse(clientId);
  const host = url?.protocol === 'https:' ? url.host : undefined;
  const logo = typeof client?.logoUri === 'string' && URL.parse(client.logoUri)?.protocol === 'https:' ? client.logoUri : undefined;
  return { name: client?.clientName ?? clientId, host, logo };
}

function consentPage(ctx: Context, runtime: TenantRuntime, details: InteractionDetails, client: ClientDisplay): void {
  const promptDetails = consentAsked(details);
  const scopes = [...(promptDetails.missingOIDCScope ?? [])];
  const resources = Object.entries(promptDetails.missingResourceScopes ?? {});
  const base = `/t/${escapeHtml(runtime.tenantId)}/interaction/${escapeHtml(details.uid)}`;
  renderPage(ctx, 'Allow access?', `<h1>Allow access?</h1>
${client.logo ? `<img src="${escapeHtml(client.logo)}" alt="" width="48" height="48">` : ''}
<p>The application <strong>${escapeHtml(client.name)}</strong>${client.host ? ` from <span class="host">${escapeHtml(client.host)}</span>` : ''} asks to:</p>
<ul>${scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join('')}
${resources.map(([uri, s]) => `<li>use ${escapeHtml(uri)}${s.length ? ` with ${s.map(escapeHtml).join(', ')}` : ''}</li>`).join('')}</ul>
<form method="post" action="${base}/confirm">${csrfField(runtime.csrfKey, details.uid)}<button type="submit">Allow</button></form>
<form method="post" action="${base}/abort">${csrfField(runtime.csrfKey, details.uid)}<button class="secondary" type="submit">Deny</button></form>`);
}

async function finish(ctx: Context, provider: Provider, result: Parameters<Provider['interactionResult']>[2]): Promise<void> {
  const returnTo = await provider.interactionResult(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.status = 303;
  ctx.redirect(returnTo);
}

/** Records consent for exactly what the interaction asked (oidc-provider's Grant model). */
async function grantConsent(provider: Provider, details: InteractionDetails): Promise<string> {
  const accountId = details.session?.accountId;
  const clientId = details.params.client_id;
  if (!accountId || typeof clientId !== 'string') throw new InvalidRequestError('no signed-in user for this interaction');
  const grant = details.grantId
    ? (await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId, clientId })
    : new provider.Grant({ accountId, clientId });
  const d = consentAsked(details);
  if (d.missingOIDCScope) grant.addOIDCScope(d.missingOIDCScope.join(' '));
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(d.missingResourceScopes ?? {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  return grant.save();
}

/**
 * Minimal login and consent for the code flow: a password checked against the tenant's
 * users and an explicit approval. The full human experience (MFA, upstream IdPs, scope
 * picker, branding) is a later step; these routes are its seam.
 */
export async function handleInteraction(
  ctx: Context,
  runtime: TenantRuntime,
  rest: string,
  checkLogin: LoginCheck,
): Promise<void> {
  const match = /^\/([A-Za-z0-9_-]{1,64})(?:\/(login|confirm|abort))?$/.exec(rest);
  if (!match) throw new InvalidRequestError('unknown interaction route');
  const [, uid, action] = match;
  const { provider } = runtime;
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (details.uid !== uid) throw new InvalidRequestError('interaction mismatch');

  if (!action) {
    if (ctx.method !== 'GET') throw new MethodNotAllowedError(['GET']);
    if (details.prompt.name === 'login') return loginPage(ctx, runtime, details);
    return consentPage(ctx, runtime, details, await clientDisplay(provider, String(details.params.client_id ?? '')));
  }
  if (ctx.method !== 'POST') throw new MethodNotAllowedError(['POST']);
  const form = await readFormBody(ctx);
  checkCsrfToken(runtime.csrfKey, details.uid, form.get('csrf'));

  if (action === 'abort') {
    return finish(ctx, provider, { error: 'access_denied', error_description: 'the user denied the request' });
  }
  if (action === 'login') {
    if (details.prompt.name !== 'login') throw new InvalidRequestError('this interaction is not asking for a login');
    const parsed = loginForm.safeParse({ login: form.get('login') ?? '', password: form.get('password') ?? '' });
    const outcome = parsed.success
      ? await checkLogin(runtime.tenantId, parsed.data.login, parsed.data.password, ctx.ip)
      : { ok: false as const, reason: 'invalid' as const };
    if (outcome.ok) return finish(ctx, provider, { login: { accountId: outcome.user.id } });
    if (outcome.reason === 'locked') {
      // The same words whether or not the account exists.
      ctx.status = 429;
      ctx.set('Retry-After', String(outcome.retryAfterSeconds));
      const minutes = Math.max(1, Math.ceil(outcome.retryAfterSeconds / 60));
      return loginPage(ctx, runtime, details, `Too many failed sign-ins. Try again in ${minutes} minute${minutes === 1 ? '' : 's'}.`);
    }
    ctx.status = 400;
    return loginPage(ctx, runtime, details, 'Wrong username or password.');
  }
  if (details.prompt.name !== 'consent') throw new InvalidRequestError('this interaction is not asking for consent');
  const grantId = await grantConsent(provider, details);
  return finish(ctx, provider, { consent: { grantId } });
}

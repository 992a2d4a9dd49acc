import * as client from 'openid-client';
import { InvalidRequestError } from '../../errors/errors.ts';
import { csrfField } from '../csrf.ts';
import { interactionPath, type Step, type StepRequest } from '../interaction-step.ts';
import { renderLoginPage } from '../login-step.ts';
import { escapeHtml } from '../views.ts';
import { ATTEMPT_TTL_SECONDS, saveAttempt } from './upstream-attempts.ts';
import { describeUpstreamFailure, upstreamConfiguration, UpstreamUnavailableError } from './upstream-client.ts';
import type { UpstreamIdpSettings } from './upstream-settings.ts';

/** The enabled upstream IdP of this tenant with that id, or a 400. */
export function enabledIdp(step: Pick<StepRequest, 'runtime'>, id: string | null): UpstreamIdpSettings {
  const idp = step.runtime.settings.upstreamIdps.find((i) => i.id === id && i.enabled);
  if (!idp) throw new InvalidRequestError('unknown or disabled identity provider');
  return idp;
}

/** Where every upstream sends the person back: register this redirect URI there. */
export function upstreamRedirectUri(issuer: string): string {
  return `${issuer}/upstream/callback`;
}

/** The login page again, saying that the upstream could not be used now (the password form still works). */
export function renderUpstreamTrouble(step: StepRequest, idp: UpstreamIdpSettings, status: number, detail = ''): void {
  step.ctx.status = status;
  renderLoginPage(step, `Signing in with ${idp.name} did not work${detail}. Try again later, or sign in another way.`);
}

/** "Sign in with <IdP>" buttons for the login page; empty while the tenant has no upstream IdP. */
export function upstreamChoices(step: StepRequest): string {
  const idps = step.runtime.settings.upstreamIdps.filter((i) => i.enabled);
  if (idps.length === 0) return '';
  const action = `${interactionPath(step.runtime, step.details)}/upstream`;
  const csrf = csrfField(step.runtime.csrfKey, step.details.uid);
  const buttons = idps.map((idp) => `<form method="post" action="${escapeHtml(action)}">${csrf}<input type="hidden" name="idp" value="${escapeHtml(idp.id)}"><button class="secondary" type="submit">Sign in with ${escapeHtml(idp.name)}</button></form>`);
  return `<section aria-label="Other ways to sign in"><p>Or use another account:</p>\n${buttons.join('\n')}</section>`;
}

/**
 * POST `/t/<tenant>/interaction/<uid>/upstream` (idp=<id>): sends the person to the upstream
 * with an authorization request of its own (OIDC Core §3.1.2.1): code flow, PKCE S256, a
 * nonce and a state, all fresh, their secrets kept server-side until the callback.
 */
const startUpstreamLogin: Step = {
  async POST(step) {
    const { ctx, runtime, details, deps, form } = step;
    if (details.prompt.name !== 'login') throw new InvalidRequestError('this interaction is not asking for a login');
    const idp = enabledIdp(step, form.get('idp'));
    let configuration: client.Configuration;
    try {
      configuration = await upstreamConfiguration(runtime.tenantId, idp);
    } catch (err) {
      if (!(err instanceof UpstreamUnavailableError)) throw err;
      deps.log.warn({ tenant: runtime.tenantId, idp: idp.id, ...describeUpstreamFailure(err) }, 'upstream identity provider unavailable');
      return renderUpstreamTrouble(step, idp, 503, ': it cannot be reached right now');
    }
    const state = client.randomState();
    const nonce = client.randomNonce();
    const codeVerifier = client.randomPKCECodeVerifier();
    const secondsLeft = typeof details.exp === 'number' ? details.exp - Math.floor(Date.now() / 1000) : ATTEMPT_TTL_SECONDS;
    await saveAttempt(deps.modelStores(runtime.tenantId).ephemeral, state, { interactionUid: details.uid, idp: idp.id, nonce, codeVerifier }, secondsLeft);
    const url = client.buildAuthorizationUrl(configuration, {
      redirect_uri: upstreamRedirectUri(runtime.issuer),
      scope: idp.scopes.join(' '),
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      // The client asked for a fresh sign-in (prompt=login, max_age): an upstream session must not stand in for it.
      ...(details.prompt.reasons.some((r) => r === 'login_prompt' || r === 'max_age') && { prompt: 'login' }),
    });
    ctx.status = 303;
    ctx.redirect(url.href);
  },
};

/** The upstream-login steps of an interaction, by name. */
export const upstreamSteps: Record<string, Step> = { upstream: startUpstreamLogin };

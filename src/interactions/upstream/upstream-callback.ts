import type { Context } from 'koa';
import * as client from 'openid-client';
import { InvalidRequestError, MethodNotAllowedError } from '../../errors/errors.ts';
import type { TenantRuntime } from '../../tenants/tenant-registry.ts';
import { finishInteraction, type InteractionDeps, type StepRequest } from '../interaction-step.ts';
import { linkedUserId, profileClaims, upstreamSubjectSchema } from './upstream-accounts.ts';
import { stateSchema, takeAttempt } from './upstream-attempts.ts';
import { describeUpstreamFailure, isRetryableUpstreamFailure, upstreamConfiguration } from './upstream-client.ts';
import { enabledIdp, renderUpstreamTrouble, upstreamRedirectUri } from './upstream-choices.ts';

/**
 * RFC 8176 `fed`: the person signed in at another identity provider. The upstream's own
 * `amr` is not passed on: this tenant has no way to hold the upstream to what it claims.
 */
const FEDERATED_AMR = ['fed'];

/**
 * `/t/<tenant>/upstream/callback`: where upstream OpenID Providers send the person back.
 * The state must name an attempt of the interaction this browser is in (its cookie), unused;
 * then openid-client checks the response (state, RFC 9207 `iss`), redeems the code with the
 * PKCE verifier and validates the id_token (signature, iss, aud, exp, nonce). Anything off
 * is a 400 here: this endpoint never redirects anywhere but back into the interaction.
 */
export async function handleUpstreamCallback(ctx: Context, runtime: TenantRuntime, deps: InteractionDeps): Promise<void> {
  if (ctx.method !== 'GET') throw new MethodNotAllowedError(['GET']);
  const stateParam = ctx.query.state;
  const state = stateSchema.safeParse(stateParam);
  if (!state.success) throw new InvalidRequestError(stateParam === undefined ? 'missing state' : 'invalid state');

  const details = await runtime.provider.interactionDetails(ctx.req, ctx.res);
  const step: StepRequest = { ctx, runtime, details, deps, form: new URLSearchParams() };
  const attempt = await takeAttempt(deps.modelStores(runtime.tenantId).ephemeral, state.data, details.uid);
  if (details.prompt.name !== 'login') throw new InvalidRequestError('this interaction is not asking for a login');
  const idp = enabledIdp(step, attempt.idp);

  let tokens: Awaited<ReturnType<typeof client.authorizationCodeGrant>>;
  let configuration: client.Configuration;
  try {
    configuration = await upstreamConfiguration(runtime.tenantId, idp);
    const currentUrl = new URL(upstreamRedirectUri(runtime.issuer));
    currentUrl.search = ctx.querystring;
    tokens = await client.authorizationCodeGrant(configuration, currentUrl, {
      expectedState: state.data,
      expectedNonce: attempt.nonce,
      pkceCodeVerifier: attempt.codeVerifier,
      idTokenExpected: true,
    });
  } catch (err) {
    const where = { tenant: runtime.tenantId, idp: idp.id };
    if (err instanceof client.AuthorizationResponseError) {
      // The upstream answered this attempt (state and iss checked) with an error.
      if (err.error === 'access_denied') {
        return finishInteraction(ctx, runtime.provider, { error: 'access_denied', error_description: `the sign-in at ${idp.name} was denied` });
      }
      deps.log.info({ ...where, error: err.error.slice(0, 64) }, 'upstream identity provider answered with an error');
      return renderUpstreamTrouble(step, idp, 400);
    }
    if (isRetryableUpstreamFailure(err)) {
      deps.log.warn({ ...where, ...describeUpstreamFailure(err) }, 'upstream sign-in could not be completed');
      return renderUpstreamTrouble(step, idp, 502);
    }
    if (err instanceof client.ClientError) {
      deps.log.warn({ ...where, ...describeUpstreamFailure(err) }, 'upstream response failed validation');
      throw new InvalidRequestError(`the response from ${idp.name} failed validation`);
    }
    throw err;
  }

  const idToken = tokens.claims();
  const subject = upstreamSubjectSchema.safeParse(idToken?.sub);
  if (!idToken || !subject.success) throw new InvalidRequestError(`the response from ${idp.name} has no usable subject`);
  const { userId } = await linkedUserId(
    deps,
    { tenant: runtime.tenantId, idp: idp.id, issuer: idToken.iss, subject: subject.data },
    async () => profileClaims(idToken, await userinfo(configuration, tokens.access_token, subject.data)),
  );
  return finishInteraction(ctx, runtime.provider, { login: { accountId: userId, amr: FEDERATED_AMR } });
}

/** The upstream's userinfo for a first sign-in's profile (OIDC Core §5.3); best effort. */
async function userinfo(configuration: client.Configuration, accessToken: string, subject: string): Promise<Record<string, unknown> | undefined> {
  if (!configuration.serverMetadata().userinfo_endpoint) return undefined;
  // fetchUserInfo checks that the answer is about the same `sub`.
  return client.fetchUserInfo(configuration, accessToken, subject).catch(() => undefined);
}

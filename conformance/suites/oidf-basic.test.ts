import { createRemoteJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify, type JWTPayload } from 'jose';
import { afterAll, beforeAll, expect } from 'vitest';
import { startTestCastellan, type TestCastellan } from '../../test/support/castellan.ts';
import { locationOf, newBrowser, type Browser } from '../../test/support/oauth.ts';
import { conformanceSuite } from '../support/scenario.ts';
import {
  atHash, authorizationRequest, exchangeCode, registerRp, tokenRequest, userinfo, validateIdToken, walk,
  type AuthorizationRequest, type RpClient, type TokenAnswer, type Walk,
} from '../support/oidc-rp.ts';

/*
 * The OpenID Foundation's Basic OP certification plan (oidcc-basic-certification-test-plan,
 * OIDCCBasicTestPlan in openid-certification/conformance-suite), reproduced without the hosted
 * suite: one check per test module, named as the module, asserting what the module asserts
 * (its FAILURE conditions; its WARNING-only conditions are asserted where Castellan meets them
 * and said so in a comment). Castellan runs on FerretDB + Redis with the demo tenant; the RP is
 * a confidential web client registered through DCR (client_secret_basic, and client_secret_post
 * for oidcc-server-client-secret-post), the person is scripted (sign-in and consent pages).
 *
 * One deliberate difference: every authorization request carries PKCE (S256), because Castellan
 * follows OAuth 2.1 and requires it of every client; the plan sends it only in
 * oidcc-ensure-request-with-valid-pkce-succeeds. The three oauth21-* checks at the end (not
 * modules of the plan) show that requirement.
 */

const LOGIN = 'demo';

interface Flow {
  request: AuthorizationRequest;
  walk: Walk;
  token: TokenAnswer;
  accessToken: string;
  idToken: string;
  claims: JWTPayload;
}

conformanceSuite('oidf-basic', (scenario) => {
  let castellan: TestCastellan;
  let issuer: string;
  let basic: RpClient;
  let post: RpClient;
  let second: RpClient;
  let discovery: Record<string, unknown>;
  /** oidcc-codereuse-30seconds: the code used first in beforeAll, and when. */
  let reuseLater: { client: RpClient; code: string; verifier: string; accessToken: string; usedAt: number } | undefined;

  /** Authorization, sign-in/consent as needed, code exchange and ID token validation. */
  async function flow(
    client: RpClient,
    options: { browser?: Browser; scope?: string; nonce?: boolean; params?: Record<string, string | undefined> } = {},
  ): Promise<Flow> {
    const request = authorizationRequest(client, options);
    const result = await walk(options.browser ?? newBrowser(), request.url, client.redirectUri, LOGIN, castellan.userPassword);
    expect(result.params.get('error'), result.params.toString()).toBeNull();
    // OIDC Core §3.1.2.5 / RFC 6749 §4.1.2: the code, and state exactly as sent; RFC 9207 iss.
    expect(result.params.get('state')).toBe(request.state);
    expect(result.params.get('iss')).toBe(issuer);
    const code = result.params.get('code');
    expect(code).toEqual(expect.any(String));
    const token = await exchangeCode(client, code ?? '', request.verifier);
    expect(token.status, JSON.stringify(token.body)).toBe(200);
    const accessToken = String(token.body.access_token);
    const claims = await validateIdToken(client, token.body.id_token, { nonce: request.nonce, accessToken });
    return { request, walk: result, token, accessToken, idToken: String(token.body.id_token), claims };
  }

  /** The authorization response to a request that should end in an error at the client (no person involved). */
  async function errorResponse(url: string, redirectUri: string, browser: Browser = newBrowser()): Promise<URLSearchParams> {
    const result = await walk(browser, url, redirectUri, LOGIN, castellan.userPassword);
    expect(result.pages).toEqual([]);
    return result.params;
  }

  /** OIDC Core §3.1.3.3 token response checks of the suite (CheckTokenEndpointCacheHeaders, token_type, expires_in). */
  function expectTokenResponse(token: TokenAnswer): void {
    expect(token.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(token.headers.get('cache-control')).toMatch(/no-store/);
    expect(String(token.body.token_type).toLowerCase()).toBe('bearer');
    expect(token.body.access_token).toEqual(expect.any(String));
    expect(token.body.expires_in).toEqual(expect.any(Number));
    expect(Number(token.body.expires_in)).toBeGreaterThan(0);
    expect(token.body.id_token).toEqual(expect.any(String));
  }

  /** The suite's userinfo checks (AbstractOIDCCReturnedClaimsServerTest): 200 JSON, sub equal to the id_token's, standard claim types. */
  async function expectUserinfo(result: Flow, how: 'get' | 'post-header' | 'post-body' = 'get'): Promise<Record<string, unknown>> {
    const answer = await userinfo(issuer, result.accessToken, how);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(answer.body.sub).toBe(result.claims.sub);
    // OIDC Core §5.1 types of what is there.
    for (const name of ['name', 'given_name', 'family_name', 'preferred_username', 'email', 'locale', 'zoneinfo', 'picture']) {
      if (name in answer.body) expect(typeof answer.body[name], name).toBe('string');
    }
    if ('email_verified' in answer.body) expect(typeof answer.body.email_verified).toBe('boolean');
    if ('updated_at' in answer.body) expect(typeof answer.body.updated_at).toBe('number');
    return answer.body;
  }

  const scopes = () => (discovery.scopes_supported as string[] | undefined) ?? [];

  beforeAll(async () => {
    castellan = await startTestCastellan('mongo+redis', 'conformance_oidf_basic');
    issuer = castellan.issuer;
    discovery = (await (await fetch(`${issuer}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    [basic, post, second] = await Promise.all([
      registerRp(issuer, 'client_secret_basic', 'basic'),
      registerRp(issuer, 'client_secret_post', 'post'),
      registerRp(issuer, 'client_secret_basic', 'second'),
    ]);
    // oidcc-codereuse-30seconds needs 30 s between the two uses of a code: start its clock now.
    const request = authorizationRequest(basic);
    const { params } = await walk(newBrowser(), request.url, basic.redirectUri, LOGIN, castellan.userPassword);
    const code = params.get('code') ?? '';
    const first = await exchangeCode(basic, code, request.verifier);
    if (first.status !== 200) throw new Error(`code exchange failed: ${JSON.stringify(first.body)}`);
    reuseLater = { client: basic, code, verifier: request.verifier, accessToken: String(first.body.access_token), usedAt: Date.now() };
  });
  afterAll(async () => castellan?.stop());

  scenario('oidcc-server', async () => {
    const result = await flow(basic);
    expect(result.walk.pages).toEqual(['login', 'consent']);
    expectTokenResponse(result.token);
    if ('at_hash' in result.claims) expect(result.claims.at_hash).toBe(atHash(result.accessToken));
    expect(result.claims.aud === basic.clientId || (Array.isArray(result.claims.aud) && result.claims.aud.includes(basic.clientId))).toBe(true);
    expect(Number(result.claims.exp)).toBeGreaterThan(Date.now() / 1000);
  });

  scenario('oidcc-response-type-missing', async () => {
    const request = authorizationRequest(basic, { params: { response_type: undefined } });
    const response = await newBrowser().get(request.url);
    // Either an error page (no redirect: the request cannot be trusted), or an error at the
    // redirect URI: invalid_request or unsupported_response_type (RFC 6749 §4.1.2.1).
    if (response.status >= 300 && response.status < 400) {
      const params = new URL(locationOf(response, request.url)).searchParams;
      expect(locationOf(response, request.url).startsWith(basic.redirectUri)).toBe(true);
      expect(['invalid_request', 'unsupported_response_type']).toContain(params.get('error'));
      expect(params.get('state')).toBe(request.state);
      expect(params.get('code')).toBeNull();
    } else {
      expect(response.status).toBe(400);
      expect(await response.text()).toMatch(/response_type/);
    }
  });

  scenario('oidcc-idtoken-signature', async () => {
    const result = await flow(basic);
    const header = decodeProtectedHeader(result.idToken);
    // Signed with the client's id_token_signed_response_alg (default RS256, advertised), with a kid of the JWKS.
    expect(discovery.id_token_signing_alg_values_supported).toContain(header.alg);
    const jwks = (await (await fetch(String(discovery.jwks_uri))).json()) as { keys: Array<Record<string, unknown>> };
    const key = jwks.keys.find((k) => k.kid === header.kid);
    expect(key, `kid ${String(header.kid)} in the JWKS`).toBeDefined();
    expect(key?.alg ?? header.alg).toBe(header.alg);
    await expect(jwtVerify(result.idToken, createRemoteJWKSet(new URL(String(discovery.jwks_uri))))).resolves.toBeDefined();
    // A tampered payload does not verify.
    const [h, , s] = result.idToken.split('.');
    const forged = `${h}.${Buffer.from(JSON.stringify({ ...result.claims, sub: 'someone-else' })).toString('base64url')}.${s}`;
    await expect(jwtVerify(forged, createRemoteJWKSet(new URL(String(discovery.jwks_uri))))).rejects.toThrow();
  });

  scenario('oidcc-idtoken-unsigned', async (ctx) => {
    // The module needs id_token_signing_alg_values_supported to contain "none"; Castellan signs every ID token.
    expect(discovery.id_token_signing_alg_values_supported).not.toContain('none');
    const refused = await fetch(`${issuer}/reg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ redirect_uris: ['https://rp.conformance.test/none/callback'], token_endpoint_auth_method: 'client_secret_basic', id_token_signed_response_alg: 'none' }),
    });
    expect(refused.status).toBe(400);
    ctx.skip('not applicable: unsigned ID tokens ("none") are not offered (the registration asking for them is refused, as checked)');
  });

  scenario('oidcc-userinfo-get', async () => {
    await expectUserinfo(await flow(basic), 'get');
  });

  scenario('oidcc-userinfo-post-header', async () => {
    await expectUserinfo(await flow(basic), 'post-header');
  });

  scenario('oidcc-userinfo-post-body', async () => {
    await expectUserinfo(await flow(basic), 'post-body');
  });

  scenario('oidcc-ensure-request-without-nonce-succeeds-for-code-flow', async () => {
    const result = await flow(basic, { nonce: false });
    expect(result.request.nonce).toBeUndefined();
    expect(result.claims).not.toHaveProperty('nonce');
  });

  scenario('oidcc-scope-profile', async () => {
    const claims = await expectUserinfo(await flow(basic, { scope: 'openid profile' }));
    // The demo user has a name; profile claims come with the profile scope (the suite warns when missing).
    expect(claims.name).toBe('Demo User');
    expect(claims).not.toHaveProperty('email');
  });

  scenario('oidcc-scope-email', async () => {
    const claims = await expectUserinfo(await flow(basic, { scope: 'openid email' }));
    expect(claims.email).toBe('demo@example.com');
    expect(claims.email_verified).toBe(false);
    expect(claims).not.toHaveProperty('name');
  });

  scenario('oidcc-scope-address', async (ctx) => {
    expect(scopes()).not.toContain('address');
    ctx.skip('not applicable: scopes_supported has no address scope (Castellan keeps no postal addresses), which the module skips on');
  });

  scenario('oidcc-scope-phone', async (ctx) => {
    expect(scopes()).not.toContain('phone');
    ctx.skip('not applicable: scopes_supported has no phone scope (Castellan keeps no phone numbers), which the module skips on');
  });

  scenario('oidcc-scope-all', async (ctx) => {
    expect(['address', 'phone'].every((scope) => scopes().includes(scope))).toBe(false);
    ctx.skip('not applicable: the module asks for email, profile, address and phone; scopes_supported lacks address and phone');
  });

  scenario('oidcc-ensure-other-scope-order-succeeds', async () => {
    const claims = await expectUserinfo(await flow(basic, { scope: 'email openid' }));
    expect(claims.email).toBe('demo@example.com');
  });

  scenario('oidcc-display-page', async () => {
    expect((await flow(basic, { params: { display: 'page' } })).walk.pages).toEqual(['login', 'consent']);
  });

  scenario('oidcc-display-popup', async () => {
    expect((await flow(basic, { params: { display: 'popup' } })).walk.pages).toEqual(['login', 'consent']);
  });

  scenario('oidcc-prompt-login', async () => {
    const browser = newBrowser();
    const first = await flow(basic, { browser });
    // auth_time has one-second resolution: let a second pass so a new sign-in is a later one.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const again = await flow(basic, { browser, params: { prompt: 'login' } });
    // The person is asked to sign in again although signed in.
    expect(again.walk.pages[0]).toBe('login');
    expect(again.claims.sub).toBe(first.claims.sub);
    if (typeof first.claims.auth_time === 'number' && typeof again.claims.auth_time === 'number') {
      expect(again.claims.auth_time).toBeGreaterThan(first.claims.auth_time);
    }
  });

  scenario('oidcc-prompt-none-not-logged-in', async () => {
    const request = authorizationRequest(basic, { params: { prompt: 'none' } });
    const params = await errorResponse(request.url, basic.redirectUri);
    expect(['login_required', 'interaction_required', 'consent_required', 'account_selection_required']).toContain(params.get('error'));
    expect(params.get('state')).toBe(request.state);
    expect(params.get('code')).toBeNull();
    expect(params.get('iss')).toBe(issuer);
  });

  scenario('oidcc-prompt-none-logged-in', async () => {
    const browser = newBrowser();
    const first = await flow(basic, { browser });
    const again = await flow(basic, { browser, params: { prompt: 'none' } });
    // No page at all: the session and the remembered consent answer at once.
    expect(again.walk.pages).toEqual([]);
    expect(again.claims.sub).toBe(first.claims.sub);
    if (first.claims.auth_time !== undefined && again.claims.auth_time !== undefined) expect(again.claims.auth_time).toBe(first.claims.auth_time);
  });

  scenario('oidcc-max-age-1', async () => {
    const browser = newBrowser();
    const first = await flow(basic, { browser });
    // The module waits 2 s so the first sign-in is older than max_age=1.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const again = await flow(basic, { browser, params: { max_age: '1' } });
    expect(again.walk.pages[0]).toBe('login');
    // OIDC Core §3.1.2.1: with max_age, auth_time is REQUIRED in the ID token; later than the first sign-in.
    expect(again.claims.auth_time).toEqual(expect.any(Number));
    if (typeof first.claims.auth_time === 'number') expect(Number(again.claims.auth_time)).toBeGreaterThan(first.claims.auth_time);
    expect(Number(again.claims.auth_time)).toBeLessThanOrEqual(Number(again.claims.iat));
  });

  scenario('oidcc-max-age-10000', async () => {
    const browser = newBrowser();
    const first = await flow(basic, { browser });
    const again = await flow(basic, { browser, params: { max_age: '10000' } });
    expect(again.walk.pages).not.toContain('login');
    expect(again.claims.auth_time).toEqual(expect.any(Number));
    if (typeof first.claims.auth_time === 'number') expect(again.claims.auth_time).toBe(first.claims.auth_time);
    expect(again.claims.sub).toBe(first.claims.sub);
  });

  scenario('oidcc-ensure-request-with-unknown-parameter-succeeds', async () => {
    await flow(basic, { params: { extra_parameter_conformance: 'ignore me' } });
  });

  scenario('oidcc-id-token-hint', async () => {
    const browser = newBrowser();
    const first = await flow(basic, { browser });
    const again = await flow(basic, { browser, params: { prompt: 'none', id_token_hint: first.idToken } });
    expect(again.walk.pages).toEqual([]);
    expect(again.claims.sub).toBe(first.claims.sub);
  });

  scenario('oidcc-login-hint', async () => {
    const browser = newBrowser();
    const request = authorizationRequest(basic, { params: { login_hint: LOGIN } });
    const started = await browser.get(request.url);
    const pageUrl = locationOf(started, request.url);
    const page = await browser.get(pageUrl);
    expect(page.status).toBe(200);
    // The login page offers the hinted login name (what the module's screenshot shows).
    expect(await page.text()).toMatch(new RegExp(`name="login"[^>]*value="${LOGIN}"|value="${LOGIN}"[^>]*name="login"`));
    const result = await walk(browser, pageUrl, basic.redirectUri, LOGIN, castellan.userPassword);
    expect(result.params.get('code')).toEqual(expect.any(String));
    expect(result.params.get('state')).toBe(request.state);
  });

  scenario('oidcc-ui-locales', async () => {
    await flow(basic, { params: { ui_locales: 'se' } });
  });

  scenario('oidcc-claims-locales', async () => {
    await expectUserinfo(await flow(basic, { scope: 'openid profile', params: { claims_locales: 'se' } }));
  });

  scenario('oidcc-ensure-request-with-acr-values-succeeds', async () => {
    const result = await flow(basic, { params: { acr_values: '1 2' } });
    // acr is voluntary here (not essential); when present it is a string.
    if ('acr' in result.claims) expect(typeof result.claims.acr).toBe('string');
  });

  scenario('oidcc-codereuse', async () => {
    const request = authorizationRequest(basic);
    const { params } = await walk(newBrowser(), request.url, basic.redirectUri, LOGIN, castellan.userPassword);
    const code = params.get('code') ?? '';
    const first = await exchangeCode(basic, code, request.verifier);
    expect(first.status).toBe(200);
    const reuse = await exchangeCode(basic, code, request.verifier);
    expect(reuse.status).toBe(400);
    expect(reuse.headers.get('content-type')).toMatch(/^application\/json\b/);
    expect(reuse.body.error).toBe('invalid_grant');
    // RFC 6749 §4.1.2: the tokens issued with the code SHOULD be revoked (the suite warns otherwise).
    expect((await userinfo(issuer, String(first.body.access_token))).status).toBe(401);
  });

  scenario('oidcc-codereuse-30seconds', async () => {
    const earlier = reuseLater;
    if (!earlier) throw new Error('the first use of the code did not happen');
    const wait = earlier.usedAt + 30_000 - Date.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const reuse = await exchangeCode(earlier.client, earlier.code, earlier.verifier);
    expect(reuse.status).toBe(400);
    expect(reuse.body.error).toBe('invalid_grant');
    expect((await userinfo(issuer, earlier.accessToken)).status).toBe(401);
  }, 60_000);

  scenario('oidcc-ensure-registered-redirect-uri', async () => {
    const request = authorizationRequest(basic, { params: { redirect_uri: 'https://rp.conformance.test/not-registered/callback' } });
    const response = await newBrowser().get(request.url);
    // An error shown to the person, never a redirect to an unregistered URI (OIDC Core §3.1.2.1, RFC 6749 §3.1.2.4).
    expect(response.status).toBe(400);
    expect(response.headers.get('location')).toBeNull();
    expect(await response.text()).toMatch(/redirect_uri/);
  });

  scenario('oidcc-ensure-post-request-succeeds', async () => {
    const request = authorizationRequest(basic);
    const [endpoint, query] = request.url.split('?');
    const browser = newBrowser();
    const response = await browser.postForm(endpoint ?? '', Object.fromEntries(new URLSearchParams(query)));
    // OIDC Core §3.1.2.1: the authorization endpoint MUST support POST (form-serialized parameters).
    expect(response.status).toBe(303);
    const result = await walk(browser, locationOf(response, request.url), basic.redirectUri, LOGIN, castellan.userPassword);
    expect(result.params.get('code')).toEqual(expect.any(String));
  });

  scenario('oidcc-server-client-secret-post', async () => {
    const result = await flow(post);
    expectTokenResponse(result.token);
    expect(discovery.token_endpoint_auth_methods_supported).toContain('client_secret_post');
    // A wrong secret in the body is refused (the secret is really checked).
    const request = authorizationRequest(post);
    const { params } = await walk(newBrowser(), request.url, post.redirectUri, LOGIN, castellan.userPassword);
    const wrongSecret = await exchangeCode({ ...post, clientSecret: `${post.clientSecret}x` }, params.get('code') ?? '', request.verifier);
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body.error).toBe('invalid_client');
  });

  scenario('oidcc-request-uri-unsigned-supported-correctly-or-rejected-as-unsupported', async () => {
    expect(discovery.request_uri_parameter_supported).toBe(false);
    const request = authorizationRequest(basic, { params: { request_uri: 'https://rp.conformance.test/requests/unsigned.jwt' } });
    const params = await errorResponse(request.url, basic.redirectUri);
    expect(params.get('error')).toBe('request_uri_not_supported');
    expect(params.get('state')).toBe(request.state);
  });

  scenario('oidcc-unsigned-request-object-supported-correctly-or-rejected-as-unsupported', async () => {
    const request = authorizationRequest(basic);
    const inner = Object.fromEntries(new URL(request.url).searchParams);
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url')}.${Buffer.from(JSON.stringify({ ...inner, iss: basic.clientId, aud: issuer })).toString('base64url')}.`;
    const url = `${issuer}/auth?${new URLSearchParams({ ...inner, request: unsigned })}`;
    // Either processed correctly or rejected with request_not_supported (OIDC Core §3.1.2.6); Castellan does not offer request objects.
    const params = await errorResponse(url, basic.redirectUri);
    expect(params.get('error')).toBe('request_not_supported');
    expect(params.get('state')).toBe(request.state);
  });

  scenario('oidcc-claims-essential', async () => {
    const claimsRequest = JSON.stringify({ userinfo: { name: { essential: true } } });
    const result = await flow(basic, { params: { claims: claimsRequest } });
    const claims = await expectUserinfo(result);
    // The suite only warns when name is missing: Castellan does not offer the claims parameter
    // (claims_parameter_supported false) and releases name with the profile scope only.
    expect(discovery.claims_parameter_supported).toBe(false);
    expect(claims).not.toHaveProperty('name');
    expect(result.claims).not.toHaveProperty('name');
  });

  scenario('oidcc-ensure-request-object-with-redirect-uri', async (ctx) => {
    expect(discovery.request_parameter_supported ?? false).toBe(false);
    ctx.skip('not applicable: request objects are not offered (request_parameter_supported false; a request object is refused with request_not_supported, as checked above)');
  });

  scenario('oidcc-refresh-token', async () => {
    // AddPromptConsentToAuthorizationEndpointRequestIfScopeContainsOfflineAccess (OIDC Core §11).
    const first = await flow(basic, { scope: 'openid offline_access', params: { prompt: 'consent' } });
    const refreshToken = first.token.body.refresh_token;
    expect(refreshToken).toEqual(expect.any(String));
    expect(discovery.grant_types_supported).toContain('refresh_token');
    // RFC 6749 Appendix A.17: VSCHAR only.
    expect(String(refreshToken)).toMatch(/^[\x20-\x7E]+$/);
    const refreshed = await tokenRequest(basic, { grant_type: 'refresh_token', refresh_token: String(refreshToken) });
    expect(refreshed.status, JSON.stringify(refreshed.body)).toBe(200);
    expect(refreshed.body.access_token).toEqual(expect.any(String));
    expect(refreshed.body.access_token).not.toBe(first.accessToken);
    if (typeof refreshed.body.id_token === 'string') {
      // OIDC Core §12.2: same iss, sub and aud; no nonce requirement; iat new.
      const again = decodeJwt(refreshed.body.id_token);
      expect(again.iss).toBe(first.claims.iss);
      expect(again.sub).toBe(first.claims.sub);
      expect(again.aud).toEqual(first.claims.aud);
      await validateIdToken(basic, refreshed.body.id_token, { nonce: first.claims.nonce as string | undefined });
    }
    // The refreshed access token works at the protected resource (userinfo).
    expect((await userinfo(issuer, String(refreshed.body.access_token))).body.sub).toBe(first.claims.sub);
    // A refresh token of the second client is refused to the first (bound to its client).
    const other = await flow(second, { scope: 'openid offline_access', params: { prompt: 'consent' } });
    expect(other.token.body.refresh_token).toEqual(expect.any(String));
    const stolen = await tokenRequest(basic, { grant_type: 'refresh_token', refresh_token: String(other.token.body.refresh_token) });
    expect(stolen.status).toBe(400);
    expect(stolen.body.error).toBe('invalid_grant');
  });

  scenario('oidcc-ensure-request-with-valid-pkce-succeeds', async () => {
    const result = await flow(basic);
    expect(new URL(result.request.url).searchParams.get('code_challenge_method')).toBe('S256');
    expect(discovery.code_challenge_methods_supported).toContain('S256');
  });

  // Not modules of the plan: OAuth 2.1 §4.1.1 / RFC 9700 §2.1.1, which make the plan's requests carry PKCE here.
  scenario('oauth21-pkce-required (not in the plan): an authorization request without code_challenge is refused', async () => {
    const request = authorizationRequest(basic, { params: { code_challenge: undefined, code_challenge_method: undefined } });
    const params = await errorResponse(request.url, basic.redirectUri);
    expect(params.get('error')).toBe('invalid_request');
    expect(params.get('error_description')).toMatch(/PKCE|code_challenge/);
    expect(params.get('state')).toBe(request.state);
  });

  scenario('oauth21-pkce-code-verifier-required (not in the plan): a code exchange without code_verifier is refused', async () => {
    const request = authorizationRequest(basic);
    const { params } = await walk(newBrowser(), request.url, basic.redirectUri, LOGIN, castellan.userPassword);
    const answer = await tokenRequest(basic, { grant_type: 'authorization_code', code: params.get('code') ?? '', redirect_uri: basic.redirectUri });
    expect(answer.status).toBe(400);
    expect(['invalid_grant', 'invalid_request']).toContain(answer.body.error);
  });

  scenario('oauth21-incorrect-pkce-s256-code-verifier-rejected (not in the plan): a wrong code_verifier is refused', async () => {
    const request = authorizationRequest(basic);
    const { params } = await walk(newBrowser(), request.url, basic.redirectUri, LOGIN, castellan.userPassword);
    const wrong = authorizationRequest(basic).verifier;
    const answer = await exchangeCode(basic, params.get('code') ?? '', wrong);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toBe('invalid_grant');
  });
});

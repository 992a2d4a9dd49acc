import { setTimeout as delay } from 'node:timers/promises';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, expect } from 'vitest';
import {
  ACCESS_TOKEN_TYPE, AGENT, DOWNSTREAM, NOTES, oauthError, SERVICE, TOKEN_EXCHANGE_GRANT,
  startClientFlowsWorld, type ClientFlowsWorld,
} from '../support/client-flows.ts';
import { conformanceSuite } from '../support/scenario.ts';

/*
 * oauth4webapi (panva), the stricter low-level client, against Castellan on FerretDB + Redis
 * with the demo tenant: every request is built by the library and every response goes through
 * its process* function (RFC 9207 `iss` in the authorization response, state, PKCE, id_token
 * claims and nonce, and the id_token's signature with validateApplicationLevelSignature; JWT
 * access tokens through validateJwtAccessToken, RFC 9068). A headless Chromium does the
 * person's part. The only concession: plain http on loopback (allowInsecureRequests).
 */

const SUITE = 'oauth4webapi';
/** Plain http on loopback: the test server has no TLS. */
const insecure = { [oauth.allowInsecureRequests]: true } as const;
/** Algorithms a JWT access token may be signed with (Castellan's default is ES256). */
const ACCESS_TOKEN_ALGS = ['ES256', 'ES384', 'RS256', 'PS256', 'EdDSA'];

let world: ClientFlowsWorld;
let as: oauth.AuthorizationServer;

const agent: oauth.Client = { client_id: AGENT };
const service = (): [oauth.Client, oauth.ClientAuth] => [{ client_id: SERVICE }, oauth.ClientSecretBasic(world.castellan.clientSecret)];

interface CodeFlowResult {
  tokens: oauth.TokenEndpointResponse;
  claims: oauth.IDToken;
  nonce: string;
}

/**
 * Auth code + PKCE (S256) + nonce + state, optionally through PAR; the browser signs in and
 * allows; validateAuthResponse checks state and iss, processAuthorizationCodeResponse the
 * token response and id_token, validateApplicationLevelSignature the id_token's signature.
 */
async function codeFlow(client: oauth.Client, auth: oauth.ClientAuth, params: Record<string, string>, usePar = false): Promise<CodeFlowResult> {
  const verifier = oauth.generateRandomCodeVerifier();
  const nonce = oauth.generateRandomNonce();
  const state = oauth.generateRandomState();
  const request = new URLSearchParams({
    client_id: client.client_id,
    redirect_uri: world.redirectUri,
    response_type: 'code',
    scope: 'openid',
    code_challenge: await oauth.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    nonce,
    state,
    ...params,
  });
  const url = new URL(as.authorization_endpoint ?? '');
  if (usePar) {
    const pushed = await oauth.processPushedAuthorizationResponse(as, client, await oauth.pushedAuthorizationRequest(as, client, auth, request, insecure));
    url.search = new URLSearchParams({ client_id: client.client_id, request_uri: pushed.request_uri }).toString();
  } else {
    url.search = request.toString();
  }
  const landed = await world.authorizeInBrowser(url);
  const callback = oauth.validateAuthResponse(as, client, landed, state);
  const response = await oauth.authorizationCodeGrantRequest(as, client, auth, callback, world.redirectUri, verifier, insecure);
  const tokens = await oauth.processAuthorizationCodeResponse(as, client, response, { expectedNonce: nonce, requireIdToken: true });
  await oauth.validateApplicationLevelSignature(as, response, insecure);
  const claims = oauth.getValidatedIdTokenClaims(tokens);
  if (!claims) throw new Error('no id_token');
  return { tokens, claims, nonce };
}

/** A resource server's check of a JWT access token (RFC 9068), by the library. */
const validateAccessToken = (token: string, audience: string) => oauth.validateJwtAccessToken(
  as,
  new Request(audience, { headers: { authorization: `Bearer ${token}` } }),
  audience,
  { ...insecure, signingAlgorithms: ACCESS_TOKEN_ALGS },
);

/** The demo agent's sign-in (openid profile email), shared by the code flow and userinfo checks. */
let agentSignIn: Promise<CodeFlowResult> | undefined;
const signedInAgent = () => {
  agentSignIn ??= codeFlow(agent, oauth.None(), { scope: 'openid profile email' });
  return agentSignIn;
};

beforeAll(async () => {
  world = await startClientFlowsWorld('oauth4webapi', 'oauth4webapi');
  as = await oauth.processDiscoveryResponse(world.issuer, await oauth.discoveryRequest(world.issuer, { algorithm: 'oidc', ...insecure }));
});
afterAll(async () => world?.close());

conformanceSuite(SUITE, (scenario) => {
  scenario('discovery (OIDC and RFC 8414 agree)', async () => {
    expect(as.issuer).toBe(world.castellan.issuer);
    // RFC 8414 §3.1: the well-known path is inserted before the issuer's path.
    const rfc8414 = await oauth.processDiscoveryResponse(world.issuer, await oauth.discoveryRequest(world.issuer, { algorithm: 'oauth2', ...insecure }));
    expect(rfc8414).toEqual(as);
    expect(as.code_challenge_methods_supported).toEqual(['S256']);
    expect(as.authorization_response_iss_parameter_supported).toBe(true);
    for (const endpoint of [
      'authorization_endpoint', 'token_endpoint', 'jwks_uri', 'userinfo_endpoint', 'registration_endpoint',
      'introspection_endpoint', 'revocation_endpoint', 'device_authorization_endpoint',
    ] as const) {
      expect(as[endpoint], endpoint).toMatch(new RegExp(`^${world.castellan.issuer}/`));
    }
  });

  scenario('authorization code + PKCE + nonce (iss per RFC 9207, id_token validated)', async () => {
    const { tokens, claims, nonce } = await signedInAgent();
    expect(tokens.token_type).toBe('bearer');
    expect(claims).toMatchObject({ iss: world.castellan.issuer, aud: AGENT, nonce, sub: expect.any(String) });
  });

  scenario('authorization response: a wrong iss or state is refused by the client', async () => {
    // The authorization response as the browser brings it, checked with a forged iss and state.
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint ?? '');
    url.search = new URLSearchParams({
      client_id: AGENT, redirect_uri: world.redirectUri, response_type: 'code', scope: 'openid', state,
      code_challenge: await oauth.calculatePKCECodeChallenge(oauth.generateRandomCodeVerifier()), code_challenge_method: 'S256',
    }).toString();
    const landed = await world.authorizeInBrowser(url);
    expect(landed.searchParams.get('iss')).toBe(world.castellan.issuer);
    expect(oauth.validateAuthResponse(as, agent, landed, state).get('code')).toEqual(expect.any(String));
    const forged = new URL(landed);
    forged.searchParams.set('iss', 'https://attacker.example');
    expect(() => oauth.validateAuthResponse(as, agent, forged, state)).toThrow(/iss/);
    expect(() => oauth.validateAuthResponse(as, agent, landed, oauth.generateRandomState())).toThrow(/state/);
  });

  scenario('userinfo', async () => {
    const { tokens, claims } = await signedInAgent();
    const response = await oauth.userInfoRequest(as, agent, tokens.access_token, insecure);
    const userinfo = await oauth.processUserInfoResponse(as, agent, claims.sub, response);
    expect(userinfo).toMatchObject({ sub: claims.sub, name: 'Demo User', email: 'demo@example.com' });
  });

  scenario('refresh token rotation (processRefreshTokenResponse; the old refresh token is then refused)', async () => {
    const client: oauth.Client = { client_id: world.web.clientId };
    const auth = oauth.ClientSecretBasic(world.web.clientSecret);
    const { tokens, claims } = await codeFlow(client, auth, { scope: 'openid offline_access', prompt: 'consent' });
    const first = tokens.refresh_token ?? '';
    expect(first).not.toBe('');

    const refresh = (token: string) => oauth.refreshTokenGrantRequest(as, client, auth, token, insecure)
      .then((response) => oauth.processRefreshTokenResponse(as, client, response));
    const refreshed = await refresh(first);
    expect(refreshed.refresh_token).toEqual(expect.any(String));
    expect(refreshed.refresh_token).not.toBe(first);
    const idToken = oauth.getValidatedIdTokenClaims(refreshed);
    if (idToken) expect(idToken.sub).toBe(claims.sub);

    expect(await oauthError(refresh(first))).toBe('invalid_grant');
    expect(await oauthError(refresh(refreshed.refresh_token ?? ''))).toBe('invalid_grant');
  });

  scenario('client_credentials with client_secret_basic (JWT access token per RFC 9068)', async () => {
    const [client, auth] = service();
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, { resource: NOTES, scope: 'notes:read' }, insecure);
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    expect(tokens).toMatchObject({ token_type: 'bearer', scope: 'notes:read' });
    const claims = await validateAccessToken(tokens.access_token, NOTES);
    expect(claims).toMatchObject({ iss: world.castellan.issuer, client_id: SERVICE, scope: 'notes:read' });
    // A resource server for another audience refuses it.
    await expect(validateAccessToken(tokens.access_token, DOWNSTREAM)).rejects.toThrow(/aud/);
  });

  scenario('client_credentials with private_key_jwt', async () => {
    const client: oauth.Client = { client_id: world.keyClient.clientId };
    const auth = oauth.PrivateKeyJwt(world.keyClient.privateKey);
    const response = await oauth.clientCredentialsGrantRequest(as, client, auth, { resource: NOTES, scope: 'notes:read' }, insecure);
    const tokens = await oauth.processClientCredentialsResponse(as, client, response);
    expect(await validateAccessToken(tokens.access_token, NOTES)).toMatchObject({ client_id: world.keyClient.clientId });
  });

  scenario('dynamic client registration, then a code flow with the registered client', async () => {
    const response = await oauth.dynamicClientRegistrationRequest(as, {
      client_name: 'oauth4webapi conformance',
      redirect_uris: [world.redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }, insecure);
    const registered = await oauth.processDynamicClientRegistrationResponse(response);
    expect(registered).toMatchObject({
      client_id: expect.any(String), client_secret: expect.any(String), redirect_uris: [world.redirectUri],
      token_endpoint_auth_method: 'client_secret_basic',
    });
    const { claims } = await codeFlow(registered, oauth.ClientSecretBasic(String(registered.client_secret)), { scope: 'openid' });
    expect(claims.aud).toBe(registered.client_id);
  });

  scenario('device authorization grant (approved in the browser)', async () => {
    const response = await oauth.deviceAuthorizationRequest(as, agent, oauth.None(), { scope: 'openid notes:read', resource: NOTES }, insecure);
    const device = await oauth.processDeviceAuthorizationResponse(as, agent, response);
    expect(device.verification_uri).toBe(`${world.castellan.issuer}/device`);
    const approved = world.approveDeviceInBrowser(device.verification_uri_complete ?? '');

    // The device's polling loop (RFC 8628 §3.4–3.5), as oauth4webapi leaves it to the caller.
    let interval = device.interval ?? 5;
    const pending: string[] = [];
    let tokens: oauth.TokenEndpointResponse | undefined;
    while (!tokens) {
      await delay(interval * 1000);
      try {
        const answer = await oauth.deviceCodeGrantRequest(as, agent, oauth.None(), device.device_code, insecure);
        tokens = await oauth.processDeviceCodeResponse(as, agent, answer);
      } catch (err) {
        if (!(err instanceof oauth.ResponseBodyError) || !['authorization_pending', 'slow_down'].includes(err.error)) throw err;
        pending.push(err.error);
        if (err.error === 'slow_down') interval += 5;
        if (pending.length > 10) throw new Error(`still ${err.error} after ${pending.length} polls`);
      }
    }
    await approved;
    expect(pending).not.toContain('slow_down');
    expect(tokens.scope).toBe('notes:read');
    expect(await validateAccessToken(tokens.access_token, NOTES)).toMatchObject({ client_id: AGENT });
    expect(oauth.getValidatedIdTokenClaims(tokens)).toMatchObject({ aud: AGENT, iss: world.castellan.issuer });
  }, 60_000);

  scenario('token exchange (RFC 8693, act claim)', async () => {
    const { tokens: user, claims: person } = await codeFlow(agent, oauth.None(), { scope: 'openid notes:read', resource: NOTES });
    const [client, auth] = service();
    const response = await oauth.genericTokenEndpointRequest(as, client, auth, TOKEN_EXCHANGE_GRANT, {
      subject_token: user.access_token,
      subject_token_type: ACCESS_TOKEN_TYPE,
      resource: DOWNSTREAM,
      scope: 'notes:read',
    }, insecure);
    const exchanged = await oauth.processGenericTokenEndpointResponse(as, client, response);
    expect(exchanged).toMatchObject({ issued_token_type: ACCESS_TOKEN_TYPE, token_type: 'bearer', scope: 'notes:read' });
    expect(exchanged.refresh_token).toBeUndefined();
    const claims = await validateAccessToken(exchanged.access_token, DOWNSTREAM);
    expect(claims).toMatchObject({ sub: person.sub, client_id: SERVICE, act: { sub: SERVICE, act: { sub: AGENT } } });
  });

  scenario('introspection', async () => {
    const [client, auth] = service();
    const { access_token } = await oauth.processClientCredentialsResponse(as, client,
      await oauth.clientCredentialsGrantRequest(as, client, auth, {}, insecure));
    const introspect = async (token: string) =>
      oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, auth, token, insecure));
    expect(await introspect(access_token)).toMatchObject({ active: true, client_id: SERVICE, iss: world.castellan.issuer });
    expect(await introspect('never-issued-token')).toEqual({ active: false });
  });

  scenario('revocation (then introspection says inactive)', async () => {
    const [client, auth] = service();
    const { access_token } = await oauth.processClientCredentialsResponse(as, client,
      await oauth.clientCredentialsGrantRequest(as, client, auth, {}, insecure));
    const introspect = async (token: string) =>
      oauth.processIntrospectionResponse(as, client, await oauth.introspectionRequest(as, client, auth, token, insecure));
    expect((await introspect(access_token)).active).toBe(true);
    await oauth.processRevocationResponse(await oauth.revocationRequest(as, client, auth, access_token, insecure));
    expect(await introspect(access_token)).toEqual({ active: false });
  });

  scenario('DPoP (RFC 9449)', async (ctx) => {
    const algs = as.dpop_signing_alg_values_supported;
    if (!algs?.length) {
      ctx.skip('the AS metadata does not advertise dpop_signing_alg_values_supported (DPoP is off in Castellan)');
      return;
    }
    const [client, auth] = service();
    const DPoP = oauth.DPoP(client, await oauth.generateKeyPair(algs.includes('ES256') ? 'ES256' : (algs[0] ?? 'ES256')));
    const request = () => oauth.clientCredentialsGrantRequest(as, client, auth, {}, { ...insecure, DPoP });
    let response = await request();
    // RFC 9449 §8: a server may ask for its nonce first; the handle keeps it for the retry.
    try {
      const tokens = await oauth.processClientCredentialsResponse(as, client, response);
      expect(tokens.token_type).toBe('dpop');
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err;
      response = await request();
      expect((await oauth.processClientCredentialsResponse(as, client, response)).token_type).toBe('dpop');
    }
  });

  scenario('pushed authorization request (RFC 9126)', async (ctx) => {
    if (!as.pushed_authorization_request_endpoint) {
      ctx.skip('the AS metadata does not advertise pushed_authorization_request_endpoint');
      return;
    }
    const client: oauth.Client = { client_id: world.web.clientId };
    const { claims, nonce } = await codeFlow(client, oauth.ClientSecretBasic(world.web.clientSecret), { scope: 'openid' }, true);
    expect(claims).toMatchObject({ aud: world.web.clientId, nonce });
  });
});
